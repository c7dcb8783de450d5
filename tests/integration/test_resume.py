"""A build resumed where an interrupted failure left it (conductor/build.py `verify_holdings`).

An operator killed inside `fail()` has already destroyed the VM, released the host's claim and
deleted the ports, but not yet written the reschedule: the next operator finds the instance
still in SPAWNING on that host. The status is written here by hand, before any operator runs,
exactly as such a crash leaves it; then the operator (a real process, Nova's FakeDriver) starts:
the claim is taken again before the VM is started, and addresses whose ports are gone send the
build to the next host, where the network step allocates afresh.
"""

from __future__ import annotations

import pytest
from kubernetes import client

from kubenova import GROUP, VERSION
from tests.cloud import TEST_LABEL, Cloud
from tests.kit import running_operator

pytestmark = pytest.mark.integration


def write_status(cloud: Cloud, name: str, status: dict) -> None:
    cloud.custom.patch_namespaced_custom_object_status(
        GROUP, VERSION, cloud.ns, "instances", name, {"status": status}
    )


def claims_on(cloud: Cloud, node: str) -> set[str]:
    try:
        rp = cloud.custom.get_cluster_custom_object(GROUP, VERSION, "resourceproviders", node)
    except client.ApiException as err:
        if err.status == 404:
            return set()
        raise
    return set(rp["spec"].get("allocations") or {})


def test_a_build_resumed_after_an_interrupted_failure_holds_its_claim_and_ports(
    cluster, api, crds, namespace, tmp_path
):
    cloud = Cloud(api, namespace, tmp_path)
    first, second = cloud.node("first", memory="64Gi"), cloud.node("second")
    cloud.network("net", "10.66.0.0/24")
    cloud.instance("unclaimed")
    cloud.instance("portless", spec={"networks": [{"network": "net"}]})
    spawning = {"vmState": "BUILDING", "taskState": "SPAWNING", "powerState": "NOSTATE"}
    write_status(cloud, "unclaimed", {**spawning, "host": first, "addresses": []})
    address = {"network": "net", "ip": "10.66.0.7", "mac": "fa:16:3e:00:00:07"}
    write_status(
        cloud,
        "portless",
        {**spawning, "host": first, "addresses": [address], "alternates": [second]},
    )
    uids = {name: cloud.get(name)["metadata"]["uid"] for name in ("unclaimed", "portless")}
    assert claims_on(cloud, first) == set()

    (tmp_path / "op").mkdir()
    with running_operator(cluster, api, tmp_path / "op", "--driver=fake"):
        unclaimed = cloud.settled("unclaimed")
        assert (unclaimed["vmState"], unclaimed["host"]) == ("ACTIVE", first), unclaimed
        assert uids["unclaimed"] in claims_on(cloud, first), "claimed again before the spawn"

        portless = cloud.settled("portless")
        assert (portless["vmState"], portless["host"]) == ("ACTIVE", second), portless
        (attempt,) = portless["attempts"]
        assert attempt["host"] == first and "were released" in attempt["reason"]
        ports = cloud.list("ports")
        assert [p["metadata"]["labels"]["compute.kubenova.io/instance-uid"] for p in ports] == [
            uids["portless"]
        ]
        assert portless["addresses"][0]["ip"] == ports[0]["spec"]["ipAddress"]
        assert uids["portless"] in claims_on(cloud, second)
        assert uids["portless"] not in claims_on(cloud, first)
    client.CoreV1Api(api).delete_collection_node(label_selector=f"{TEST_LABEL}=true")
    for node in (first, second):
        try:
            cloud.custom.delete_cluster_custom_object(GROUP, VERSION, "resourceproviders", node)
        except client.ApiException as err:
            if err.status != 404:
                raise
