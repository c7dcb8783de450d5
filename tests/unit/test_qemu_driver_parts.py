"""The qemu driver's pieces that need no VM: boot line, seed, disk sizes, probe override, state,
an instance's files built once and started again."""

from __future__ import annotations

import asyncio
import struct
from pathlib import Path

import pytest
import yaml

from kubenova.metadata.nocloud import build_seed, seed_files
from kubenova.models.v1alpha1.states import PowerState
from kubenova.tools import find_tool
from kubenova.virt.driver import DriverError, GuestMetadata, InstanceNotFound, SpawnRequest
from kubenova.virt.qemu import accel, nics
from kubenova.virt.qemu.driver import BOOT_ANNOUNCEMENT, QemuProcessDriver, parse_boot_line
from kubenova.virt.qemu.overlay import overlay_argv, virtual_size
from kubenova.virt.qemu.paths import InstancePaths
from kubenova.virt.qemu.prepare import (
    is_prepared,
    prepare_instance,
    restart_instance,
    saved_argv,
)
from kubenova.virt.qemu.process import argument_after

UID = "0b6f3c52-6c1e-4a8e-9d4c-3f1f7f0d2a11"


def announcement(hostname: str, instance_id: str) -> str:
    return BOOT_ANNOUNCEMENT.format(hostname=hostname, instance_id=instance_id)


def test_boot_line_round_trips_and_the_last_one_wins():
    log = f"[    1.2] noise\r\n{announcement('a', 'one')}\r\nx\n{announcement('b', 'two')}\r\n"
    assert parse_boot_line(log) == {"hostname": "b", "instance-id": "two"}


def test_boot_line_needs_a_complete_line():
    assert parse_boot_line("kernel noise\n") is None
    assert parse_boot_line(announcement("a", "one")) is None  # still being written
    assert parse_boot_line(announcement("a", "one") + "\n") is not None


def test_meta_data_and_default_user_data():
    files = seed_files(
        GuestMetadata(instance_id=UID, hostname="web-1", public_keys=("ssh-ed25519 K",))
    )
    assert yaml.safe_load(files["meta-data"]) == {
        "instance-id": UID,
        "local-hostname": "web-1",
        "public-keys": ["ssh-ed25519 K"],
    }
    assert files["user-data"] == "#cloud-config\n{}\n"
    assert "network-config" not in files


def test_user_data_and_network_config_are_passed_verbatim():
    meta = GuestMetadata(UID, "h", user_data="#!/bin/sh\necho hi\n", network_config="version: 2\n")
    files = seed_files(meta)
    assert files["user-data"] == "#!/bin/sh\necho hi\n"
    assert files["network-config"] == "version: 2\n"


def test_seed_iso_is_labelled_cidata(tmp_path):
    seed = build_seed(GuestMetadata(UID, "web-1"), tmp_path / "seed.iso")
    data = seed.read_bytes()
    # The primary volume descriptor sits in sector 16; its volume id at byte 40, 32 bytes long.
    assert data[0x8001:0x8006] == b"CD001"
    assert data[0x8028:0x8048].rstrip() == b"cidata"
    assert b"local-hostname: web-1" in data
    assert sorted(p.name for p in tmp_path.iterdir()) == ["seed.iso"]  # no staging left


def test_virtual_size_of_qcow2_and_raw(tmp_path):
    qcow2 = tmp_path / "a.qcow2"
    qcow2.write_bytes(b"QFI\xfb" + bytes(20) + struct.pack(">Q", 5 << 30) + bytes(100))
    assert virtual_size(qcow2, "qcow2") == 5 << 30
    raw = tmp_path / "a.raw"
    raw.write_bytes(bytes(4096))
    assert virtual_size(raw, "raw") == 4096
    with pytest.raises(ValueError, match="not a qcow2"):
        virtual_size(raw, "qcow2")


def test_overlay_grows_only_when_asked():
    args = overlay_argv("qemu-img", Path("/b.qcow2"), "qcow2", Path("/i/disk.qcow2"), None)
    assert args == [
        *("qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", "/b.qcow2"),
        "/i/disk.qcow2",
    ]
    assert overlay_argv("qemu-img", Path("/b"), "raw", Path("/d"), 1 << 30)[-1] == str(1 << 30)


@pytest.mark.parametrize("forced", ["tcg", "kvm", "TCG"])
def test_accelerator_override_skips_the_probe(monkeypatch, forced):
    monkeypatch.setenv("KUBENOVA_ACCEL", forced)
    monkeypatch.setattr(accel, "_probe", lambda *_: pytest.fail("probed"))
    assert accel.probe_accelerator("/nonexistent/qemu") == forced.lower()


def test_accelerator_override_must_be_known(monkeypatch):
    monkeypatch.setenv("KUBENOVA_ACCEL", "hvf")
    with pytest.raises(ValueError, match="KUBENOVA_ACCEL"):
        accel.probe_accelerator("qemu")


def test_a_prepared_instance_starts_again_on_its_own_disk(tmp_path, monkeypatch):
    """What the launcher does in a pod re-created on a kept claim: the overlay (the guest's
    data) and the seed stay, the argv is built again for what the new pod has (here /dev/kvm)."""
    monkeypatch.setenv("KUBENOVA_ACCEL", "tcg")
    base = tmp_path / "base.raw"
    base.write_bytes(bytes(1 << 20))
    paths = InstancePaths(tmp_path / "vm")
    request = SpawnRequest(
        instance_id=UID,
        name="demo/web-1",
        vcpus=1,
        ram_mib=256,
        disk_gib=1,
        image_path=base,
        image_format="raw",
        metadata=GuestMetadata(UID, "web-1"),
    )
    assert not is_prepared(paths)
    with pytest.raises(DriverError, match="no prepared instance"):
        asyncio.run(restart_instance(request, paths, "qemu-system-x86_64", daemonize=False))
    qemu_img = find_tool("qemu-img")
    first = asyncio.run(
        prepare_instance(request, paths, base, "qemu-system-x86_64", qemu_img, daemonize=False)
    )
    assert is_prepared(paths) and saved_argv(paths) == first
    assert argument_after(first, "-accel") == "tcg"
    disk, seed = paths.disk.stat(), paths.seed.stat()
    with paths.disk.open("ab") as overlay:  # stands in for what the guest wrote
        overlay.write(b"guest data")
    written = paths.disk.read_bytes()

    monkeypatch.setenv("KUBENOVA_ACCEL", "kvm")
    again = asyncio.run(restart_instance(request, paths, "qemu-system-x86_64", daemonize=False))
    assert argument_after(again, "-accel") == "kvm" and saved_argv(paths) == again
    assert paths.disk.stat().st_ino == disk.st_ino and paths.disk.read_bytes() == written
    assert paths.seed.stat().st_mtime_ns == seed.st_mtime_ns, "the seed is not rebuilt"

    paths.launch.write_text("not json")
    with pytest.raises(DriverError, match="cannot be started"):
        saved_argv(paths)
    paths.launch.unlink()
    assert not is_prepared(paths), "a build that never finished is no VM to start"


def test_state_without_processes(tmp_path):
    driver = QemuProcessDriver(tmp_path)

    async def scenario():
        assert await driver.list_instances() == []
        (tmp_path / "instances" / UID).mkdir(parents=True)
        (tmp_path / "instances" / ".partial").mkdir()
        assert await driver.list_instances() == [UID]
        info = await driver.get_info(UID)
        assert (info.power_state, info.pid) == (PowerState.SHUTDOWN, None)
        await driver.destroy(UID)
        await driver.destroy(UID)  # absent: still fine
        await driver.destroy("../../etc")  # not an id: nothing to do
        with pytest.raises(InstanceNotFound):
            await driver.get_info(UID)
        with pytest.raises(InstanceNotFound):
            await driver.console_output("not-a-uuid")

    asyncio.run(scenario())
    assert not (tmp_path / "instances" / UID).exists()


def test_a_torn_nics_record_does_not_keep_the_instance_from_being_removed(tmp_path):
    """An operator killed while writing nics.json once left it empty, and every later spawn
    (which first removes what an unfinished spawn left) and destroy failed on it."""
    driver = QemuProcessDriver(tmp_path)
    root = tmp_path / "instances" / UID
    root.mkdir(parents=True)
    (root / nics.NICS_FILE).write_text("")
    with pytest.raises(DriverError, match="unreadable"):
        nics.load(root)
    asyncio.run(driver.destroy(UID))
    assert not root.exists()


def test_the_nics_record_is_written_whole(tmp_path):
    nics.save(tmp_path, [])
    assert nics.load(tmp_path) == ()
    assert sorted(p.name for p in tmp_path.iterdir()) == [nics.NICS_FILE]  # no temporary left
