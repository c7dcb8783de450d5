"""Running a short-lived tool (qemu-img, the daemonizing qemu) without blocking the event loop."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from pathlib import Path

from kubenova.virt.driver import DriverError


async def run_tool(argv: Sequence[str], time_limit: float, cwd: Path | None = None) -> str:
    """stdout of `argv`; DriverError with its stderr on failure or timeout. Cancelling kills it."""
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=cwd,
    )
    try:
        async with asyncio.timeout(time_limit):
            out, err = await proc.communicate()
    except BaseException as exc:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        if isinstance(exc, TimeoutError):
            raise DriverError(f"{Path(argv[0]).name} timed out after {time_limit:g}s") from None
        raise
    if proc.returncode != 0:
        message = err.decode(errors="replace").strip()
        raise DriverError(f"{Path(argv[0]).name} failed (exit {proc.returncode}): {message}")
    return out.decode(errors="replace")
