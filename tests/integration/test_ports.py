"""Neutron's part on the real apiserver: Ports hold addresses race-free (a Port is named after its
network and address, so the apiserver lets only one allocator create it). The operator runs as a
process with the FakeDriver standing in for hypervisors; everything else is real."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.kit import wait_for

pytestmark = pytest.mark.integration


def settle_all(cloud, names, timeout=300):
    with ThreadPoolExecutor(8) as pool:
        return dict(zip(names, pool.map(lambda n: cloud.settled(n, timeout), names), strict=True))


def test_300_ports_at_once_on_one_24(cloud):
    for index in range(10):  # room for all 300 on enough hosts that claims rarely collide
        cloud.node(f"h{index}", cpu="40", memory="200Gi", disk="200Gi")
    cloud.network("lan", "10.20.0.0/24", gateway="10.20.0.1")  # 253 addresses to give out
    names = [f"p-{i:03d}" for i in range(300)]
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda n: cloud.instance(n, spec={"networks": [{"network": "lan"}]}), names))
    statuses = settle_all(cloud, names)
    active = {n: s for n, s in statuses.items() if s["vmState"] == "ACTIVE"}
    errors = {n: s for n, s in statuses.items() if s["vmState"] == "ERROR"}
    faults = Counter(s["fault"]["message"] for s in errors.values())
    print(f"\n300 port requests on a /24: {len(active)} ACTIVE, {len(errors)} ERROR: {faults}")
    assert len(active) == 253 and len(errors) == 47
    for status in errors.values():
        assert "network lan exhausted" in status["fault"]["message"], status["fault"]
        assert status["fault"]["code"] == 409 and not status.get("addresses")

    ips = [s["addresses"][0]["ip"] for s in active.values()]
    macs = [s["addresses"][0]["mac"] for s in active.values()]
    assert len(set(ips)) == 253 and len(set(macs)) == 253
    assert "10.20.0.1" not in ips and "10.20.0.0" not in ips and "10.20.0.255" not in ips
    ports = cloud.list("ports")
    assert sorted(p["spec"]["ipAddress"] for p in ports) == sorted(ips)
    assert {p["spec"]["deviceId"] for p in ports} == set(active)
    wait_for(
        lambda: all((p.get("status") or {}).get("phase") == "ACTIVE" for p in cloud.list("ports")),
        30,
        "ports to be ACTIVE",
    )
    network = wait_for(
        lambda: (n := cloud.list("networks")[0]).get("status", {}).get("usedIPs") == 253 and n,
        30,
        "the network's usage in status",
    )
    assert network["status"]["availableIPs"] == 0

    # Deleting instances frees their addresses; new instances get exactly those.
    freed = sorted(active)[:10]
    freed_ips = {active[n]["addresses"][0]["ip"] for n in freed}
    for name in freed:
        cloud.delete(name)
    wait_for(lambda: len(cloud.list("ports")) == 243, 60, "ports of deleted instances to go")
    again = [f"again-{i}" for i in range(10)]
    for name in again:
        cloud.instance(name, spec={"networks": [{"network": "lan"}]})
    reused = settle_all(cloud, again)
    assert all(s["vmState"] == "ACTIVE" for s in reused.values()), reused
    assert {s["addresses"][0]["ip"] for s in reused.values()} == freed_ips


def test_fixed_ip_and_two_networks(cloud):
    cloud.node("a")
    cloud.network("front", "192.168.10.0/24", gateway="192.168.10.1")
    cloud.network("back", "10.99.0.0/16")
    both = [{"network": "front", "fixedIp": "192.168.10.50"}, {"network": "back"}]
    cloud.instance("two", spec={"networks": both})
    status = cloud.settled("two")
    assert status["vmState"] == "ACTIVE", status.get("fault")
    by_net = {a["network"]: a for a in status["addresses"]}
    assert by_net["front"]["ip"] == "192.168.10.50" and by_net["back"]["ip"] == "10.99.0.1"
    assert by_net["front"]["mac"] != by_net["back"]["mac"]
    assert {p["metadata"]["name"] for p in cloud.list("ports")} == {
        "front-192-168-10-50",
        "back-10-99-0-1",
    }

    # The same fixed IP again: refused with a fault that says so; nothing held.
    cloud.instance("clash", spec={"networks": [{"network": "front", "fixedIp": "192.168.10.50"}]})
    fault = cloud.settled("clash")["fault"]
    assert "fixed IP 192.168.10.50 is already in use on network front" in fault["message"]
    cloud.instance("outside", spec={"networks": [{"network": "front", "fixedIp": "10.0.0.9"}]})
    fault = cloud.settled("outside")["fault"]
    assert "outside the network's CIDR 192.168.10.0/24" in fault["message"]
    cloud.instance("nowhere", spec={"networks": [{"network": "missing"}]})
    assert cloud.settled("nowhere")["fault"]["message"] == "Network missing could not be found"
    assert len(cloud.list("ports")) == 2

    cloud.delete("two")
    wait_for(lambda: not cloud.list("ports"), 60, "the ports to be released")
