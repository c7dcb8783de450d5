"""The datapath on the real kernel: namespaces, bridges, taps and dnsmasq, with veth pairs
standing in for guests' NICs (a "guest" is a namespace of its own running busybox udhcpc).

No packet leaves the namespaces these tests create. Every test removes what it made even when
it fails: the datapath fixture cleans up and then asserts its inventory is empty, the guests
fixture deletes the guest namespaces (their veths go with them).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from kubenova.network.datapath import Datapath, DatapathError, NetworkConfig, PortBinding, probe
from kubenova.network.datapath.names import NETNS_DIR, bridge_name
from kubenova.tools import find_tool

pytestmark = pytest.mark.datapath

_probe = asyncio.run(probe(functional=False))
if not _probe.ok and os.geteuid() != 0:
    pytest.skip(_probe.message(), allow_module_level=True)

NET_A = NetworkConfig(uid="net-a-uid", cidr="10.77.0.0/24", gateway="10.77.0.1", name="t/a")
# The same CIDR: only the separate namespaces keep B's guests from A's.
NET_B = NetworkConfig(uid="net-b-uid", cidr="10.77.0.0/24", gateway="10.77.0.1", name="t/b")
A1 = PortBinding("port-a1", "fa:16:3e:77:00:0a", "10.77.0.10", "web-1", "t/a-10")
A2 = PortBinding("port-a2", "fa:16:3e:77:00:0b", "10.77.0.11", "web-2", "t/a-11")
B1 = PortBinding("port-b1", "fa:16:3e:77:01:0c", "10.77.0.12", "other", "t/b-12")
UDHCPC_SCRIPT = """#!/bin/sh
case "$1" in
bound|renew)
  ip addr add "$ip/$mask" dev "$interface"
  echo "LEASE ip=$ip mask=$mask router=$router dns=$dns hostname=$hostname" ;;
esac
"""


def run(coro):
    return asyncio.run(coro)


def sh(*argv: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=check)


def netns_list() -> set[str]:
    return {line.split()[0] for line in sh("ip", "netns", "list").stdout.splitlines() if line}


def dnsmasq_under(directory: Path) -> list[str]:
    """Live dnsmasq processes with a file under `directory` (zombies have no command line)."""
    found = sh("pgrep", "-a", "-f", f"dnsmasq .*{directory}/", check=False).stdout
    return found.splitlines()


@pytest.fixture
def state_dir() -> Iterator[Path]:
    # Not tmp_path: pytest's base temp is 0700 and dnsmasq re-reads its hosts file as nobody.
    directory = Path(tempfile.mkdtemp(prefix="kubenova-dp-", dir="/tmp"))
    directory.chmod(0o755)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def datapath(state_dir: Path) -> Iterator[Datapath]:
    dp = Datapath(state_dir / "datapath", scope=secrets.token_hex(4))
    try:
        yield dp
    finally:
        run(dp.cleanup())
    left = run(dp.inventory())
    assert left.empty, left
    assert not dnsmasq_under(dp.state_dir)


@dataclass
class Guest:
    netns: str
    port: PortBinding

    def run(self, *argv: str, check: bool = True, timeout: float = 30):
        return sh("ip", "netns", "exec", self.netns, "busybox", *argv, check=check, timeout=timeout)

    def dhcp(self, script: Path, tries: int = 3) -> subprocess.CompletedProcess:
        return self.run(
            "udhcpc", "-i", "eth0", "-f", "-q", "-n", "-t", str(tries), "-T", "1",
            "-s", str(script), check=False,
        )  # fmt: skip

    def ping(self, address: str, count: int = 1) -> bool:
        return self.run("ping", "-c", str(count), "-W", "2", address, check=False).returncode == 0


class Guests:
    """Guest namespaces, each with one veth whose peer sits on a Network's bridge."""

    def __init__(self, datapath: Datapath, state_dir: Path) -> None:
        self.datapath = datapath
        self.made: list[str] = []
        self.script = state_dir / "udhcpc.sh"
        self.script.write_text(UDHCPC_SCRIPT)
        self.script.chmod(0o755)

    def add(self, network: NetworkConfig, port: PortBinding) -> Guest:
        netns = f"kntest-{secrets.token_hex(4)}"
        host_end = f"vg{secrets.token_hex(4)}"
        sh("ip", "netns", "add", netns)
        self.made.append(netns)
        on = self.datapath.netns(network.uid)
        sh("ip", "-n", on, "link", "add", host_end, "type", "veth", "peer", "eth0", "netns", netns)
        sh("ip", "-n", on, "link", "set", host_end, "master", bridge_name(network.uid), "up")
        sh("ip", "-n", netns, "link", "set", "eth0", "address", port.mac, "up")
        sh("ip", "-n", netns, "link", "set", "lo", "up")
        return Guest(netns, port)

    def remove(self) -> None:
        for netns in self.made:
            sh("ip", "netns", "delete", netns, check=False)


@pytest.fixture
def guests(datapath: Datapath, state_dir: Path) -> Iterator[Guests]:
    made = Guests(datapath, state_dir)
    try:
        yield made
    finally:
        made.remove()
    assert not netns_list() & set(made.made)


def lease_line(result: subprocess.CompletedProcess) -> str:
    for line in result.stdout.splitlines():
        if line.startswith("LEASE "):
            return line
    raise AssertionError(f"no lease: {result.stdout} {result.stderr}")


def test_dhcp_gives_each_port_its_address_name_and_dns(datapath, guests):
    place = run(datapath.ensure_network(NET_A, [A1, A2]))
    assert place.dnsmasq == "started" and place.address == "10.77.0.1/24"
    one, two = guests.add(NET_A, A1), guests.add(NET_A, A2)

    assert lease_line(one.dhcp(guests.script)) == (
        "LEASE ip=10.77.0.10 mask=24 router=10.77.0.1 dns=10.77.0.1 hostname=web-1"
    )
    assert "ip=10.77.0.11 " in lease_line(two.dhcp(guests.script))
    events, offset = run(datapath.dhcp_events(NET_A.uid))
    assert next(e.kind for e in events if e.mac == A1.mac) == "DHCPDISCOVER"
    assert ("DHCPACK", A2.ip) in {(e.kind, e.ip) for e in events if e.mac == A2.mac}
    assert run(datapath.dhcp_events(NET_A.uid, offset)) == ([], offset)
    leases = {(lease.mac, lease.ip) for lease in run(datapath.leases(NET_A.uid))}
    assert leases == {(A1.mac, A1.ip), (A2.mac, A2.ip)}
    assert "10.77.0.10/24" in one.run("ip", "-4", "addr", "show", "dev", "eth0").stdout

    answer = two.run("nslookup", "web-1.openstacklocal", "10.77.0.1", check=False).stdout
    assert "10.77.0.10" in answer, answer


def test_guests_on_one_network_reach_each_other_and_not_another_network(datapath, guests):
    run(datapath.ensure_network(NET_A, [A1, A2]))
    run(datapath.ensure_network(NET_B, [B1]))
    a1, a2, b1 = guests.add(NET_A, A1), guests.add(NET_A, A2), guests.add(NET_B, B1)
    for guest in (a1, a2, b1):
        lease_line(guest.dhcp(guests.script))

    assert a1.ping(A2.ip) and a2.ping(A1.ip)
    assert a1.ping("10.77.0.1")  # the host side: the bridge in A's namespace
    assert b1.ping("10.77.0.1")  # B's own gateway, in B's namespace
    # Same CIDR, separate namespaces: nothing of A answers B's guest.
    assert not b1.ping(A1.ip, count=2)
    assert not a1.ping(B1.ip, count=2)
    # The machine's own namespace has none of it.
    root_links = sh("ip", "-o", "link", "show").stdout
    assert bridge_name(NET_A.uid) not in root_links and "kntest" not in root_links


def test_port_changes_reconfigure_the_running_dnsmasq(datapath, guests):
    first = run(datapath.ensure_network(NET_A, [A1]))
    late = guests.add(NET_A, A2)
    refused = late.dhcp(guests.script, tries=2)
    assert "LEASE" not in refused.stdout  # static mode: an unknown MAC gets nothing

    assert run(datapath.update_ports(NET_A.uid, [A1, A2])) is True
    assert "ip=10.77.0.11 " in lease_line(late.dhcp(guests.script))
    assert datapath.files(first.netns).hosts.read_text().count("\n") == 2
    assert run(datapath.ensure_network(NET_A, [A1, A2])).dnsmasq_pid == first.dnsmasq_pid


def test_dnsmasq_is_adopted_after_an_operator_restart_not_duplicated(datapath, guests):
    first = run(datapath.ensure_network(NET_A, [A1]))
    pidfile = datapath.files(first.netns).pidfile
    # A new operator process: a new Datapath over the same state directory.
    restarted = Datapath(datapath.state_dir, scope=datapath.scope)
    again = run(restarted.ensure_network(NET_A, [A1, A2]))
    assert (again.dnsmasq, again.dnsmasq_pid) == ("adopted", first.dnsmasq_pid)
    assert len(dnsmasq_under(pidfile.parent)) == 1
    # The adopted dnsmasq serves the Ports the new operator gave it.
    assert "ip=10.77.0.11 " in lease_line(guests.add(NET_A, A2).dhcp(guests.script))

    changed = NetworkConfig(NET_A.uid, NET_A.cidr, NET_A.gateway, name=NET_A.name, mtu=1400)
    third = run(restarted.ensure_network(changed, [A1, A2]))
    assert third.dnsmasq == "restarted" and third.dnsmasq_pid != first.dnsmasq_pid
    assert len(dnsmasq_under(pidfile.parent)) == 1


def test_a_tap_is_up_once_qemu_inside_the_namespace_opens_it(datapath, state_dir):
    run(datapath.ensure_network(NET_A, [A1]))
    plug = run(datapath.plug(NET_A, A1, "host-1"))
    assert (plug.host, plug.bridge, plug.up) == ("host-1", bridge_name(NET_A.uid), False)
    assert run(datapath.plug(NET_A, A1, "host-1")) == plug  # idempotent

    pidfile = state_dir / "qemu.pid"
    argv = [
        *datapath.exec_prefix(NET_A.uid),
        find_tool("qemu-system-x86_64"),
        "-S", "-nodefaults", "-display", "none", "-machine", "q35", "-accel", "tcg",
        "-netdev", plug.netdev("net0"),
        "-device", f"virtio-net-pci,netdev=net0,mac={A1.mac},romfile=",
        "-daemonize", "-pidfile", str(pidfile),
    ]  # fmt: skip
    sh(*argv)
    pid = int(pidfile.read_text())
    try:
        up = run(datapath.wait_up(NET_A.uid, A1, within=30))
        assert up.up and up.tap == plug.tap and up.host == "host-1"
        qemu_netns = os.stat(f"/proc/{pid}/ns/net").st_ino
        assert qemu_netns == os.stat(NETNS_DIR / plug.netns).st_ino
        assert qemu_netns != os.stat("/proc/self/ns/net").st_ino
        inside = run(datapath.inventory()).namespaces[0]
        assert pid in inside.pids and inside.taps[0].up
    finally:
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid}/cmdline").exists() and Path(f"/proc/{pid}/cmdline").read_bytes():
        assert time.monotonic() < deadline, "qemu did not exit"
        time.sleep(0.05)
    # The kernel empties a dying process's cmdline (exit_mm) before it closes its files
    # (exit_files): the tap loses its carrier a moment after, so wait for that, bounded.
    while (state := run(datapath.plug_state(NET_A.uid, A1))).up:
        assert time.monotonic() < deadline, "the tap stayed up after qemu died"
        time.sleep(0.05)
    assert state.up is False


def test_remove_and_cleanup_leave_no_namespace_link_or_dnsmasq(datapath, guests):
    a = run(datapath.ensure_network(NET_A, [A1, A2]))
    b = run(datapath.ensure_network(NET_B, [B1]))
    run(datapath.plug(NET_A, A1, "host-1"))
    run(datapath.plug(NET_A, A2, "host-2"))  # another embedded host, the same namespace
    run(datapath.plug(NET_B, B1, "host-1"))
    inventory = run(datapath.inventory())
    assert {n.netns for n in inventory.namespaces} == {a.netns, b.netns}
    assert {len(n.taps) for n in inventory.namespaces} == {2, 1}
    assert {n.network_uid for n in inventory.namespaces} == {NET_A.uid, NET_B.uid}

    assert run(datapath.remove_network(NET_A.uid)) == []
    assert a.netns not in netns_list() and b.netns in netns_list()
    assert not dnsmasq_under(datapath.files(a.netns).root)
    assert not datapath.files(a.netns).root.exists()
    assert run(datapath.remove_network(NET_A.uid)) == []  # idempotent

    assert run(datapath.cleanup(keep={NET_B.uid})) == []
    assert run(datapath.cleanup()) == [b.netns]
    assert not netns_list() & {a.netns, b.netns}
    assert not dnsmasq_under(datapath.state_dir)


def test_cleanup_after_a_crash_finds_strays(datapath):
    """What a crash can leave: a namespace whose state directory is gone (its dnsmasq still
    runs), and a dnsmasq whose namespace was deleted under it."""
    a = run(datapath.ensure_network(NET_A, [A1]))
    b = run(datapath.ensure_network(NET_B, [B1]))
    shutil.rmtree(datapath.files(a.netns).root)
    sh("ip", "netns", "delete", b.netns)

    inventory = run(datapath.inventory())
    (lost,) = inventory.namespaces
    assert (lost.netns, lost.network_uid, lost.dnsmasq_pids) == (a.netns, None, (a.dnsmasq_pid,))
    assert inventory.stray_dnsmasq == (b.dnsmasq_pid,)
    assert inventory.stray_dirs == (datapath.files(b.netns).root,)

    removed = run(datapath.cleanup())
    assert removed == [a.netns, f"dnsmasq {b.dnsmasq_pid}", str(datapath.files(b.netns).root)]
    assert not dnsmasq_under(datapath.state_dir)


def test_probe_passes_here_and_builds_a_throwaway_namespace():
    before = netns_list()
    result = run(probe())
    assert result.ok, result.message()
    assert netns_list() == before


def test_one_qemu_with_nics_on_two_networks_gets_its_taps_as_fds(datapath, state_dir):
    run(datapath.ensure_network(NET_A, [A1]))
    run(datapath.ensure_network(NET_B, [B1]))
    plugs = [run(datapath.plug(NET_A, A1, "host-1")), run(datapath.plug(NET_B, B1, "host-1"))]
    fds = [run(plug.open_fd()) for plug in plugs]
    pidfile = state_dir / "qemu.pid"
    argv = [find_tool("qemu-system-x86_64"), "-S", "-nodefaults", "-display", "none",
            "-machine", "q35", "-accel", "tcg", "-daemonize", "-pidfile", str(pidfile)]  # fmt: skip
    for index, (plug, fd) in enumerate(zip(plugs, fds, strict=True)):
        argv += ["-netdev", plug.netdev_fd(f"net{index}", fd)]
        argv += ["-device", f"virtio-net-pci,netdev=net{index},mac={plug.mac},romfile="]
    try:
        subprocess.run(argv, pass_fds=fds, check=True, timeout=30, capture_output=True)
    finally:
        for fd in fds:
            os.close(fd)
    pid = int(pidfile.read_text())
    try:
        assert run(datapath.wait_up(NET_A.uid, A1, within=30)).up
        assert run(datapath.wait_up(NET_B.uid, B1, within=30)).up
        assert os.stat(f"/proc/{pid}/ns/net").st_ino == os.stat("/proc/self/ns/net").st_ino
    finally:
        os.kill(pid, signal.SIGKILL)


def test_opening_a_missing_tap_says_so(datapath):
    run(datapath.ensure_network(NET_A, []))
    plug = run(datapath.plug(NET_A, A1, "host-1"))
    run(datapath.unplug(NET_A.uid, A1.uid))
    assert run(datapath.plug_state(NET_A.uid, A1)) is None
    with pytest.raises(DatapathError, match=f"cannot open tap {plug.tap}"):
        run(plug.open_fd())
    assert run(datapath.inventory()).namespaces[0].taps == ()


def test_a_state_dir_dnsmasq_cannot_reach_is_refused_before_anything_is_built(tmp_path):
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    dp = Datapath(private / "datapath", scope=secrets.token_hex(4))
    with pytest.raises(DatapathError, match="not searchable by others"):
        run(dp.ensure_network(NET_A, [A1]))
    assert dp.netns(NET_A.uid) not in netns_list()
    assert run(dp.inventory()).namespaces == ()
