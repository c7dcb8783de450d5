"""Finding and stopping an instance's qemu through /proc, safely against PID reuse.

The daemonized qemu is not our child (it must outlive the operator), so it cannot be waited for:
a pid counts as the instance's qemu only while its command line holds `-uuid <instance id>`.
A zombie has an empty command line, so it counts as gone.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
from pathlib import Path

from kubenova.procs import cmdline
from kubenova.virt.driver import DriverError

_PROC = Path("/proc")


def _has(argv: list[str], flag: str, value: str) -> bool:
    return any(a == flag and b == value for a, b in itertools.pairwise(argv))


def is_instance_process(pid: int, instance_id: str) -> bool:
    return _has(cmdline(pid), "-uuid", instance_id)


def pid_from_file(pidfile: Path, instance_id: str) -> int | None:
    """The pid in qemu's pidfile if that process is this instance's qemu, else None."""
    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if is_instance_process(pid, instance_id) else None


def instance_pids(instance_id: str, pidfile: Path) -> list[int]:
    """Every live qemu of the instance, whether or not it wrote its pidfile yet (a spawn can be
    cancelled in between). Only those started for `pidfile`: another host served from the same
    machine may run the same instance id after a reschedule."""
    pids = []
    for entry in _PROC.iterdir():
        if entry.name.isdigit():
            argv = cmdline(int(entry.name))
            if _has(argv, "-uuid", instance_id) and _has(argv, "-pidfile", str(pidfile)):
                pids.append(int(entry.name))
    return pids


def instance_ids_under(instances_dir: Path) -> set[str]:
    """Ids of the live qemu processes started for an instance directory under
    `instances_dir` (its -pidfile is there), whether or not the directory still exists."""
    found = set()
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        argv = cmdline(int(entry.name))
        pidfile, uuid = argument_after(argv, "-pidfile"), argument_after(argv, "-uuid")
        if pidfile and uuid and Path(pidfile) == instances_dir / uuid / "qemu.pid":
            found.add(uuid)
    return found


def argument_after(argv: list[str], flag: str) -> str | None:
    return next((b for a, b in itertools.pairwise(argv) if a == flag), None)


async def wait_gone(pid: int, instance_id: str, within: float, interval: float = 0.05) -> bool:
    """True once the process is gone (or is no longer the instance's), False on timeout."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while is_instance_process(pid, instance_id):
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(interval)
    return True


def send_signal(pid: int, instance_id: str, sig: signal.Signals) -> bool:
    """Signal the instance's qemu; a pidfd pins the process, so a reused pid is never hit."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return False
    try:
        if not is_instance_process(pid, instance_id):
            return False
        signal.pidfd_send_signal(fd, sig)
        return True
    except ProcessLookupError:
        return False
    finally:
        os.close(fd)


async def terminate(pid: int, instance_id: str, grace: float = 10.0) -> None:
    """SIGTERM (qemu exits at once, like pulling the plug), SIGKILL after `grace` seconds."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10.0)):
        if not send_signal(pid, instance_id, sig) or await wait_gone(pid, instance_id, wait):
            return
    raise DriverError(f"qemu pid {pid} of {instance_id} survived SIGKILL")
