"""The QEMU pod driver on the real apiserver, with kwok standing in for the kubelet.

The operator runs as a real process with `--driver pod` and no embedded host; the compute hosts
are Node objects that kwok manages (tests/kwok.py). kwok plays the kubelet's part: it makes the
Nodes Ready and moves each pod bound to them to Running with its Ready condition True. It runs
no container, so the launcher inside the pod never runs here (tests/e2e/test_launcher.py runs it
for real); what is tested is everything around it: the pod the driver creates (node, requests
and limits, command, volumes, security) and its disk's PersistentVolumeClaim, SPAWNING → ACTIVE
on readiness, the reschedule when a pod fails or disappears before it is ready, and stop, start
and reboot (the pod deleted and made again on the kept claim). For the failures, pods on the
`hold` node are left Pending by kwok and the test writes their status as the kubelet would.

kwok stands in for the kubelet and for storage too: no PV controller or provisioner runs here,
so a claim stays Pending (nothing binds it) while kwok marks its pod Running all the same; and no
pvc-protection controller (kube-controller-manager) removes the finalizer of a deleted claim
once no pod uses it, so the tests do that (release_claims).

Each test's nodes sit in availability zones of their own, so the scheduler's choice is known.
"""

from __future__ import annotations

import json

import pytest
from kubernetes import client

from kubenova import GROUP, VERSION
from kubenova.conductor.actions import REBOOT_ANNOTATION
from kubenova.virt.cluster import INSTANCE_UID_LABEL, NODE_ANNOTATION
from kubenova.virt.pod.manifest import (
    KVM_LABEL,
    LAUNCH_SPEC_ANNOTATION,
    READY_FILE,
    SELECTED_NODE_ANNOTATION,
    WORKDIR,
)
from kubenova.virt.qemu.launcher import SPEC_ENV
from tests.cloud import Cloud
from tests.kit import running_operator, wait_for
from tests.kwok import delete_kwok_nodes, kwok_node, running_kwok, settle, wait_pod

pytestmark = pytest.mark.integration

TCG_NODE, KVM_NODE = "kwok-tcg", "kwok-kvm"
ZONES = {TCG_NODE: "kwok-tcg", KVM_NODE: "kwok-kvm"}
FAILURES = ("failed", "evicted")
# Per failure mode, a zone of its own with a hold node and a good one (the BuildFailureWeigher
# would steer a second test away from a hold node that already failed a build).
HOLD = {f: f"kwok-hold-{f}" for f in FAILURES}
GOOD = {f: f"kwok-good-{f}" for f in FAILURES}
KVM_RESOURCE = "devices.kubevirt.io/kvm"
POD_IMAGE = "registry.test/kubenova-launcher:test"


@pytest.fixture(scope="module")
def kwok(cluster, api, tmp_path_factory):
    work = tmp_path_factory.mktemp("kwok")
    with running_kwok(cluster.kubeconfig, work, hold=HOLD.values()) as kwok:
        kwok_node(api, TCG_NODE, ZONES[TCG_NODE])
        kwok_node(api, KVM_NODE, ZONES[KVM_NODE], extra={KVM_RESOURCE: "8"}, **{KVM_LABEL: "true"})
        for failure in FAILURES:
            # The hold node has the most free RAM: the scheduler (RAMWeigher spreads) picks it
            # first and keeps the good node as the alternate.
            kwok_node(api, HOLD[failure], f"kwok-{failure}", memory="64Gi")
            kwok_node(api, GOOD[failure], f"kwok-{failure}", memory="16Gi")
        yield kwok
        delete_kwok_nodes(api)
    custom = client.CustomObjectsApi(api)
    for name in (TCG_NODE, KVM_NODE, *HOLD.values(), *GOOD.values()):
        try:
            custom.delete_cluster_custom_object(GROUP, VERSION, "resourceproviders", name)
        except client.ApiException as err:
            if err.status != 404:
                raise


@pytest.fixture(scope="module")
def pod_operator(cluster, api, crds, kwok, tmp_path_factory):
    work = tmp_path_factory.mktemp("pod-op")
    # A power-state sync every 2 s: a pod gone behind the operator's back is seen at once.
    args = (
        "--driver=pod",
        f"--pod-image={POD_IMAGE}",
        "--boot-timeout=60",
        "--sync-power-state-interval=2",
    )
    with running_operator(cluster, api, work, *args) as op:
        yield op


@pytest.fixture
def cloud(pod_operator, api, namespace, tmp_path) -> Cloud:
    return Cloud(api, namespace, tmp_path)


def pods_of(core: client.CoreV1Api, namespace: str, uid: str) -> list[client.V1Pod]:
    return core.list_namespaced_pod(namespace, label_selector=f"{INSTANCE_UID_LABEL}={uid}").items


def claims_of(
    core: client.CoreV1Api, namespace: str, uid: str
) -> list[client.V1PersistentVolumeClaim]:
    return core.list_namespaced_persistent_volume_claim(
        namespace, label_selector=f"{INSTANCE_UID_LABEL}={uid}"
    ).items


def delete_with_its_disk(cloud, core, uid: str) -> None:
    """Delete the instance through the operator: destroy deletes the pod (kwok removes it),
    then the claim, which pvc-protection keeps until this test releases it (no kubelet)."""
    cloud.delete("vm")
    wait_for(lambda: not pods_of(core, cloud.ns, uid), 60, "the pod to be deleted")
    wait_for(
        lambda: all(c.metadata.deletion_timestamp for c in claims_of(core, cloud.ns, uid)),
        60,
        "the claim to be deleted after its pod",
    )
    release_claims(core, cloud.ns, uid)


def release_claims(core: client.CoreV1Api, namespace: str, uid: str) -> None:
    """What the pvc-protection controller does once no pod uses a deleted claim: remove its
    finalizer (kube-controller-manager does not run here)."""
    for claim in claims_of(core, namespace, uid):
        if claim.metadata.deletion_timestamp and claim.metadata.finalizers:
            core.patch_namespaced_persistent_volume_claim(
                claim.metadata.name, namespace, {"metadata": {"finalizers": None}}
            )


@pytest.mark.parametrize("node", [TCG_NODE, KVM_NODE])
def test_the_pod_runs_on_the_scheduled_node_and_its_readiness_makes_the_instance_active(
    cloud, api, node
):
    core = client.CoreV1Api(api)
    flavor = cloud.flavor(vcpus=2, ram=1024)  # 1 GiB disk
    cloud.instance("vm", flavor=flavor, zone=ZONES[node], spec={"userData": "#!/bin/sh\n"})
    status = cloud.settled("vm")
    assert status["vmState"] == "ACTIVE", status.get("fault")
    assert status["host"] == node
    assert status["powerState"] == "RUNNING"
    uid = cloud.get("vm")["metadata"]["uid"]

    (pod,) = pods_of(core, cloud.ns, uid)
    assert pod.spec.node_name == node, "pinned to the scheduled host, no kube-scheduler"
    assert pod.metadata.annotations[NODE_ANNOTATION] == node
    assert pod.metadata.owner_references[0].uid == uid
    assert pod.status.phase == "Running"
    (qemu,) = pod.spec.containers
    assert qemu.image == POD_IMAGE
    assert qemu.command == [
        "kubenova",
        "launch",
        f"--workdir={WORKDIR}",
        f"--ready-file={READY_FILE}",
        "--shutdown-grace=20",  # the pod's 30 s grace less the launcher's time to stop qemu
    ]
    env = {e.name: e.value for e in qemu.env}
    spec = json.loads(env[SPEC_ENV])
    image = cloud.custom.get_namespaced_custom_object(GROUP, VERSION, cloud.ns, "images", "tiny")
    assert (spec["instance_id"], spec["hostname"], spec["user_data"]) == (uid, "vm", "#!/bin/sh\n")
    assert (spec["vcpus"], spec["ram_mib"], spec["disk_gib"]) == (2, 1024, 1)
    assert spec["image_source"] == image["spec"]["source"]
    assert spec["image_checksum"] == image["spec"]["checksum"]
    # requests/limits from the flavor: cpu request = vcpus / the scheduler's 4.0 ratio; memory
    # = RAM + QEMU's overhead; no ephemeral storage: the disk is the claim's
    requests = {"cpu": "500m", "memory": "1280Mi"}
    limits = {"cpu": "2", "memory": "1280Mi"}
    if node == KVM_NODE:
        requests[KVM_RESOURCE] = limits[KVM_RESOURCE] = "1"
        assert "KUBENOVA_ACCEL" not in env
    else:
        assert env["KUBENOVA_ACCEL"] == "tcg"
    assert qemu.resources.requests == requests
    assert qemu.resources.limits == limits
    assert qemu.readiness_probe._exec.command == ["test", "-e", READY_FILE]
    volumes = {v.name: v for v in pod.spec.volumes}
    assert volumes["disk"].persistent_volume_claim.claim_name == pod.metadata.name
    assert volumes["tmp"].empty_dir is not None
    assert all(v.host_path is None for v in pod.spec.volumes)
    assert {m.name: m.mount_path for m in qemu.volume_mounts} == {"disk": WORKDIR, "tmp": "/tmp"}
    # The disk's claim: named, labelled and owned as the pod, the flavor's disk + the base image.
    (claim,) = claims_of(core, cloud.ns, uid)
    assert claim.metadata.name == pod.metadata.name
    assert claim.metadata.owner_references[0].uid == uid
    assert claim.metadata.annotations[SELECTED_NODE_ANNOTATION] == node, "no scheduler sees it"
    assert json.loads(claim.metadata.annotations[LAUNCH_SPEC_ANNOTATION]) == spec
    assert claim.spec.access_modes == ["ReadWriteOnce"]
    assert claim.spec.resources.requests == {"storage": "2Gi"}
    assert claim.status.phase == "Pending", "no PV controller here (see the module docstring)"
    assert pod.spec.security_context.run_as_non_root is True
    assert qemu.security_context.allow_privilege_escalation is False
    assert qemu.security_context.capabilities.drop == ["ALL"]

    delete_with_its_disk(cloud, core, uid)


@pytest.mark.parametrize("failure", FAILURES)
def test_a_pod_that_fails_before_it_is_ready_reschedules_the_instance(cloud, api, failure):
    core = client.CoreV1Api(api)
    cloud.instance("vm", zone=f"kwok-{failure}")
    uid = cloud.get("vm")["metadata"]["uid"]
    first = wait_pod(core, cloud.ns, f"{INSTANCE_UID_LABEL}={uid}")
    assert first.spec.node_name == HOLD[failure]
    status = cloud.get("vm")["status"]
    assert (status["vmState"], status["taskState"]) == ("BUILDING", "SPAWNING")

    if failure == "failed":  # as the kubelet reports a VM that could not start
        core.patch_namespaced_pod_status(
            first.metadata.name,
            cloud.ns,
            {
                "status": {
                    "phase": "Failed",
                    "reason": "Error",
                    "message": "qemu exited before the guest booted",
                    "containerStatuses": [
                        {
                            "name": "qemu",
                            "image": POD_IMAGE,
                            "imageID": "",
                            "ready": False,
                            "restartCount": 0,
                            "state": {"terminated": {"exitCode": 1, "reason": "Error"}},
                        }
                    ],
                }
            },
        )
    else:  # evicted or deleted by someone else: the pod is gone
        core.delete_namespaced_pod(first.metadata.name, cloud.ns)

    status = cloud.settled("vm")
    assert status["vmState"] == "ACTIVE", status.get("fault")
    assert status["host"] == GOOD[failure]
    (attempt,) = status["attempts"]
    assert attempt["host"] == HOLD[failure]
    expected = "qemu exited before the guest booted" if failure == "failed" else "was deleted"
    assert expected in attempt["reason"]
    pods = pods_of(core, cloud.ns, uid)
    assert [p.spec.node_name for p in pods] == [GOOD[failure]], "the failed pod was cleaned up"
    assert pods[0].metadata.name != first.metadata.name


def test_a_vm_pod_does_not_count_twice_on_its_host(cloud, api):
    """The scheduler counts an instance's claim on its host; its pod (RAM + QEMU's overhead)
    must not be counted again as an ordinary pod's requests, or the host fills up at half."""
    flavor = cloud.flavor(vcpus=1, ram=6000)  # two fit in the node's 16 GiB, once each
    cloud.instance("first", flavor=flavor, zone=ZONES[TCG_NODE])
    assert cloud.host_of("first") == TCG_NODE
    cloud.instance("second", flavor=flavor, zone=ZONES[TCG_NODE])
    assert cloud.host_of("second") == TCG_NODE


# -- stop, start and reboot ----------------------------------------------------------------------
def patch_instance(cloud: Cloud, name: str, body: dict) -> None:
    cloud.custom.patch_namespaced_custom_object(GROUP, VERSION, cloud.ns, "instances", name, body)


def finished_action(cloud: Cloud, name: str, count: int, timeout: float = 90) -> dict:
    """The instance's status once its `count`-th action log entry has finished and it rests
    (no task state)."""

    def done():
        status = cloud.get(name).get("status") or {}
        log = status.get("actions") or []
        if len(log) >= count and log[count - 1].get("result") and not status.get("taskState"):
            return status
        return None

    return wait_for(done, timeout, f"action #{count} of {name} to finish", interval=0.2)


def only_pod(core: client.CoreV1Api, namespace: str, uid: str) -> client.V1Pod:
    pods = pods_of(core, namespace, uid)
    assert len(pods) == 1, [p.metadata.name for p in pods]
    return pods[0]


def test_stop_start_and_reboots_recreate_the_pod_on_the_kept_claim(cloud, api):
    """stop → SHUTOFF with no pod and the claim kept; start → ACTIVE with a new pod on the same
    claim, made from the launch spec the claim keeps; hard and soft reboot → ACTIVE with a new
    pod each time; delete → pod and claim gone. (That the launcher keeps the overlay on the claim
    and boots it again is tests/e2e/test_launcher.py's.)"""
    core = client.CoreV1Api(api)
    cloud.instance("vm", zone=ZONES[TCG_NODE], spec={"userData": "#!/bin/sh\n"})
    assert cloud.settled("vm")["vmState"] == "ACTIVE"
    uid = cloud.get("vm")["metadata"]["uid"]
    first = only_pod(core, cloud.ns, uid)
    (claim,) = claims_of(core, cloud.ns, uid)
    env = {e.name: e.value for e in first.spec.containers[0].env}

    def same_claim() -> None:
        (now,) = claims_of(core, cloud.ns, uid)
        assert now.metadata.uid == claim.metadata.uid and not now.metadata.deletion_timestamp

    # stop (1 = the create's entry, 2 = this one)
    patch_instance(cloud, "vm", {"spec": {"powerState": "Stopped"}})
    status = finished_action(cloud, "vm", 2)
    assert (status["vmState"], status["powerState"]) == ("STOPPED", "SHUTDOWN"), status
    assert not pods_of(core, cloud.ns, uid), "stopped: no pod"
    same_claim()
    settle(3)  # power-state syncs (every 2 s) and the host's checks see a stopped VM
    status = cloud.get("vm")["status"]
    assert (status["vmState"], status.get("fault")) == ("STOPPED", None), status

    # start: the same pod again (name, node, spec) on the same claim
    patch_instance(cloud, "vm", {"spec": {"powerState": "Running"}})
    status = finished_action(cloud, "vm", 3)
    assert (status["vmState"], status["powerState"]) == ("ACTIVE", "RUNNING"), status
    started = only_pod(core, cloud.ns, uid)
    assert started.metadata.uid != first.metadata.uid
    assert (started.metadata.name, started.spec.node_name) == (first.metadata.name, TCG_NODE)
    disk = next(v for v in started.spec.volumes if v.name == "disk")
    assert disk.persistent_volume_claim.claim_name == claim.metadata.name
    assert {e.name: e.value for e in started.spec.containers[0].env} == env
    assert started.metadata.owner_references[0].uid == uid
    same_claim()

    # hard, then soft reboot: a new pod each time, on the same claim
    previous = started
    for count, kind in ((4, "hard"), (5, "soft")):
        patch_instance(cloud, "vm", {"metadata": {"annotations": {REBOOT_ANNOTATION: kind}}})
        status = finished_action(cloud, "vm", count)
        assert (status["vmState"], status["powerState"]) == ("ACTIVE", "RUNNING"), status
        rebooted = only_pod(core, cloud.ns, uid)
        assert rebooted.metadata.uid != previous.metadata.uid, f"{kind} reboot: a new pod"
        assert rebooted.status.phase == "Running"
        same_claim()
        previous = rebooted

    log = [(a["action"], a.get("rebootType"), a["result"]) for a in status["actions"]]
    assert log == [
        ("create", None, "Success"),
        ("stop", None, "Success"),
        ("start", None, "Success"),
        ("reboot", "HARD", "Success"),
        ("reboot", "SOFT", "Success"),
    ]

    delete_with_its_disk(cloud, core, uid)
    wait_for(lambda: not claims_of(core, cloud.ns, uid), 30, "the claim to be gone")


def test_a_pod_gone_behind_the_operators_back_is_a_stopped_vm_a_hard_reboot_starts(cloud, api):
    """An ACTIVE instance whose pod vanished (evicted, deleted by hand): the claim is there, so
    the driver reports SHUTDOWN (not a lost VM) and the power-state sync puts the instance in
    ERROR with Nova's fault; a hard reboot makes the pod again on the kept disk."""
    core = client.CoreV1Api(api)
    cloud.instance("vm", zone=ZONES[TCG_NODE])
    assert cloud.settled("vm")["vmState"] == "ACTIVE"
    uid = cloud.get("vm")["metadata"]["uid"]
    first = only_pod(core, cloud.ns, uid)
    (claim,) = claims_of(core, cloud.ns, uid)

    core.delete_namespaced_pod(first.metadata.name, cloud.ns)

    def errored():
        status = cloud.get("vm")["status"]
        return status if status["vmState"] == "ERROR" else None

    status = wait_for(errored, 30, "the power-state sync to notice")
    assert status["powerState"] == "SHUTDOWN"
    assert "stopped without a stop request" in status["fault"]["message"]

    patch_instance(cloud, "vm", {"metadata": {"annotations": {REBOOT_ANNOTATION: "hard"}}})
    status = finished_action(cloud, "vm", 2)
    assert (status["vmState"], status["powerState"]) == ("ACTIVE", "RUNNING"), status
    assert status.get("fault") is None
    again = only_pod(core, cloud.ns, uid)
    assert again.metadata.uid != first.metadata.uid
    (kept,) = claims_of(core, cloud.ns, uid)
    assert kept.metadata.uid == claim.metadata.uid

    delete_with_its_disk(cloud, core, uid)
