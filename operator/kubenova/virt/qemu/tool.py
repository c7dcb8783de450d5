"""Running a short-lived tool (qemu-img, the daemonizing qemu) without blocking the event loop."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from kubenova.procs import communicate
from kubenova.virt.driver import DriverError


async def run_tool(
    argv: Sequence[str], time_limit: float, cwd: Path | None = None, pass_fds: Sequence[int] = ()
) -> str:
    """stdout of `argv`; DriverError with its stderr on failure or timeout. Cancelling kills it."""
    try:
        code, out, err = await communicate(argv, time_limit, cwd, pass_fds)
    except TimeoutError:
        raise DriverError(f"{Path(argv[0]).name} timed out after {time_limit:g}s") from None
    if code != 0:
        raise DriverError(f"{Path(argv[0]).name} failed (exit {code}): {err.strip()}")
    return out
