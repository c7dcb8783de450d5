"""The QEMU pod driver on the real apiserver, with kwok standing in for the kubelet.

The operator runs as a real process with `--driver pod` and no embedded host; the compute hosts
are Node objects that kwok manages (tests/kwok.py). kwok plays the kubelet's part: it makes the
Nodes Ready and moves each pod bound to them to Running with its Ready condition True. It runs
no container, so the launcher inside the pod never runs here (tests/e2e/test_launcher.py runs it
for real); what is tested is everything around it: the pod the driver creates (node, requests
and limits, command, volumes, security), SPAWNING → ACTIVE on readiness, and the reschedule when
a pod fails or disappears before it is ready. For those, pods on the `hold` node are left
Pending by kwok and the test writes their status as the kubelet would.

Each test's nodes sit in availability zones of their own, so the scheduler's choice is known.
"""

from __future__ import annotations

import json

import pytest
from kubernetes import client

from kubenova import GROUP, VERSION
from kubenova.virt.cluster import INSTANCE_UID_LABEL, NODE_ANNOTATION
from kubenova.virt.pod.manifest import KVM_LABEL, READY_FILE, WORKDIR
from kubenova.virt.qemu.launcher import SPEC_ENV
from tests.cloud import Cloud
from tests.kit import running_operator, wait_for
from tests.kwok import delete_kwok_nodes, kwok_node, running_kwok, wait_pod

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
    args = ("--driver=pod", f"--pod-image={POD_IMAGE}", "--boot-timeout=60")
    with running_operator(cluster, api, work, *args) as op:
        yield op


@pytest.fixture
def cloud(pod_operator, api, namespace, tmp_path) -> Cloud:
    return Cloud(api, namespace, tmp_path)


def pods_of(core: client.CoreV1Api, namespace: str, uid: str) -> list[client.V1Pod]:
    return core.list_namespaced_pod(namespace, label_selector=f"{INSTANCE_UID_LABEL}={uid}").items


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
    ]
    env = {e.name: e.value for e in qemu.env}
    spec = json.loads(env[SPEC_ENV])
    image = cloud.custom.get_namespaced_custom_object(GROUP, VERSION, cloud.ns, "images", "tiny")
    assert (spec["instance_id"], spec["hostname"], spec["user_data"]) == (uid, "vm", "#!/bin/sh\n")
    assert (spec["vcpus"], spec["ram_mib"], spec["disk_gib"]) == (2, 1024, 1)
    assert spec["image_source"] == image["spec"]["source"]
    assert spec["image_checksum"] == image["spec"]["checksum"]
    # requests/limits from the flavor: cpu request = vcpus / the scheduler's 4.0 ratio; memory
    # = RAM + QEMU's overhead; ephemeral storage = disk (the limit leaves room for the base image)
    requests = {"cpu": "500m", "memory": "1280Mi", "ephemeral-storage": "1Gi"}
    limits = {"cpu": "2", "memory": "1280Mi", "ephemeral-storage": "2Gi"}
    if node == KVM_NODE:
        requests[KVM_RESOURCE] = limits[KVM_RESOURCE] = "1"
        assert "KUBENOVA_ACCEL" not in env
    else:
        assert env["KUBENOVA_ACCEL"] == "tcg"
    assert qemu.resources.requests == requests
    assert qemu.resources.limits == limits
    assert qemu.readiness_probe._exec.command == ["test", "-e", READY_FILE]
    volumes = {v.name: v for v in pod.spec.volumes}
    assert volumes["disk"].empty_dir.size_limit == "2Gi"
    assert volumes["tmp"].empty_dir is not None
    assert all(v.host_path is None for v in pod.spec.volumes)
    assert {m.name: m.mount_path for m in qemu.volume_mounts} == {"disk": WORKDIR, "tmp": "/tmp"}
    assert pod.spec.security_context.run_as_non_root is True
    assert qemu.security_context.allow_privilege_escalation is False
    assert qemu.security_context.capabilities.drop == ["ALL"]

    cloud.delete("vm")  # through the operator: destroy deletes the pod, kwok removes it
    wait_for(lambda: not pods_of(core, cloud.ns, uid), 60, "the pod to be deleted")


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
