"""`kubenova launch`, the QEMU pod driver's container command, run as a local process: it fetches
the image from a file:// source and verifies its sha256, boots the busybox guest under real QEMU
(TCG), copies the serial console to stdout, writes the ready file once the guest announces its
boot, and on SIGTERM powers the guest off through ACPI and leaves nothing running.

This is the code the pod runs; tests/integration/test_pod_driver.py covers the pod around it
(with kwok standing in for the kubelet, so no container runs there).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubenova.virt.driver import GuestMetadata, SpawnRequest
from kubenova.virt.qemu.launcher import SPEC_ENV, LaunchSpec
from tests.kit import wait_for
from tests.proc import children_of, command_of, processes_with, wait_gone

pytestmark = pytest.mark.e2e

GUEST = Path(__file__).resolve().parents[2] / ".bin" / "guest" / "busybox.qcow2"
BOOT_TIMEOUT = 120


@pytest.fixture(scope="module")
def checksum() -> str:
    if not GUEST.exists():
        pytest.fail(f"{GUEST} is missing: `make setup` builds it")
    return Path(f"{GUEST}.sha256").read_text().split()[0]


def spec(checksum: str, hostname: str = "launched", **overrides) -> LaunchSpec:
    instance_id = str(uuid.uuid4())
    request = SpawnRequest(
        instance_id=instance_id,
        name=f"e2e/{hostname}",
        vcpus=1,
        ram_mib=256,
        disk_gib=1,
        image_path=None,
        image_format="qcow2",
        image_source=f"file://{GUEST.resolve()}",
        image_checksum=f"sha256:{checksum}",
        metadata=GuestMetadata(instance_id=instance_id, hostname=hostname),
    )
    return LaunchSpec.from_request(request).model_copy(update=overrides)


class Launch:
    """`kubenova launch` as a child process, its console (stdout) and log (stderr) in files."""

    def __init__(
        self,
        work: Path,
        launch_spec: LaunchSpec | None,
        raw_spec: str | None = None,
        workdir: Path | None = None,
    ):
        """`workdir`: the VM's files (default <work>/vm); two launches on one are a pod
        re-created on the instance's kept claim."""
        self.work = work
        work.mkdir(parents=True, exist_ok=True)
        self.ready = work / "ready"
        self.stdout, self.stderr = work / "console.out", work / "launch.err"
        env = {**os.environ, "KUBENOVA_ACCEL": "tcg"}  # as the pod on a node without KVM
        text = raw_spec if raw_spec is not None else launch_spec.model_dump_json()
        env[SPEC_ENV] = text  # the way the pod passes it
        with self.stdout.open("wb") as out, self.stderr.open("wb") as err:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "kubenova.cli",
                    "launch",
                    f"--workdir={workdir or work / 'vm'}",
                    f"--ready-file={self.ready}",
                ],
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
                env=env,
            )

    def console(self) -> str:
        return self.stdout.read_text(errors="replace")

    def log(self) -> str:
        return self.stderr.read_text(errors="replace")

    def wait(self, timeout: float = 60) -> int:
        return self.proc.wait(timeout)


@pytest.fixture
def launches(tmp_path: Path) -> Iterator[list[Launch]]:
    """Launches of a test; at teardown none may still run, nor any qemu of theirs."""
    started: list[Launch] = []
    yield started
    for launch in started:
        if launch.proc.poll() is None:
            launch.proc.kill()
            launch.proc.wait()
            pytest.fail(f"the launcher was still running:\n{launch.log()}")
    leaked = processes_with("qemu-system", str(tmp_path))
    for pid in leaked:
        os.kill(pid, signal.SIGKILL)
    assert leaked == [], f"qemu processes left behind: {leaked}"


def test_boots_the_guest_signals_ready_and_stops_cleanly(tmp_path, checksum, launches):
    launch_spec = spec(checksum)
    launch = Launch(tmp_path, launch_spec)
    launches.append(launch)

    def ready() -> bool:
        assert launch.proc.poll() is None, f"the launcher exited:\n{launch.log()}"
        return launch.ready.exists()

    start = time.monotonic()
    wait_for(ready, BOOT_TIMEOUT, "the ready file")
    print(f"\nlauncher: image verified and guest booted in {time.monotonic() - start:.2f}s")
    assert json.loads(launch.ready.read_text()) == {
        "hostname": "launched",
        "instance-id": launch_spec.instance_id,
    }
    # The console went to stdout (what `kubectl logs` shows), announcement included.
    assert (
        f"kubenova-guest booted hostname=launched instance-id={launch_spec.instance_id}"
        in launch.console()
    )
    assert f"verified (sha256 {checksum})" in launch.log()
    # qemu runs in the foreground: the launcher's own child, not daemonized.
    qemu = processes_with("qemu-system", launch_spec.instance_id)
    assert len(qemu) == 1 and qemu[0] in children_of(launch.proc.pid), qemu
    assert "-daemonize" not in Path(f"/proc/{qemu[0]}/cmdline").read_bytes().decode()
    assert "qemu-system" in command_of(qemu[0])

    launch.proc.send_signal(signal.SIGTERM)  # what the kubelet does when the pod is deleted
    assert launch.wait(60) == 0, launch.log()
    assert "kubenova-guest powering off" in launch.console(), "the guest got ACPI power-off"
    assert not launch.ready.exists(), "not ready once stopped"
    assert wait_gone(qemu) == []


def test_a_wrong_checksum_fails_before_anything_runs(tmp_path, checksum, launches):
    launch = Launch(tmp_path, spec(checksum, image_checksum="0" * 64))
    launches.append(launch)
    assert launch.wait() == 1
    assert "checksum mismatch" in launch.log()
    assert not launch.ready.exists()


def test_a_malformed_spec_is_refused(tmp_path, launches):
    launch = Launch(tmp_path, None, raw_spec='{"instance_id": "x"}')
    launches.append(launch)
    assert launch.wait() == 2
    assert "invalid launch spec" in launch.log()


def test_a_launch_on_a_kept_volume_boots_the_same_disk_again(tmp_path, checksum, launches):
    """What the pod driver's start after a stop, or a reboot, runs: a new launcher on the
    instance's kept claim. The overlay (the guest's data) and the verified base image stay;
    only the argv is built again; the new launcher's stdout (`kubectl logs` of the new pod) is
    this boot's console, and it is ready once this boot announced itself."""
    qemu_io = shutil.which("qemu-io")
    assert qemu_io, "qemu-io (qemu-utils, which `make setup` installs) is missing"
    launch_spec = spec(checksum)
    workdir = tmp_path / "claim"
    disk = workdir / "instance" / "disk.qcow2"
    announcement = f"kubenova-guest booted hostname=launched instance-id={launch_spec.instance_id}"

    def boot(name: str) -> Launch:
        launch = Launch(tmp_path / name, launch_spec, workdir=workdir)
        launches.append(launch)

        def ready() -> bool:
            assert launch.proc.poll() is None, f"the launcher exited:\n{launch.log()}"
            return launch.ready.exists()

        wait_for(ready, BOOT_TIMEOUT, f"the {name} boot's ready file")
        return launch

    def stop(launch: Launch) -> None:
        launch.proc.send_signal(signal.SIGTERM)
        assert launch.wait(60) == 0, launch.log()

    first = boot("first")
    stop(first)
    # What the guest wrote, near the end of its 1 GiB disk (past the base image's data).
    write = ["-f", "qcow2", "-c", "write -P 0x6b 1000M 64k", str(disk)]
    subprocess.run([qemu_io, *write], check=True, capture_output=True)
    inode = disk.stat().st_ino
    base = {p.name: p.stat().st_mtime_ns for p in (workdir / "_base").iterdir()}

    second = boot("second")
    assert "again from its kept disk" in second.log(), second.log()
    # stdout repeats how the first run ended (its ACPI power-off), then this boot's console;
    # the ready file waited for this boot's announcement (boot() returned once it was there)
    assert second.console().count(announcement) == 2, "the first run's console, then this boot"
    assert "kubenova-guest powering off" in second.console(), "how the first run ended"
    assert "of the earlier run first" in second.log()
    assert first.console().count(announcement) == 1
    kept_log = (workdir / "instance" / "console.log").read_text(errors="replace")
    assert kept_log.count(announcement) == 2, "the log on the volume keeps every boot"
    stop(second)

    assert disk.stat().st_ino == inode, "the overlay was not built again"
    read = ["-f", "qcow2", "-c", "read -P 0x6b 1000M 64k", str(disk)]
    check = subprocess.run([qemu_io, *read], capture_output=True, text=True)
    assert check.returncode == 0, f"the guest's data is gone: {check.stdout}{check.stderr}"
    assert {p.name: p.stat().st_mtime_ns for p in (workdir / "_base").iterdir()} == base


def test_an_unfinished_build_on_the_volume_is_done_afresh(tmp_path, checksum, launches):
    """A pod that died while building (no launch.json yet) left files that are no VM: the next
    launcher removes them and builds the VM anew."""
    workdir = tmp_path / "claim"
    leftover = workdir / "instance"
    leftover.mkdir(parents=True)
    (leftover / "disk.qcow2").write_bytes(b"half an overlay")
    launch = Launch(tmp_path / "run", spec(checksum), workdir=workdir)
    launches.append(launch)

    def ready() -> bool:
        assert launch.proc.poll() is None, f"the launcher exited:\n{launch.log()}"
        return launch.ready.exists()

    wait_for(ready, BOOT_TIMEOUT, "the ready file")
    assert "removing the unfinished build" in launch.log()
    launch.proc.send_signal(signal.SIGTERM)
    assert launch.wait(60) == 0, launch.log()
