"""Host failure: a host whose heartbeat stops is down; its instances are marked; when it comes
back they are reconciled (conductor/hosts.py).

Real processes throughout: the operator runs with the QEMU pod driver (`--driver pod`) and
`--host-down-after 8`; each of the two compute hosts is a Node with its own kubelet, a kwok
process that renews the Node's Lease (every second or so) and runs its pods (without running
them: they just become Running and Ready). A host fails the way a host does: the test SIGSTOPs
its kwok, so its Lease stops moving and nothing on it changes any more; SIGCONT brings it back.
A VM lost with the host is its pod deleted meanwhile (force-deleted, as a dead node's pods are);
its disk's PersistentVolumeClaim stays, as a host's disks do when it returns, so the VM is found
stopped (not gone) and the resume policy powers it on from that disk.

Host B is much bigger than host A (CPU, RAM, disk), so the scheduler (its weighers spread) puts
every instance on B while B is up.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import pytest
from kubernetes import client

from kubenova import GROUP, VERSION
from kubenova.virt.cluster import INSTANCE_UID_LABEL
from tests.cloud import Cloud
from tests.kit import columns, running_operator, wait_for
from tests.kwok import Kwok, kwok_node, running_kwok

pytestmark = pytest.mark.integration

HOST_A, HOST_B, ZONE = "hf-host-a", "hf-host-b", "hf-zone"
DOWN_AFTER = 8
POD_IMAGE = "registry.test/kubenova-launcher:test"


@pytest.fixture(scope="module")
def kubelets(cluster, api, tmp_path_factory) -> Iterator[dict[str, Kwok]]:
    """One kwok per host, each renewing its Node's Lease."""
    kwoks = {}
    with (
        running_kwok(
            cluster.kubeconfig, tmp_path_factory.mktemp("kwok-a"), node=HOST_A, lease_seconds=4
        ) as kwoks[HOST_A],
        running_kwok(
            cluster.kubeconfig, tmp_path_factory.mktemp("kwok-b"), node=HOST_B, lease_seconds=4
        ) as kwoks[HOST_B],
    ):
        kwok_node(api, HOST_A, ZONE, memory="16Gi")
        kwok_node(api, HOST_B, ZONE, cpu="32", memory="64Gi", extra={"ephemeral-storage": "1Ti"})
        wait_for(lambda: leases(api) >= {HOST_A, HOST_B}, 30, "both hosts' Leases")
        try:
            yield kwoks
        finally:
            for kwok in kwoks.values():  # never leave one stopped
                if kwok.pid:
                    os.kill(kwok.pid, signal.SIGCONT)
            core = client.CoreV1Api(api)
            for host in (HOST_A, HOST_B):
                core.delete_node(host)
    custom = client.CustomObjectsApi(api)
    leases_api = client.CoordinationV1Api(api)
    for host in (HOST_A, HOST_B):  # the kubelets are gone: so are their hosts' traces
        for delete in (
            lambda h: custom.delete_cluster_custom_object(GROUP, VERSION, "resourceproviders", h),
            lambda h: leases_api.delete_namespaced_lease(h, "kube-node-lease"),
        ):
            try:
                delete(host)
            except client.ApiException as err:
                if err.status != 404:
                    raise


def leases(api) -> set[str]:
    items = client.CoordinationV1Api(api).list_namespaced_lease("kube-node-lease").items
    return {lease.metadata.name for lease in items}


@pytest.fixture(params=["stop", "resume"])
def policy(request, cluster, api, crds, kubelets, tmp_path) -> Iterator[str]:
    """The operator with the policy's flags, for one test."""
    args = [
        "--driver=pod",
        f"--pod-image={POD_IMAGE}",
        "--boot-timeout=60",
        f"--host-down-after={DOWN_AFTER}",
    ]
    if request.param == "resume":
        args.append("--resume-guests-state-on-host-boot")
    with running_operator(cluster, api, tmp_path, *args):
        yield request.param


def status(cloud: Cloud, name: str) -> dict:
    return cloud.get(name).get("status") or {}


def condition(status_: dict, ctype: str) -> dict:
    return next((c for c in status_.get("conditions") or [] if c["type"] == ctype), {})


def marked(cloud: Cloud, name: str) -> bool:
    s = status(cloud, name)
    return s.get("hostStatus") == "DOWN"


def pods_of(api, namespace: str, uid: str) -> list[client.V1Pod]:
    core = client.CoreV1Api(api)
    return core.list_namespaced_pod(namespace, label_selector=f"{INSTANCE_UID_LABEL}={uid}").items


def test_a_host_whose_heartbeat_stops_is_down_and_reconciled_when_it_returns(
    policy, api, namespace, tmp_path, kubelets, kubectl
):
    cloud = Cloud(api, namespace, tmp_path)
    for name in ("keeper", "lost"):
        cloud.instance(name, zone=ZONE)
    for name in ("keeper", "lost"):
        assert cloud.host_of(name) == HOST_B  # B has the most room
    uids = {name: cloud.get(name)["metadata"]["uid"] for name in ("keeper", "lost")}

    # host B's kubelet freezes: its Lease stops moving
    os.kill(kubelets[HOST_B].pid, signal.SIGSTOP)
    stopped = time.monotonic()
    try:
        wait_for(
            lambda: marked(cloud, "keeper") and marked(cloud, "lost"),
            DOWN_AFTER + 20,
            "the instances on the down host to be marked",
        )
        took = time.monotonic() - stopped
        print(f"\n{policy}: host B down, its instances marked {took:.1f}s after SIGSTOP")
        # silence counts from the last renewal seen, up to a renewal period before SIGSTOP
        assert took >= DOWN_AFTER - 3, "judged down before --host-down-after"
        keeper = status(cloud, "keeper")
        assert keeper["vmState"] == "ACTIVE", "Nova leaves vm_state alone"
        assert keeper["powerState"] == "NOSTATE"
        assert keeper["fault"]["code"] == 503
        assert f"host {HOST_B} is down" in keeper["fault"]["message"]
        assert condition(keeper, "HostUp")["status"] == "False"
        assert condition(keeper, "Ready")["status"] == "False"
        table = kubectl("get", "instances", "-n", namespace, "-o", "wide").stdout
        row = columns(table, "keeper")
        assert (row["STATUS"], row["READY"], row["HOST"]) == ("ACTIVE", "False", HOST_B), table
        assert (row["TASK"], row["POWER"], row["HOST STATUS"]) == ("", "NOSTATE", "DOWN"), table

        # new instances avoid it
        cloud.instance("newcomer", zone=ZONE)
        assert cloud.host_of("newcomer") == HOST_A

        # the host loses one VM while it is away (a dead node's pods are force-deleted)
        (pod,) = pods_of(api, namespace, uids["lost"])
        client.CoreV1Api(api).delete_namespaced_pod(
            pod.metadata.name, namespace, grace_period_seconds=0
        )
    finally:
        os.kill(kubelets[HOST_B].pid, signal.SIGCONT)
    returned = time.monotonic()

    # the running VM is adopted
    wait_for(
        lambda: status(cloud, "keeper").get("hostStatus") is None,
        30,
        "the keeper's mark to be cleared",
    )
    keeper = status(cloud, "keeper")
    assert (keeper["vmState"], keeper["powerState"]) == ("ACTIVE", "RUNNING")
    assert keeper.get("fault") is None
    assert condition(keeper, "HostUp")["status"] == "True"
    assert "its VM is running (adopted)" in condition(keeper, "HostUp")["message"]
    assert condition(keeper, "Ready")["status"] == "True"
    assert len(pods_of(api, namespace, uids["keeper"])) == 1

    # the lost VM (its pod gone, its disk's claim kept): stopped, or powered on, by the policy
    if policy == "stop":
        wait_for(lambda: status(cloud, "lost").get("vmState") == "STOPPED", 30, "lost: STOPPED")
        lost = status(cloud, "lost")
        assert lost["powerState"] == "SHUTDOWN"
        assert lost.get("hostStatus") is None
        assert "its VM is not running" in lost["fault"]["message"]
        assert "the instance is stopped" in lost["fault"]["message"]
        assert pods_of(api, namespace, uids["lost"]) == []
    else:
        wait_for(
            lambda: (
                status(cloud, "lost").get("powerState") == "RUNNING"
                and status(cloud, "lost").get("hostStatus") is None
            ),
            60,
            "lost: powered on",
        )
        lost = status(cloud, "lost")
        assert lost["vmState"] == "ACTIVE"
        assert "powered on from its disk" in condition(lost, "HostUp")["message"]
        (pod,) = pods_of(api, namespace, uids["lost"])
        assert pod.spec.node_name == HOST_B
        disk = next(v for v in pod.spec.volumes if v.name == "disk")
        assert disk.persistent_volume_claim.claim_name == pod.metadata.name
    print(
        f"{policy}: reconciled {time.monotonic() - returned:.1f}s after SIGCONT: lost is "
        f"{lost['vmState']}/{lost['powerState']}"
    )

    events = client.CoreV1Api(api).list_namespaced_event(
        namespace, field_selector=f"involvedObject.uid={uids['keeper']}"
    )
    assert {"HostDown", "HostReturned"} <= {e.reason for e in events.items}
