"""The filter scheduler on several Node objects, with the operator as a real process and Nova's
FakeDriver standing in for hypervisors (the API, claims and state machine are all real).

Each test puts its nodes in an availability zone of its own (its namespace) and its instances
ask for that zone, so tests never see each other's hosts.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from kubenova import GROUP, VERSION
from kubenova.conductor.context import FAKE_FAIL_LABEL

pytestmark = pytest.mark.integration


def test_availability_zone(cloud):
    cloud.node("a", zone=f"{cloud.ns}-a")
    b = cloud.node("b", zone=f"{cloud.ns}-b")
    cloud.instance("vm", zone=f"{cloud.ns}-b")
    assert cloud.host_of("vm") == b


def test_aggregate_through_flavor_extra_specs(cloud):
    cloud.node("plain", memory="64Gi")  # more RAM: preferred unless the filter removes it
    ssd = cloud.node("ssd", **{"disktype": "ssd"})
    flavor = cloud.flavor(**{"aggregate_instance_extra_specs:disktype": "ssd"})
    cloud.instance("vm", flavor=flavor)
    assert cloud.host_of("vm") == ssd


def test_hard_affinity_and_anti_affinity(cloud):
    cloud.node("a")
    cloud.node("b")
    cloud.group("together", "affinity")
    cloud.group("apart", "anti-affinity")
    cloud.instance("t1", group="together")
    first = cloud.host_of("t1")
    cloud.instance("t2", group="together")
    assert cloud.host_of("t2") == first

    cloud.instance("a1", group="apart")
    cloud.instance("a2", group="apart")
    assert {cloud.host_of("a1"), cloud.host_of("a2")} == {f"{cloud.ns}-a", f"{cloud.ns}-b"}
    cloud.instance("a3", group="apart")
    fault = cloud.settled("a3")["fault"]
    assert "No valid host" in fault["message"]
    assert "ServerGroupAntiAffinityFilter removed 2" in fault["message"]


def test_soft_affinity_and_soft_anti_affinity(cloud):
    cloud.node("a")
    cloud.node("b")
    cloud.group("near", "soft-affinity")
    cloud.group("far", "soft-anti-affinity")
    cloud.instance("n1", group="near")
    cloud.instance("f1", group="far")
    near, far = cloud.host_of("n1"), cloud.host_of("f1")
    cloud.instance("n2", group="near")
    cloud.instance("f2", group="far")
    assert cloud.host_of("n2") == near
    assert cloud.host_of("f2") != far


def test_same_host_and_different_host(cloud):
    cloud.node("a")
    cloud.node("b")
    cloud.instance("anchor")
    anchor = cloud.host_of("anchor")
    cloud.instance("beside", sameHost=["anchor"])
    cloud.instance("elsewhere", differentHost=["anchor"])
    assert cloud.host_of("beside") == anchor
    assert cloud.host_of("elsewhere") != anchor


def test_cordoned_and_not_ready_hosts_are_skipped(cloud):
    cloud.node("cordoned", memory="64Gi", unschedulable=True)
    cloud.node("down", memory="64Gi", ready=False)
    ok = cloud.node("ok")
    cloud.instance("vm")
    assert cloud.host_of("vm") == ok
    cloud.core.delete_node(ok)
    cloud.instance("nowhere")
    fault = cloud.settled("nowhere")["fault"]
    # Other tests' hosts count too (down ones in ComputeFilter's tally, the rest by zone).
    removed = re.search(r"ComputeFilter removed (\d+)", fault["message"])
    assert removed and int(removed[1]) >= 2, fault
    assert "RamFilter" not in fault["message"] and "CoreFilter" not in fault["message"], fault


def test_reschedule_to_an_alternate_then_error_when_all_fail(cloud):
    # The failing hosts have more RAM, so RAMWeigher tries them first.
    bad1 = cloud.node("bad1", memory="32Gi", **{FAKE_FAIL_LABEL: "spawn"})
    bad2 = cloud.node("bad2", memory="16Gi", **{FAKE_FAIL_LABEL: "spawn"})
    good = cloud.node("good", memory="8Gi")
    cloud.instance("lucky")
    status = cloud.settled("lucky")
    assert status["vmState"] == "ACTIVE" and status["host"] == good
    assert [a["host"] for a in status["attempts"]] == [bad1, bad2]
    assert all("injected spawn failure" in a["reason"] for a in status["attempts"])

    doomed = f"{cloud.ns}-doomed"
    for index in range(3):
        cloud.node(f"doomed{index}", zone=doomed, **{FAKE_FAIL_LABEL: "spawn"})
    cloud.instance("unlucky", zone=doomed)
    status = cloud.settled("unlucky")
    assert status["vmState"] == "ERROR"
    assert len(status["attempts"]) == 3
    for attempt in status["attempts"]:
        assert attempt["host"] in status["fault"]["details"]


def test_dry_run_explains_without_claiming(cloud, cluster, tmp_path):
    cloud.node("small", memory="1Gi")
    cloud.node("big", memory="16Gi")
    manifest = tmp_path / "vm.yaml"
    manifest.write_text(
        "apiVersion: compute.kubenova.io/v1alpha1\nkind: Instance\nmetadata: {name: probe}\n"
        f"spec: {{flavor: {cloud.flavor(ram=2048)}, image: tiny, availabilityZone: {cloud.ns}}}\n"
    )
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "kubenova.cli",
            "schedule",
            "--explain",
            "-f",
            str(manifest),
            "-n",
            cloud.ns,
        ],
        env={**os.environ, "KUBECONFIG": str(cluster.kubeconfig)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert "RamFilter" in out.stdout and "removed    1" in out.stdout, out.stdout
    assert f"1. {cloud.ns}-big" in out.stdout, out.stdout
    rps = cloud.custom.list_cluster_custom_object(GROUP, VERSION, "resourceproviders")["items"]
    assert not any(rp["metadata"]["name"].startswith(cloud.ns) for rp in rps)


def test_500_instances_at_once_never_overcommit(cloud):
    """Capacity for 40: five hosts of 2 CPUs (x4 = 8 vcpus) and 4 GiB, a 1-vcpu 512-MiB flavor."""
    hosts = [cloud.node(f"h{i}", cpu="2", memory="4Gi") for i in range(5)]
    cloud.instance("warm-up")  # also lets the node cache catch up before the burst
    cloud.settled("warm-up")
    names = [f"burst-{i:03d}" for i in range(500)]
    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(cloud.instance, names))

    statuses = {}
    for name in ["warm-up", *names]:
        statuses[name] = cloud.settled(name, timeout=600)
    active = [s for s in statuses.values() if s["vmState"] == "ACTIVE"]
    errors = [s for s in statuses.values() if s["vmState"] == "ERROR"]
    print(f"\n501 instances: {len(active)} ACTIVE, {len(errors)} ERROR (NoValidHost)")
    assert len(active) + len(errors) == 501
    assert len(active) == 40, "every slot filled, none twice"
    assert all("No valid host" in s["fault"]["message"] for s in errors)

    per_host = {h: 0 for h in hosts}
    for rp_name in hosts:
        rp = cloud.custom.get_cluster_custom_object(GROUP, VERSION, "resourceproviders", rp_name)
        allocations = rp["spec"]["allocations"].values()
        assert sum(a["vcpus"] for a in allocations) <= 8, rp_name
        assert sum(a["ramMiB"] for a in allocations) <= 4096, rp_name
        per_host[rp_name] = len(allocations)
    assert sum(per_host.values()) == 40
    assert sorted(s["host"] for s in active) == sorted(
        h for h, n in per_host.items() for _ in range(n)
    )
