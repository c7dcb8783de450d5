"""Processes of the machine: a command line read from /proc, and a short command run to its end
without blocking the event loop (killed, not orphaned, when it overruns or is cancelled)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from pathlib import Path

_PROC = Path("/proc")


def cmdline(pid: int) -> list[str]:
    """The process's argv; empty when it is gone (a zombie's is empty too, so it counts as gone)."""
    try:
        raw = (_PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return []
    return [arg.decode(errors="replace") for arg in raw.split(b"\0")[:-1]]


async def communicate(
    argv: Sequence[str], time_limit: float, cwd: Path | None = None, pass_fds: Sequence[int] = ()
) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of `argv`. TimeoutError after `time_limit` seconds; the
    process is killed and reaped on a timeout or a cancellation. `pass_fds`: file descriptors
    the process inherits (a qemu's taps)."""
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=cwd,
        pass_fds=tuple(pass_fds),
    )
    try:
        async with asyncio.timeout(time_limit):
            out, err = await proc.communicate()
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")
