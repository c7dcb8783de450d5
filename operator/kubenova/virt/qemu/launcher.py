"""`kubenova launch`: one VM in the foreground, the way the QEMU pod driver's container runs it.

The launcher is the process driver's own path (image cache, overlay, NoCloud seed, qemu argv,
the guest's boot announcement) with qemu kept in the foreground as its child instead of
daemonized:

1. fetch the image from the spec's source into `<workdir>/_base` and verify its sha256
   (kubenova.image.cache, as on an embedded host); an image already verified there is reused;
2. build the overlay, the seed and the argv in `<workdir>/instance` (prepare.prepare_instance).
   When the workdir outlives the pod (the pod driver's PersistentVolumeClaim) and already holds
   this instance's finished build, the pod is a start after a stop or a reboot: the overlay (the
   guest's data), the seed and the console log are kept and only the argv is built again, with
   the accelerator probed again (prepare.restart_instance, as the process driver's power_on
   starts the same files again). A build that never finished is wiped and done afresh;
3. run qemu, copy its serial console to stdout from where this boot begins (so `kubectl logs`
   of the pod is this boot's console; the log on the volume keeps every boot) and, once the
   guest announces this boot, write the ready file (the pod's readinessProbe checks it; it
   belongs in a per-pod directory, not on the kept volume);
4. on SIGTERM (the pod is deleted) ask the guest to power off through ACPI, give it
   `shutdown_grace` seconds, then stop qemu; nothing is left running.

Exit status: 0 when the guest powered itself off after booting or the launcher was told to
stop; 1 when qemu exited before the guest booted or the VM could not be built (the pod then
ends Failed, which the pod driver turns into a reschedule); 2 for a malformed spec.

The spec is JSON (LaunchSpec), from `--spec` or the environment variable KUBENOVA_LAUNCH_SPEC.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import logging
import os
import shutil
import signal
import sys
import threading
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from kubenova.image.cache import ImageCache, ImageError
from kubenova.metadata.nocloud import SeedError
from kubenova.tools import ToolNotFound, find_tool
from kubenova.virt.driver import DriverError, GuestMetadata, NetworkInterface, SpawnRequest
from kubenova.virt.qemu import qmp
from kubenova.virt.qemu.command import QMP_SOCKET
from kubenova.virt.qemu.console import console_note, log_size, watch_for_boot
from kubenova.virt.qemu.paths import InstancePaths
from kubenova.virt.qemu.prepare import is_prepared, prepare_instance, restart_instance, saved_argv
from kubenova.virt.qemu.process import argument_after

log = logging.getLogger("kubenova.launch")

SPEC_ENV = "KUBENOVA_LAUNCH_SPEC"
DEFAULT_WORKDIR = Path("/var/lib/kubenova")
READY_FILE = "ready"
#: Seconds between two looks at the console (copy to stdout, boot announcement).
POLL_INTERVAL = 0.1
EXIT_FAILED = 1
EXIT_BAD_SPEC = 2


class LaunchInterface(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    mac: str
    ip: str | None = None
    network: str | None = None


class LaunchSpec(BaseModel):
    """What the launcher needs to build and boot one VM: a SpawnRequest without local paths
    (the image comes from `image_source`, verified against `image_checksum`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1] = 1
    instance_id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    vcpus: int = Field(ge=1)
    ram_mib: int = Field(ge=16)
    disk_gib: int = Field(ge=0)
    image_source: str = Field(min_length=1)
    image_checksum: str = Field(pattern=r"^(sha256:)?[0-9a-f]{64}$")
    image_format: Literal["qcow2", "raw"] = "qcow2"
    hostname: str = Field(min_length=1)
    user_data: str | None = None
    public_keys: tuple[str, ...] = ()
    network_config: str | None = None
    interfaces: tuple[LaunchInterface, ...] = ()

    @classmethod
    def from_request(cls, request: SpawnRequest) -> LaunchSpec:
        if request.volumes:
            raise DriverError("the launcher cannot attach volumes yet")
        meta = request.metadata
        return cls(
            instance_id=request.instance_id,
            name=request.name,
            vcpus=request.vcpus,
            ram_mib=request.ram_mib,
            disk_gib=request.disk_gib,
            image_source=request.image_source,
            image_checksum=request.image_checksum,
            image_format=request.image_format,  # type: ignore[arg-type]
            hostname=meta.hostname,
            user_data=meta.user_data,
            public_keys=tuple(meta.public_keys),
            network_config=meta.network_config,
            interfaces=tuple(
                LaunchInterface(mac=i.mac, ip=i.ip, network=i.network) for i in request.interfaces
            ),
        )

    def to_request(self, image_path: Path | None = None) -> SpawnRequest:
        return SpawnRequest(
            instance_id=self.instance_id,
            name=self.name,
            vcpus=self.vcpus,
            ram_mib=self.ram_mib,
            disk_gib=self.disk_gib,
            image_path=image_path,
            image_format=self.image_format,
            image_source=self.image_source,
            image_checksum=self.image_checksum,
            metadata=GuestMetadata(
                instance_id=self.instance_id,
                hostname=self.hostname,
                user_data=self.user_data,
                public_keys=self.public_keys,
                network_config=self.network_config,
            ),
            interfaces=tuple(NetworkInterface(i.mac, i.ip, i.network) for i in self.interfaces),
        )

    @property
    def sha256(self) -> str:
        return self.image_checksum.removeprefix("sha256:")

    @property
    def source_for_cache(self) -> str:
        """The image source as ImageCache reads it: file:// URLs become absolute paths."""
        if self.image_source.startswith("file://"):
            return self.image_source.removeprefix("file://")
        return self.image_source


class Launcher:
    """Builds and runs one VM in `workdir`; see the module docstring for the steps."""

    def __init__(
        self,
        spec: LaunchSpec,
        workdir: Path,
        ready_file: Path | None = None,
        qemu_binary: str = "qemu-system-x86_64",
        qemu_img: str = "qemu-img",
        shutdown_grace: float = 20.0,
        console_out: int | None = None,
    ) -> None:
        self.spec = spec
        self.workdir = Path(workdir).absolute()
        self.paths = InstancePaths(self.workdir / "instance")
        self.ready_file = Path(ready_file) if ready_file else self.workdir / READY_FILE
        self._qemu_binary = qemu_binary
        self._qemu_img = qemu_img
        self.shutdown_grace = shutdown_grace
        self._console_out = sys.stdout.fileno() if console_out is None else console_out
        self._console_offset = 0
        """How much of the console log went to the console output so far."""
        self._boot_offset = 0
        """Where this boot's console output begins in the log."""
        self._console_lock = threading.Lock()

    async def run(self, stop: asyncio.Event) -> int:
        """Build the VM, run it until it exits or `stop` is set; the exit status."""
        self.ready_file.unlink(missing_ok=True)
        try:
            argv = await self._build()
        except (DriverError, ImageError, SeedError, ToolNotFound, OSError, ValueError) as err:
            log.error("cannot build the VM of %s: %s", self.spec.name, err)
            return EXIT_FAILED
        # This boot's console starts where the log ends now (a kept log holds earlier boots):
        # the boot is looked for from there; the console output first repeats how the earlier
        # run ended (its last lines), as Nova's console log keeps a stop or reboot's output.
        self._boot_offset = log_size(self.paths.console)
        self._console_offset = replay_from(self.paths.console, self._boot_offset)
        if self._console_offset < self._boot_offset:
            log.info(
                "console: the last %d bytes of the earlier run first",
                self._boot_offset - self._console_offset,
            )
        log.info("starting qemu for %s: %s", self.spec.name, " ".join(argv))
        proc = await asyncio.create_subprocess_exec(
            *argv,
            cwd=self.paths.root,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=sys.stderr.fileno(),
            stderr=sys.stderr.fileno(),
            # Its own session: a signal to the launcher's process group (a terminal's Ctrl-C)
            # reaches only the launcher, which powers the guest off; PDEATHSIG still ties qemu
            # to the launcher.
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        pump = asyncio.create_task(self._pump_console(), name="console")
        stopping = asyncio.create_task(stop.wait(), name="stop")
        try:
            return await self._supervise(proc, stopping)
        finally:
            self.ready_file.unlink(missing_ok=True)
            stopping.cancel()
            await _finish(self._stop_qemu(proc, grace=0))
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump
            self._copy_console()  # what the guest wrote last

    async def _build(self) -> list[str]:
        cache = ImageCache(self.workdir / "_base")
        cache.base_dir.mkdir(parents=True, exist_ok=True)
        image = await cache.fetch(self.spec.source_for_cache, self.spec.sha256)
        log.info("image %s verified (sha256 %s)", self.spec.image_source, self.spec.sha256)
        request = self.spec.to_request(image)
        qemu_binary = find_tool(self._qemu_binary)
        if await asyncio.to_thread(self._restartable):
            log.info(
                "starting %s again from its kept disk %s (a start after a stop, or a reboot)",
                self.spec.name,
                self.paths.disk,
            )
            return await restart_instance(request, self.paths, qemu_binary, daemonize=False)
        if self.paths.root.exists():  # a build that never finished: start afresh
            log.info("removing the unfinished build in %s", self.paths.root)
            await asyncio.to_thread(shutil.rmtree, self.paths.root)
        return await prepare_instance(
            request, self.paths, image, qemu_binary, find_tool(self._qemu_img), daemonize=False
        )

    def _restartable(self) -> bool:
        """Whether the workdir holds this instance's finished build (a volume that outlived the
        pod): its disk is kept. Another instance's files are never booted."""
        if not is_prepared(self.paths):
            return False
        try:
            owner = argument_after(saved_argv(self.paths), "-uuid")
        except DriverError as err:
            log.warning("%s; building afresh", err)
            return False
        if owner != self.spec.instance_id:
            log.warning(
                "%s holds instance %s, not %s", self.paths.root, owner, self.spec.instance_id
            )
            return False
        return True

    async def _supervise(self, proc: asyncio.subprocess.Process, stopping: asyncio.Task) -> int:
        watching = asyncio.create_task(
            watch_for_boot(
                self.paths.console,
                self._boot_offset,  # this boot's announcement, not an earlier boot's
                lambda: proc.returncode is None,
                None,
                POLL_INTERVAL,
            ),
            name="boot",
        )
        try:
            await asyncio.wait({watching, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            watching.cancel()
        if stopping.done():
            log.info("told to stop before the guest booted")
            return 0
        seen = watching.result()
        if seen.boot is None:
            code = await proc.wait()
            log.error(
                "qemu exited (status %s) before the guest booted; %s", code, console_note(seen.text)
            )
            return EXIT_FAILED
        self._mark_ready(seen.boot)
        exiting = asyncio.create_task(proc.wait(), name="qemu")
        await asyncio.wait({exiting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if not exiting.done():
            exiting.cancel()
            log.info("told to stop: powering the guest off")
            await _finish(self._stop_qemu(proc, grace=self.shutdown_grace))
            return 0
        code = exiting.result()
        log.info("qemu exited with status %s after the guest booted", code)
        return 0 if code == 0 else EXIT_FAILED

    def _mark_ready(self, boot: dict[str, str]) -> None:
        """The readiness signal: written atomically, removed when the launcher ends."""
        if boot["instance-id"] != self.spec.instance_id:
            log.warning("the guest booted without its metadata: %s", boot)
        tmp = self.ready_file.with_name(f".{self.ready_file.name}.tmp")
        tmp.write_text(json.dumps(boot) + "\n")
        os.replace(tmp, self.ready_file)
        log.info(
            "guest booted (hostname=%s instance-id=%s); ready",
            boot["hostname"],
            boot["instance-id"],
        )

    async def _stop_qemu(self, proc: asyncio.subprocess.Process, grace: float) -> None:
        """ACPI power-off for `grace` seconds, then SIGTERM, then SIGKILL."""
        if proc.returncode is not None:
            return
        if grace > 0:
            try:
                await qmp.execute(self.paths.root / QMP_SOCKET, "system_powerdown")
                async with asyncio.timeout(grace):
                    await proc.wait()
                    return
            except (qmp.QmpError, TimeoutError) as err:
                log.warning("ACPI power-off did not stop the guest (%s); stopping qemu", err)
        for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 10.0)):
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(sig)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await proc.wait()
                    return

    async def _pump_console(self) -> None:
        while True:
            await asyncio.to_thread(self._copy_console)
            await asyncio.sleep(POLL_INTERVAL)

    def _copy_console(self) -> None:
        """Copy what the serial console got since the last call to the console output."""
        with self._console_lock:  # a cancelled pump's thread may still be copying
            size = log_size(self.paths.console)
            if size <= self._console_offset:
                return
            with self.paths.console.open("rb") as console:
                console.seek(self._console_offset)
                data = console.read(size - self._console_offset)
            self._console_offset += len(data)
            view = memoryview(data)
            with contextlib.suppress(OSError):
                while view:
                    view = view[os.write(self._console_out, view) :]


#: how much of an earlier run's console a restarted launcher repeats
REPLAY_BYTES = 16 * 1024


def replay_from(console: Path, end: int, limit: int = REPLAY_BYTES) -> int:
    """Where to start repeating the kept console log that ends at `end`: at most `limit` bytes
    back, at the start of a line."""
    start = max(0, end - limit)
    if start == 0:
        return 0
    with contextlib.suppress(OSError), console.open("rb") as f:
        f.seek(start)
        chunk = f.read(end - start)
        newline = chunk.find(b"\n")
        return start + newline + 1 if newline >= 0 else end
    return end


_libc = ctypes.CDLL(None, use_errno=True)
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    # qemu must not outlive a SIGKILLed launcher (outside a container nothing else stops it).
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


async def _finish(cleanup) -> None:
    """Run cleanup to the end even if the caller is being cancelled meanwhile."""
    await asyncio.shield(asyncio.ensure_future(cleanup))


def load_spec(text: str | None) -> LaunchSpec:
    """The spec from `text`, else from $KUBENOVA_LAUNCH_SPEC; ValueError says what is wrong."""
    if text is None:
        text = os.environ.get(SPEC_ENV)
        if not text:
            raise ValueError(f"no launch spec: pass --spec or set ${SPEC_ENV}")
    try:
        return LaunchSpec.model_validate_json(text)
    except ValidationError as err:
        raise ValueError(f"invalid launch spec: {err}") from None


def main(
    spec_text: str | None,
    workdir: Path,
    ready_file: Path | None,
    qemu_binary: str = "qemu-system-x86_64",
    shutdown_grace: float = 20.0,
) -> int:
    """The `kubenova launch` command: SIGTERM and SIGINT stop the VM cleanly."""
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="kubenova-launch: %(levelname)s %(message)s"
    )
    try:
        spec = load_spec(spec_text)
    except ValueError as err:
        log.error("%s", err)
        return EXIT_BAD_SPEC
    workdir.mkdir(parents=True, exist_ok=True)
    launcher = Launcher(
        spec, workdir, ready_file, qemu_binary=qemu_binary, shutdown_grace=shutdown_grace
    )

    async def run() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        return await launcher.run(stop)

    return asyncio.run(run())
