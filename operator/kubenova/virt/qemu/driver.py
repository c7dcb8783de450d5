"""QemuProcessDriver: each instance is one daemonized qemu on this machine (DESIGN §5).

Everything of an instance lives in `state_dir/instances/<instance id>/` (see paths.py). The qemu
outlives the operator; a restarted operator finds it again by its pidfile, checked against the
`-uuid` on its command line. spawn, power_on and reboot return once qemu runs the VM; each start
records where its boot begins (boot_record.py), from which wait_for_guest watches the serial
console for a sign that the guest OS is up (guest_signals.py: cloud-init's final line, the
Image's regex, kubenova's test guest's BOOT_ANNOUNCEMENT).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import shutil
import weakref
from collections.abc import Awaitable
from dataclasses import replace
from pathlib import Path

from kubenova.metadata.nocloud import SeedError
from kubenova.models.v1alpha1.states import GuestSignal, PowerState
from kubenova.network.datapath import Datapath
from kubenova.timestamps import iso, now
from kubenova.tools import ToolNotFound, find_tool
from kubenova.virt.driver import (
    GUEST_BOOTED_REGEX_PROPERTY,
    ComputeDriver,
    DriverError,
    GuestBoot,
    GuestBootTimeout,
    InstanceInfo,
    InstanceNotFound,
    SpawnFailed,
    SpawnRequest,
)
from kubenova.virt.qemu import nics, process, qga, qmp
from kubenova.virt.qemu.boot_record import BootRecord
from kubenova.virt.qemu.command import QMP_SOCKET
from kubenova.virt.qemu.console import (
    BOOT_ANNOUNCEMENT,
    BOOT_MARKER,
    console_note,
    log_size,
    parse_boot_line,
    read_log,
)
from kubenova.virt.qemu.guest_signals import compile_regex, first_sign
from kubenova.virt.qemu.paths import InstancePaths
from kubenova.virt.qemu.prepare import prepare_instance, saved_argv
from kubenova.virt.qemu.tool import run_tool

__all__ = ["BOOT_ANNOUNCEMENT", "BOOT_MARKER", "QemuProcessDriver", "parse_boot_line"]

log = logging.getLogger("kubenova.virt.qemu")

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
#: How long the daemonizing qemu may take to set the VM up (its parent exits once it has).
START_TIMEOUT = 60.0
#: Why instances with networks cannot spawn when the driver has no datapath.
NO_DATAPATH = (
    "the embedded QEMU datapath needs root or CAP_NET_ADMIN and CAP_SYS_ADMIN, and this "
    "operator runs without it"
)
#: The host's cached KVM probe answer, in its state dir (virt/qemu/accel.py).
ACCEL_CACHE = "accel.json"
POLL_INTERVAL = 0.1
#: How long one guest-agent ping may wait for an answer (it is asked again every poll).
AGENT_PING_TIMEOUT = 0.5


class QemuProcessDriver(ComputeDriver):
    """Runs instances as local qemu processes; safe to restart the operator at any moment.

    Operations on one instance are serialised by a per-instance lock, except destroy(): it must
    be able to stop a spawn that hangs (the spawn then fails and cleans up).
    """

    name = "qemu"
    #: Seconds a soft reboot gives the guest to power off through ACPI before forcing it.
    soft_reboot_timeout = 60.0

    def __init__(
        self,
        state_dir: Path,
        qemu_binary: str = "qemu-system-x86_64",
        qemu_img: str = "qemu-img",
        *,
        datapath: Datapath | None = None,
        datapath_problem: str | None = None,
        host: str | None = None,
    ) -> None:
        """`datapath`: the operator's one Datapath, shared by its embedded hosts (None: no
        instance with networks can spawn; `datapath_problem` says why, from its probe).
        `host`: this host's name on the taps (default: the state directory's name)."""
        # Absolute: qemu runs in the instance directory and gets these paths on its command line.
        self.state_dir = Path(state_dir).absolute()
        self.datapath = datapath
        self.datapath_problem = datapath_problem
        self.serves_dhcp = datapath is not None
        self.host = host or self.state_dir.name
        self.instances_dir = self.state_dir / "instances"
        self._qemu_binary = qemu_binary
        self._qemu_img = qemu_img
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    # -- the ComputeDriver interface ---------------------------------------------------------
    async def spawn(self, request: SpawnRequest, start_timeout: float) -> InstanceInfo:
        """Build and boot the VM, or adopt the running one; on failure or cancellation the
        instance's process and files are removed.

        A directory without a running qemu is the leftover of a spawn that never finished (the
        operator died): it is wiped and the VM built afresh.
        """
        deadline = asyncio.get_running_loop().time() + start_timeout
        instance_id = request.instance_id
        try:
            paths = self._paths(instance_id)
        except InstanceNotFound as err:
            raise SpawnFailed(str(err)) from None
        async with self._lock(instance_id):
            try:
                pid = process.pid_from_file(paths.pidfile, instance_id)
                if pid is None:
                    await self._remove(instance_id, paths)
                    pid = await self._create(request, paths)
                else:
                    log.info("adopting the running qemu %d of %s", pid, request.name)
                if asyncio.get_running_loop().time() > deadline:
                    raise SpawnFailed(f"qemu of {request.name} did not start in time")
                return await self._with_vifs(paths, self._info(instance_id, paths, pid, None))
            except BaseException as err:
                what = "cancelled" if isinstance(err, asyncio.CancelledError) else f"failed: {err}"
                log.warning("spawn of %s %s; removing it", request.name, what)
                await _finish(self._remove(instance_id, paths))
                if isinstance(err, SpawnFailed):
                    raise
                if isinstance(err, DriverError | OSError | ValueError | ToolNotFound | SeedError):
                    raise SpawnFailed(f"spawn of {request.name} failed: {err}") from err
                raise

    async def destroy(self, instance_id: str) -> None:
        try:
            paths = self._paths(instance_id)
        except InstanceNotFound:
            return
        await self._remove(instance_id, paths)

    async def power_off(self, instance_id: str, grace: float = 0) -> None:
        paths = self._existing(instance_id)
        async with self._lock(instance_id):
            await self._power_off(instance_id, paths, grace)

    async def power_on(self, instance_id: str, start_timeout: float) -> InstanceInfo:
        paths = self._existing(instance_id)
        async with self._lock(instance_id):
            return await self._power_on(instance_id, paths, start_timeout)

    async def wait_for_guest(self, instance_id: str, boot_timeout: float) -> GuestBoot:
        """Watch the console from where the current boot began (boot.json) for a sign that
        the guest OS is up, while qemu runs."""
        paths = self._existing(instance_id)
        if process.pid_from_file(paths.pidfile, instance_id) is None:
            raise DriverError(f"instance {instance_id} is not running: no guest to wait for")
        record = BootRecord.load(paths.root) or BootRecord(0, iso(now()))
        regex = compile_regex(record.booted_regex)
        plugged = await asyncio.to_thread(nics.load, paths.root) if self.datapath else ()
        dhcp = record.dhcp_offsets
        agent = paths.root / qga.SOCKET  # there when the Image has hw_qemu_guest_agent=yes
        loop = asyncio.get_running_loop()
        deadline = loop.time() + boot_timeout
        offset, tail_text = record.console_offset, ""
        while True:
            running = process.pid_from_file(paths.pidfile, instance_id) is not None
            text, consumed = await asyncio.to_thread(_read_lines, paths.console, offset)
            offset += consumed
            tail_text = (tail_text + text)[-8192:]
            sign = first_sign(text, regex)
            if sign is not None:
                return GuestBoot(sign.signal, sign.line, now())
            if plugged:
                asked, dhcp = await nics.dhcp_request(self.datapath, plugged, dhcp)
                if asked is not None:
                    return GuestBoot(GuestSignal.DHCP, asked, now())
            if agent.exists():
                version = await qga.ping(agent, timeout=AGENT_PING_TIMEOUT)
                if version is not None:
                    return GuestBoot(GuestSignal.GUEST_AGENT, f"qemu-guest-agent {version}", now())
            if not running:
                raise DriverError(
                    f"qemu exited before the guest showed it is up; {console_note(tail_text)}"
                )
            if loop.time() >= deadline:
                watched = "cloud-init's final line, kubenova-guest's announcement"
                if plugged:
                    watched = f"the Networks' DHCP logs for the Ports' MACs, {watched}"
                if agent.exists():
                    watched = f"qemu-guest-agent, {watched}"
                if regex is not None:
                    watched += f", the Image's regex {regex.pattern!r}"
                note = console_note(tail_text)
                raise GuestBootTimeout(f"watched the console for {watched}; {note}")
            await asyncio.sleep(POLL_INTERVAL)

    async def reboot(self, instance_id: str, hard: bool, start_timeout: float) -> InstanceInfo:
        """Hard: reset the running VM (a QMP system_reset; a new qemu if the monitor does not
        answer). Soft, as Nova's libvirt driver does it: ACPI power-off, then start again.
        A stopped VM is simply started."""
        paths = self._existing(instance_id)
        async with self._lock(instance_id):
            pid = process.pid_from_file(paths.pidfile, instance_id)
            if pid is not None and hard:
                previous = BootRecord.load(paths.root)
                await self._record_boot(paths, previous.booted_regex if previous else None)
                try:
                    await qmp.execute(paths.root / QMP_SOCKET, "system_reset")
                except qmp.QmpError as err:
                    log.warning("hard reboot of %s: %s; restarting qemu", instance_id, err)
                else:
                    return await self._with_vifs(paths, self._info(instance_id, paths, pid, None))
            await self._power_off(instance_id, paths, 0 if hard else self.soft_reboot_timeout)
            return await self._power_on(instance_id, paths, start_timeout)

    async def get_info(self, instance_id: str) -> InstanceInfo:
        """RUNNING while the qemu lives (booted: the console holds an announcement, possibly of
        an earlier boot), SHUTDOWN when only the files are left."""
        paths = self._existing(instance_id)
        pid = process.pid_from_file(paths.pidfile, instance_id)
        if pid is None:
            return InstanceInfo(instance_id, PowerState.SHUTDOWN)
        boot = parse_boot_line(await asyncio.to_thread(read_log, paths.console))
        return await self._with_vifs(paths, self._info(instance_id, paths, pid, boot), wait=False)

    async def console_output(self, instance_id: str) -> str:
        paths = self._existing(instance_id)
        return await asyncio.to_thread(read_log, paths.console)

    async def list_instances(self) -> list[str]:
        """Every instance directory, and every qemu started for one whose directory is gone
        (a destroy or a failed spawn interrupted between stopping qemu and removing the files,
        then the process left running): the audit finds both."""

        def scan() -> list[str]:
            found = process.instance_ids_under(self.instances_dir)
            if self.instances_dir.is_dir():
                found |= {p.name for p in self.instances_dir.iterdir() if _UUID.fullmatch(p.name)}
            return sorted(found)

        return await asyncio.to_thread(scan)

    # -- building blocks ---------------------------------------------------------------------
    @functools.cached_property
    def qemu_binary(self) -> str:
        return find_tool(self._qemu_binary)

    @functools.cached_property
    def qemu_img(self) -> str:
        return find_tool(self._qemu_img)

    def _paths(self, instance_id: str) -> InstancePaths:
        # The id names a directory and a qemu -uuid: a UUID (a Kubernetes uid) and nothing else.
        if not _UUID.fullmatch(instance_id):
            raise InstanceNotFound(f"{instance_id!r} is not an instance id (a lowercase UUID)")
        return InstancePaths(self.instances_dir / instance_id)

    def _existing(self, instance_id: str) -> InstancePaths:
        paths = self._paths(instance_id)
        if not paths.root.is_dir():
            raise InstanceNotFound(f"no instance {instance_id} on this host")
        return paths

    def _lock(self, instance_id: str) -> asyncio.Lock:
        lock = self._locks.get(instance_id)
        if lock is None:
            lock = self._locks[instance_id] = asyncio.Lock()
        return lock

    async def _create(self, request: SpawnRequest, paths: InstancePaths) -> int:
        if request.image_path is None:
            raise DriverError("no local image: the conductor fetches it for this driver")
        regex = request.image_properties.get(GUEST_BOOTED_REGEX_PROPERTY) or None
        compile_regex(regex)  # a malformed one fails the spawn, saying so
        plan = None
        if request.interfaces:
            if self.datapath is None:
                raise DriverError(
                    f"{request.name} has network interfaces but this host has no datapath: "
                    f"{self.datapath_problem or NO_DATAPATH}"
                )
            plan = nics.plan(self.datapath, nics.nics_of(request))
        argv = await prepare_instance(
            request,
            paths,
            request.image_path,
            self.qemu_binary,
            self.qemu_img,
            accel_cache=self.state_dir / ACCEL_CACHE,
            netdevs=plan.netdevs if plan else None,
            prefix=plan.prefix if plan else (),
        )
        if plan is not None:
            await asyncio.to_thread(nics.save, paths.root, plan.nics)
            await self._plug(paths)
        await self._record_boot(paths, regex)
        accel = process.argument_after(argv, "-accel")
        log.info("starting %s (%s, %s)", request.name, request.instance_id, accel)
        return await self._start(request.instance_id, paths, argv)

    async def _start(self, instance_id: str, paths: InstancePaths, argv: list[str]) -> int:
        """Start qemu; it daemonizes once the VM is set up, so startup errors surface here."""
        paths.pidfile.unlink(missing_ok=True)
        argv, fds = await nics.open_tap_fds(argv)  # NICs on several Networks: fresh tap fds
        try:
            await run_tool(argv, START_TIMEOUT, cwd=paths.root, pass_fds=fds)
        finally:
            nics.close_fds(fds)  # the daemonized qemu holds its own copies
        pid = process.pid_from_file(paths.pidfile, instance_id)
        if pid is None:
            text = await asyncio.to_thread(read_log, paths.console)
            raise DriverError(f"qemu exited right after starting; {console_note(text)}")
        return pid

    async def _record_boot(self, paths: InstancePaths, regex: str | None) -> None:
        """A boot begins where the console and its Networks' DHCP logs end now (called before
        qemu starts or resets)."""
        plugged = await asyncio.to_thread(nics.load, paths.root)
        offsets = nics.dhcp_offsets(self.datapath, plugged) if plugged and self.datapath else {}
        record = BootRecord(log_size(paths.console), iso(now()), regex, offsets)
        await asyncio.to_thread(record.save, paths.root)

    def _info(
        self, instance_id: str, paths: InstancePaths, pid: int, boot: dict[str, str] | None
    ) -> InstanceInfo:
        details = {"console": str(paths.console)}
        accel = process.argument_after(process.cmdline(pid), "-accel")
        if accel:
            details["accelerator"] = accel
        if boot:
            details.update(hostname=boot["hostname"], guest_instance_id=boot["instance-id"])
        return InstanceInfo(instance_id, PowerState.RUNNING, pid, boot is not None, details)

    async def _power_off(self, instance_id: str, paths: InstancePaths, acpi_wait: float) -> None:
        pid = process.pid_from_file(paths.pidfile, instance_id)
        if pid is None:
            return
        if acpi_wait > 0:
            try:
                await qmp.execute(paths.root / QMP_SOCKET, "system_powerdown")
            except qmp.QmpError as err:
                log.warning("ACPI power-off of %s: %s; stopping qemu", instance_id, err)
            else:
                if await process.wait_gone(pid, instance_id, acpi_wait):
                    return
                log.warning(
                    "%s ignored ACPI power-off for %gs: stopping qemu", instance_id, acpi_wait
                )
        await process.terminate(pid, instance_id)

    async def _power_on(
        self, instance_id: str, paths: InstancePaths, start_timeout: float
    ) -> InstanceInfo:
        pid = process.pid_from_file(paths.pidfile, instance_id)
        if pid is not None:
            return await self._with_vifs(paths, self._info(instance_id, paths, pid, None))
        argv = saved_argv(paths)  # the VM spawn built: its overlay is the guest's data
        previous = BootRecord.load(paths.root)
        await self._record_boot(paths, previous.booted_regex if previous else None)
        try:
            async with asyncio.timeout(start_timeout):
                await self._plug(paths)  # taps stay while stopped; again after a host reboot
                pid = await self._start(instance_id, paths, argv)
            return await self._with_vifs(paths, self._info(instance_id, paths, pid, None))
        except BaseException:
            await _finish(self._stop_all(instance_id, paths))  # stays stopped, files stay
            raise

    async def _stop_all(self, instance_id: str, paths: InstancePaths) -> None:
        """Stop every qemu of the instance, including one that has not written its pidfile."""
        pids = await asyncio.to_thread(process.instance_pids, instance_id, paths.pidfile)
        for pid in pids:
            await process.terminate(pid, instance_id)

    async def _remove(self, instance_id: str, paths: InstancePaths) -> None:
        await self._stop_all(instance_id, paths)
        try:
            plugged = await asyncio.to_thread(nics.load, paths.root)
        except DriverError as err:  # never block the removal: the audit finds orphan taps
            log.warning("%s; removing the instance's files anyway", err)
            plugged = ()
        if plugged and self.datapath is not None:  # taps first: nics.json goes with the files
            await nics.unplug(self.datapath, plugged)
        await asyncio.to_thread(shutil.rmtree, paths.root, ignore_errors=True)

    # -- the datapath (virt/qemu/nics.py) ----------------------------------------------------
    async def _plug(self, paths: InstancePaths) -> None:
        """The instance's Networks set up and its taps plugged (idempotent)."""
        plugged = await asyncio.to_thread(nics.load, paths.root)
        if not plugged:
            return
        if self.datapath is None:
            raise DriverError(f"this host has no datapath: {self.datapath_problem or NO_DATAPATH}")
        await nics.plug(self.datapath, plugged, self.host)

    async def _with_vifs(
        self, paths: InstancePaths, info: InstanceInfo, wait: bool = True
    ) -> InstanceInfo:
        """`info` with where its Ports are plugged; `wait`: qemu was just started or adopted,
        so its taps get carrier in a moment (up: Nova's network-vif-plugged)."""
        plugged = await asyncio.to_thread(nics.load, paths.root)
        if not plugged or self.datapath is None:
            return info
        return replace(info, vifs=await nics.vifs(self.datapath, plugged, wait=wait))


async def _finish(cleanup: Awaitable[None]) -> None:
    """Run cleanup to the end even if the caller is being cancelled meanwhile."""
    await asyncio.shield(asyncio.ensure_future(cleanup))


def _read_lines(path: Path, offset: int) -> tuple[str, int]:
    """The complete lines of `path` from byte `offset`, and how many bytes they take."""
    try:
        with path.open("rb") as log_file:
            log_file.seek(offset)
            data = log_file.read()
    except FileNotFoundError:
        return "", 0
    whole = data[: data.rfind(b"\n") + 1]
    return whole.decode(errors="replace"), len(whole)
