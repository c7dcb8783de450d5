"""One Network's dnsmasq: started inside the Network's namespace, daemonized so it outlives
the operator, found again through its pid file and /proc, reloaded with SIGHUP, stopped.

A pid counts as this Network's dnsmasq only while its command line is a dnsmasq one naming
this pid file, so a reused pid is never signalled. Equal argv means equal configuration: a
dnsmasq started with other options (a changed gateway, an upgraded operator) is replaced.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Sequence
from pathlib import Path

from kubenova.network.datapath import proc
from kubenova.network.datapath.config import DatapathError, DnsmasqFiles

log = logging.getLogger("kubenova.network.datapath")
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
POLL_INTERVAL = 0.05


def _is_ours(pid: int, pidfile: Path) -> bool:
    argv = proc.cmdline(pid)
    return bool(argv) and Path(argv[0]).name == "dnsmasq" and f"--pid-file={pidfile}" in argv


def pids_of(files: DnsmasqFiles) -> list[int]:
    """Every live dnsmasq of this pid file, whether or not it is the one the file names."""
    return proc.pids_with_arg("dnsmasq", f"--pid-file={files.pidfile}")


def pid_from_file(files: DnsmasqFiles) -> int | None:
    try:
        pid = int(files.pidfile.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if _is_ours(pid, files.pidfile) else None


async def _wait_gone(pid: int, pidfile: Path, within: float) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while _is_ours(pid, pidfile):
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(POLL_INTERVAL)
    return True


async def stop_pid(pid: int, pidfile: Path) -> None:
    """SIGTERM, then SIGKILL; returns once the process is gone (or was never ours)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if not _is_ours(pid, pidfile):
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        if await _wait_gone(pid, pidfile, STOP_TIMEOUT):
            return
    raise DatapathError(f"dnsmasq {pid} did not stop")


class Dnsmasq:
    """The dnsmasq of one Network; `prefix` runs a command inside the Network's namespace."""

    def __init__(self, files: DnsmasqFiles, argv: Sequence[str], prefix: Sequence[str]) -> None:
        self.files = files
        self.argv = list(argv)
        self.prefix = list(prefix)

    def pid(self) -> int | None:
        return pid_from_file(self.files)

    async def ensure(self) -> tuple[int, str]:
        """The running dnsmasq's pid and what was done: `adopted` (running with this argv:
        told to re-read its hosts files), `restarted` (other argv) or `started`. Strays of the
        same pid file (started by an operator that died before the pid file told) are
        stopped, so there is never a second dnsmasq for one Network."""
        pid = self.pid()
        for stray in pids_of(self.files):
            if stray != pid:
                log.warning("stopping a stray dnsmasq %d of %s", stray, self.files.root.name)
                await stop_pid(stray, self.files.pidfile)
        if pid is not None and proc.cmdline(pid)[1:] == self.argv[1:]:
            self.reload(pid)
            return pid, "adopted"
        what = "started"
        if pid is not None:
            log.info("dnsmasq %d of %s has other options: restarting it", pid, self.files.root)
            await stop_pid(pid, self.files.pidfile)
            what = "restarted"
        return await self._start(), what

    def reload(self, pid: int | None = None) -> bool:
        """SIGHUP: dnsmasq re-reads --dhcp-hostsfile and --addn-hosts. False if none runs."""
        pid = pid if pid is not None else self.pid()
        if pid is None:
            return False
        try:
            os.kill(pid, signal.SIGHUP)
        except ProcessLookupError:
            return False
        return True

    async def stop(self) -> None:
        """Stop every dnsmasq of this pid file; the files stay (the caller removes them)."""
        for pid in {*pids_of(self.files), *filter(None, [self.pid()])}:
            await stop_pid(pid, self.files.pidfile)
        self.files.pidfile.unlink(missing_ok=True)

    async def _start(self) -> int:
        """dnsmasq daemonizes once it has bound its sockets; its first process exits non-zero
        with the reason when it cannot start."""
        self.files.pidfile.unlink(missing_ok=True)
        argv = [*self.prefix, *self.argv]
        created = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        try:
            async with asyncio.timeout(START_TIMEOUT):
                out, err = await created.communicate()
                if created.returncode == 0:
                    pid = await self._wait_for_pidfile()
        except BaseException as exc:
            with contextlib.suppress(ProcessLookupError):
                created.kill()
            await created.wait()
            await self.stop()
            if isinstance(exc, TimeoutError):
                raise DatapathError(
                    f"dnsmasq of {self.files.root.name} did not start in {START_TIMEOUT:g}s"
                ) from None
            raise
        if created.returncode != 0:
            message = (err or out).decode(errors="replace").strip()
            raise DatapathError(f"dnsmasq of {self.files.root.name} failed to start: {message}")
        log.info("dnsmasq %d serves %s", pid, self.files.root.name)
        return pid

    async def _wait_for_pidfile(self) -> int:
        while True:
            pid = self.pid()
            if pid is not None:
                return pid
            await asyncio.sleep(POLL_INTERVAL)
