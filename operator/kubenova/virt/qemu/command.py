"""The qemu command line for one instance: a pure function of the request, so it is unit-tested
without QEMU and is the one place that decides what the VM looks like."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from kubenova.virt.driver import QEMU_GUEST_AGENT_PROPERTY, SpawnRequest
from kubenova.virt.qemu import qga
from kubenova.virt.qemu.paths import InstancePaths

#: q35 reached the guest's boot line slightly faster than pc under TCG; microvm hangs under TCG.
MACHINE = "q35"
#: The QMP socket, relative to the instance directory qemu is started in: unix socket paths are
#: limited to 107 bytes and a state directory can be deeper than that.
QMP_SOCKET = "qmp.sock"
_MAC = re.compile(r"[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}")


def cpu_args(accel: str) -> list[str]:
    """KVM passes the host CPU through; TCG keeps QEMU's default model (fast to emulate)."""
    return ["-cpu", "host"] if accel == "kvm" else []


def opt(value: str | Path) -> str:
    """Escape a value inside a qemu `key=value,...` option (a comma is written twice)."""
    return str(value).replace(",", ",,")


def volume_format(path: Path) -> str:
    """Volumes are qcow2 when named so, else raw; never probed (a raw disk could pose as qcow2)."""
    return "qcow2" if path.suffix == ".qcow2" else "raw"


def build_argv(
    request: SpawnRequest,
    paths: InstancePaths,
    accel: str,
    qemu_binary: str,
    *,
    daemonize: bool = True,
    netdevs: Sequence[str] | None = None,
) -> list[str]:
    """argv for a daemonized qemu; run it with cwd=paths.root (see QMP_SOCKET).

    daemonize=False: qemu stays in the foreground, the child of whoever started it (the
    launcher in a pod); it still writes its pidfile, so the same files describe the VM.
    netdevs: one `-netdev` value per interface, with id=net<index> (the embedded datapath's
    taps, see virt/qemu/nics.py); None: isolated user-mode NICs (a pod has no datapath).
    """
    if netdevs is not None and len(netdevs) != len(request.interfaces):
        raise ValueError(f"{len(netdevs)} netdevs for {len(request.interfaces)} interfaces")
    argv = [
        qemu_binary,
        "-name", f"guest={opt(request.name)},debug-threads=on",
        "-uuid", request.instance_id,
        "-machine", MACHINE,
        "-accel", accel,
        *cpu_args(accel),
        "-smp", str(request.vcpus),
        "-m", f"{request.ram_mib}M",
        "-no-user-config", "-nodefaults", "-display", "none", "-vga", "none",
        "-rtc", "base=utc",
        "-pidfile", str(paths.pidfile),
        "-chardev", f"file,id=serial0,path={opt(paths.console)},append=on",
        "-serial", "chardev:serial0",
        "-chardev", f"socket,id=qmp,path={QMP_SOCKET},server=on,wait=off",
        "-mon", "chardev=qmp,mode=control",
        # Root disk first (the one SeaBIOS boots), then the NoCloud seed, read-only.
        "-drive", f"file={opt(paths.disk)},if=none,id=disk0,format=qcow2,discard=unmap",
        "-device", "virtio-blk-pci,drive=disk0,bootindex=0",
        "-drive", f"file={opt(paths.seed)},if=none,id=seed,format=raw,readonly=on",
        "-device", "virtio-blk-pci,drive=seed",
    ]  # fmt: skip
    if daemonize:
        # Outlives the operator, so a restarted operator adopts it (found by pidfile + uuid).
        argv.insert(argv.index("-pidfile"), "-daemonize")
    if wants_guest_agent(request.image_properties):
        argv += qga.chardev_args(Path(qga.SOCKET))  # relative: run in paths.root, as QMP
    for index, volume in enumerate(request.volumes):
        argv += [
            "-drive",
            f"file={opt(volume)},if=none,id=vol{index},format={volume_format(volume)}",
            "-device",
            f"virtio-blk-pci,drive=vol{index}",
        ]
    for index, nic in enumerate(request.interfaces):
        if not _MAC.fullmatch(nic.mac):
            raise ValueError(f"malformed MAC address {nic.mac!r}")
        # Without a datapath, user-mode networking with restrict=on: the NIC exists (with its
        # MAC) but reaches nothing on the host. romfile= skips the iPXE option ROM, so SeaBIOS
        # boots faster.
        netdev = f"user,id=net{index},restrict=on" if netdevs is None else netdevs[index]
        if f"id=net{index}," not in f"{netdev},":
            raise ValueError(f"netdev {netdev!r} is not id=net{index}")
        argv += [
            "-netdev",
            netdev,
            "-device",
            f"virtio-net-pci,netdev=net{index},mac={nic.mac},romfile=",
        ]
    return argv


def wants_guest_agent(properties: Mapping[str, str]) -> bool:
    """Nova's hw_qemu_guest_agent=yes: the image runs qemu-ga, so the VM gets its channel."""
    return str(properties.get(QEMU_GUEST_AGENT_PROPERTY, "")).lower() in ("yes", "true", "1")
