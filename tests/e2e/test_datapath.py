"""Real QEMU guests (the busybox test guest, TCG) on the datapath: each gets its Port's address
by DHCP from the Network's dnsmasq through its tap, the host side (the namespace) reaches it,
and the two guests reach each other. The guests' only network configuration is DHCP (no
network-config in the seed). QEMU runs inside the Network's namespace and opens its tap by name.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubenova.network.datapath import Datapath, NetworkConfig, PortBinding
from kubenova.tools import find_tool
from kubenova.virt.driver import GuestMetadata, SpawnRequest
from kubenova.virt.qemu.paths import InstancePaths
from kubenova.virt.qemu.prepare import prepare_instance
from tests.e2e.conftest import GUEST

pytestmark = [pytest.mark.e2e, pytest.mark.datapath]

NET = NetworkConfig(uid="e2e-net-uid", cidr="10.78.0.0/24", gateway="10.78.0.1", name="t/net")
PORTS = (
    PortBinding("e2e-port-1", "fa:16:3e:78:00:0a", "10.78.0.10", "guest-one", "t/net-10"),
    PortBinding("e2e-port-2", "fa:16:3e:78:00:0b", "10.78.0.11", "guest-two", "t/net-11"),
)
#: user-data (the busybox guest runs a #! script after booting): DHCP on eth0, then ping a peer.
USER_DATA = """#!/bin/sh
cat >/tmp/dhcp.sh <<'SCRIPT'
#!/bin/sh
case "$1" in bound|renew)
  ip addr add "$ip/$mask" dev "$interface"
  echo "kubenova-test lease ip=$ip hostname=$hostname router=$router" ;;
esac
SCRIPT
chmod 0755 /tmp/dhcp.sh
ip link set eth0 up
udhcpc -i eth0 -f -q -n -t 20 -T 1 -s /tmp/dhcp.sh || echo "kubenova-test no lease"
tries=0
until ping -c 1 -W 1 {peer} >/dev/null 2>&1; do
  tries=$((tries + 1))
  if [ $tries -ge 60 ]; then echo "kubenova-test peer unreachable"; exit 1; fi
done
echo "kubenova-test reached {peer}"
"""
BOOT_LIMIT = 240.0  # TCG on a shared machine


def run(coro):
    return asyncio.run(coro)


def alive(pid: int) -> bool:
    cmdline = Path(f"/proc/{pid}/cmdline")
    try:
        return bool(cmdline.read_bytes())
    except OSError:
        return False


def wait_for_line(console: Path, pattern: str, pid: int) -> re.Match:
    deadline = time.monotonic() + BOOT_LIMIT
    while True:
        text = console.read_text(errors="replace") if console.exists() else ""
        if match := re.search(pattern, text):
            return match
        assert alive(pid), f"qemu exited; console: {text[-2000:]}"
        assert time.monotonic() < deadline, f"no {pattern!r} in time; console: {text[-2000:]}"
        time.sleep(0.2)


@pytest.fixture
def workdir() -> Iterator[Path]:
    directory = Path(tempfile.mkdtemp(prefix="kubenova-dp-e2e-", dir="/tmp"))
    directory.chmod(0o755)  # dnsmasq re-reads its hosts file as nobody
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def datapath(workdir: Path) -> Iterator[Datapath]:
    dp = Datapath(workdir / "datapath", scope=secrets.token_hex(4))
    try:
        yield dp
    finally:
        run(dp.cleanup())
    assert run(dp.inventory()).empty


@pytest.fixture
def qemus(datapath: Datapath) -> Iterator[list[int]]:
    """The guests' qemu pids; killed (and waited for) before the datapath is cleaned up."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 20
    while any(alive(pid) for pid in pids):
        assert time.monotonic() < deadline, "a qemu did not exit"
        time.sleep(0.1)


def boot(datapath: Datapath, workdir: Path, port: PortBinding, peer: str) -> tuple[int, Path]:
    """One busybox guest with one NIC on the Port's tap; its pid and console log."""
    if not GUEST.exists():
        pytest.fail(f"{GUEST} is missing: `make setup` builds it")
    plug = run(datapath.plug(NET, port, "compute-0"))
    instance_id = str(uuid.uuid4())
    paths = InstancePaths(workdir / "instances" / instance_id)
    request = SpawnRequest(
        instance_id=instance_id,
        name=f"t/{port.hostname}",
        vcpus=1,
        ram_mib=128,
        disk_gib=0,
        image_path=GUEST,
        image_format="qcow2",
        metadata=GuestMetadata(instance_id, port.hostname, USER_DATA.format(peer=peer)),
    )
    qemu, qemu_img = find_tool("qemu-system-x86_64"), find_tool("qemu-img")
    argv = run(prepare_instance(request, paths, GUEST, qemu, qemu_img))
    argv += ["-netdev", plug.netdev("net0")]
    argv += ["-device", f"virtio-net-pci,netdev=net0,mac={port.mac},romfile="]
    subprocess.run(
        [*datapath.exec_prefix(NET.uid), *argv],
        cwd=paths.root, check=True, timeout=60, capture_output=True,
    )  # fmt: skip
    return int(paths.pidfile.read_text()), paths.console


def test_two_guests_get_their_ports_by_dhcp_and_reach_each_other(datapath, workdir, qemus):
    place = run(datapath.ensure_network(NET, PORTS))
    one, two = PORTS
    started = time.monotonic()
    pid1, console1 = boot(datapath, workdir, one, peer=two.ip)
    qemus.append(pid1)
    pid2, console2 = boot(datapath, workdir, two, peer=one.ip)
    qemus.append(pid2)
    for port in PORTS:
        assert run(datapath.wait_up(NET.uid, port, within=30)).up  # network-vif-plugged

    lease1 = wait_for_line(console1, r"kubenova-test lease ip=(\S+) hostname=(\S+)", pid1)
    lease2 = wait_for_line(console2, r"kubenova-test lease ip=(\S+) hostname=(\S+)", pid2)
    assert lease1.groups() == (one.ip, one.hostname)
    assert lease2.groups() == (two.ip, two.hostname)
    wait_for_line(console1, rf"kubenova-test reached {re.escape(two.ip)}", pid1)
    wait_for_line(console2, rf"kubenova-test reached {re.escape(one.ip)}", pid2)
    print(f"two guests leased and reached each other {time.monotonic() - started:.1f}s after start")

    leases = {(lease.mac, lease.ip) for lease in run(datapath.leases(NET.uid))}
    assert leases == {(one.mac, one.ip), (two.mac, two.ip)}
    ping = [*datapath.exec_prefix(NET.uid), find_tool("busybox"), "ping", "-c", "1", "-W", "5"]
    for port in PORTS:  # the host side: from the bridge's address in the namespace
        subprocess.run([*ping, port.ip], check=True, timeout=30, capture_output=True)
    inside = run(datapath.inventory()).namespaces[0]
    assert inside.netns == place.netns and {pid1, pid2} <= set(inside.pids)
