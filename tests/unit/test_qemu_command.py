"""The qemu command line: what the VM looks like, checked without starting QEMU."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from kubenova.virt.driver import GuestMetadata, NetworkInterface, SpawnRequest
from kubenova.virt.qemu.command import QMP_SOCKET, build_argv
from kubenova.virt.qemu.paths import InstancePaths

UID = "0b6f3c52-6c1e-4a8e-9d4c-3f1f7f0d2a11"
PATHS = InstancePaths(Path("/var/lib/kubenova/instances") / UID)


def request(**overrides) -> SpawnRequest:
    fields = {
        "instance_id": UID,
        "name": "demo/web-1",
        "vcpus": 2,
        "ram_mib": 512,
        "disk_gib": 1,
        "image_path": Path("/cache/base.qcow2"),
        "image_format": "qcow2",
        "metadata": GuestMetadata(instance_id=UID, hostname="web-1"),
    }
    return SpawnRequest(**{**fields, **overrides})


def argv(accel: str = "tcg", **overrides) -> list[str]:
    return build_argv(request(**overrides), PATHS, accel, "/usr/bin/qemu-system-x86_64")


def value(args: list[str], flag: str) -> str:
    return args[args.index(flag) + 1]


def values(args: list[str], flag: str) -> list[str]:
    return [b for a, b in itertools.pairwise(args) if a == flag]


def test_identity_size_and_accelerator():
    args = argv()
    assert args[0] == "/usr/bin/qemu-system-x86_64"
    assert value(args, "-name") == "guest=demo/web-1,debug-threads=on"
    assert value(args, "-uuid") == UID
    assert value(args, "-machine") == "q35"
    assert value(args, "-accel") == "tcg"
    assert value(args, "-smp") == "2"
    assert value(args, "-m") == "512M"
    assert "-cpu" not in args


def test_kvm_passes_the_host_cpu_through():
    args = argv("kvm")
    assert value(args, "-accel") == "kvm"
    assert value(args, "-cpu") == "host"


def test_headless_daemon_that_can_reboot():
    args = argv()
    for flag in ("-nodefaults", "-no-user-config", "-daemonize"):
        assert flag in args
    assert value(args, "-display") == "none"
    assert value(args, "-vga") == "none"
    assert value(args, "-pidfile") == str(PATHS.pidfile)
    # -nographic conflicts with -daemonize; -no-reboot would turn a guest reboot into an exit.
    assert "-nographic" not in args
    assert "-no-reboot" not in args
    assert "-no-shutdown" not in args


def test_serial_console_appends_to_a_file_and_qmp_listens_without_waiting():
    chardevs = values(argv(), "-chardev")
    assert f"file,id=serial0,path={PATHS.console},append=on" in chardevs
    assert f"socket,id=qmp,path={QMP_SOCKET},server=on,wait=off" in chardevs
    assert value(argv(), "-serial") == "chardev:serial0"
    assert value(argv(), "-mon") == "chardev=qmp,mode=control"


def test_disks_root_first_then_read_only_seed_then_volumes():
    args = argv(volumes=(Path("/vols/data.qcow2"), Path("/vols/scratch.img")))
    drives = values(args, "-drive")
    assert drives[0].startswith(f"file={PATHS.disk},if=none,id=disk0,format=qcow2")
    assert drives[1] == f"file={PATHS.seed},if=none,id=seed,format=raw,readonly=on"
    assert drives[2] == "file=/vols/data.qcow2,if=none,id=vol0,format=qcow2"
    assert drives[3] == "file=/vols/scratch.img,if=none,id=vol1,format=raw"
    devices = [d for d in values(args, "-device") if d.startswith("virtio-blk-pci")]
    assert devices == [
        "virtio-blk-pci,drive=disk0,bootindex=0",
        "virtio-blk-pci,drive=seed",
        "virtio-blk-pci,drive=vol0",
        "virtio-blk-pci,drive=vol1",
    ]


def test_one_isolated_virtio_nic_per_interface_with_its_mac():
    nics = (NetworkInterface(mac="52:54:00:00:00:01"), NetworkInterface(mac="52:54:00:00:00:02"))
    args = argv(interfaces=nics)
    assert values(args, "-netdev") == ["user,id=net0,restrict=on", "user,id=net1,restrict=on"]
    assert [d for d in values(args, "-device") if d.startswith("virtio-net-pci")] == [
        "virtio-net-pci,netdev=net0,mac=52:54:00:00:00:01,romfile=",
        "virtio-net-pci,netdev=net1,mac=52:54:00:00:00:02,romfile=",
    ]


def test_no_nic_without_interfaces():
    assert "-netdev" not in argv()


def test_commas_in_values_cannot_inject_options():
    paths = InstancePaths(Path("/state,x/instances") / UID)
    args = build_argv(request(name="a,b"), paths, "tcg", "qemu")
    assert value(args, "-name") == "guest=a,,b,debug-threads=on"
    assert values(args, "-drive")[0].startswith("file=/state,,x/instances/")


@pytest.mark.parametrize("mac", ["52:54:00:00:00:01,romfile=/etc/passwd", "not-a-mac"])
def test_malformed_mac_is_refused(mac):
    with pytest.raises(ValueError, match="MAC"):
        argv(interfaces=(NetworkInterface(mac=mac),))


def test_argv_is_a_list_of_strings():
    assert all(
        isinstance(a, str) for a in argv(interfaces=(NetworkInterface("52:54:00:0a:0b:0c"),))
    )


def test_datapath_netdevs_replace_the_isolated_user_nics():
    nics = (NetworkInterface("52:54:00:00:00:01"), NetworkInterface("52:54:00:00:00:02"))
    taps = ["tap,id=net0,ifname=tapa,script=no,downscript=no", "tap,id=net1,fd=7"]
    args = build_argv(request(interfaces=nics), PATHS, "tcg", "qemu", netdevs=taps)
    assert values(args, "-netdev") == taps
    assert "user,id=net0,restrict=on" not in args


@pytest.mark.parametrize("taps", [["tap,id=net0,fd=7"], ["tap,id=net1,fd=7", "tap,id=net0,fd=8"]])
def test_netdevs_must_match_the_interfaces_one_to_one(taps):
    nics = (NetworkInterface("52:54:00:00:00:01"), NetworkInterface("52:54:00:00:00:02"))
    with pytest.raises(ValueError):
        build_argv(request(interfaces=nics), PATHS, "tcg", "qemu", netdevs=taps)


@pytest.mark.parametrize(("prop", "channel"), [("yes", True), ("no", False), (None, False)])
def test_the_guest_agent_channel_only_for_images_that_say_they_run_it(prop, channel):
    properties = {} if prop is None else {"hw_qemu_guest_agent": prop}
    args = argv(image_properties=properties)
    ports = [v for v in values(args, "-device") if v.startswith("virtserialport")]
    if not channel:
        assert ports == [] and not any("qga" in a for a in args)
        return
    assert ports == ["virtserialport,bus=qga-serial.0,chardev=qga0,name=org.qemu.guest_agent.0"]
    assert "socket,path=qga.sock,server=on,wait=off,id=qga0" in values(args, "-chardev")
