"""The pure parts of the QEMU pod and KubeVirt drivers: the objects they create from a
SpawnRequest, what the objects' phases mean, and which driver serves which host."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from kubenova.conductor.context import ComputeHosts, cluster_driver_for
from kubenova.config import OperatorConfig
from kubenova.kube.client import ApiException
from kubenova.models.v1alpha1.states import PowerState
from kubenova.virt.cluster import (
    INSTANCE_UID_LABEL,
    NODE_ANNOTATION,
    label_value,
    object_name,
    split_name,
)
from kubenova.virt.driver import (
    DriverError,
    GuestMetadata,
    InstanceNotFound,
    NetworkInterface,
    SpawnRequest,
)
from kubenova.virt.fake import FakeDriver
from kubenova.virt.kubevirt import KubeVirtDriver
from kubenova.virt.kubevirt.manifest import (
    CONTAINER_DISK_PROPERTY,
    KubeVirtOptions,
    user_data_with_keys,
    view_vmi,
    vmi_manifest,
)
from kubenova.virt.pod import PodDriver
from kubenova.virt.pod.manifest import (
    LAUNCH_SPEC_ANNOTATION,
    READY_FILE,
    SELECTED_NODE_ANNOTATION,
    WORKDIR,
    PodOptions,
    claim_manifest,
    claim_request,
    pod_disk_is_persistent,
    pod_manifest,
    view_pod,
)
from kubenova.virt.qemu.launcher import SPEC_ENV, LaunchSpec, load_spec

UID = "0b6f3c52-6c1e-4a8e-9d4c-3f1f7f0d2a11"
SUM = "ab" * 32
DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


def request(**overrides) -> SpawnRequest:
    fields = {
        "instance_id": UID,
        "name": "demo/web-1",
        "vcpus": 2,
        "ram_mib": 1024,
        "disk_gib": 10,
        "image_path": None,
        "image_format": "qcow2",
        "image_source": "https://images.example/busybox.qcow2",
        "image_checksum": SUM,
        "metadata": GuestMetadata(
            instance_id=UID, hostname="web-1", user_data="#cloud-config\nruncmd: [true]\n"
        ),
    }
    return SpawnRequest(**{**fields, **overrides})


def container(pod: dict) -> dict:
    (only,) = pod["spec"]["containers"]
    return only


def env(pod: dict) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container(pod)["env"]}


# -- names ---------------------------------------------------------------------------------------
def test_object_names_are_dns_labels_per_instance_and_host():
    a = object_name("web-1", UID, "node-a")
    assert a.startswith("web-1-0b6f3c52-") and DNS_LABEL.fullmatch(a)
    assert object_name("web-1", UID, "node-b") != a, "one object per host: no clash on reschedule"
    long = object_name("A.Very_Long." + "x" * 300, UID, "n")
    assert DNS_LABEL.fullmatch(long) and len(long) <= 63
    assert split_name("demo/web-1") == ("demo", "web-1")
    with pytest.raises(ValueError):
        split_name("no-namespace")
    assert label_value("-" + "h" * 80 + ".") == "h" * 63


# -- the pod -------------------------------------------------------------------------------------
def test_pod_is_pinned_sized_from_the_flavor_and_runs_the_launcher():
    pod = pod_manifest(request(), "node-a", PodOptions(image="registry/launcher:1"))
    spec = pod["spec"]
    assert pod["metadata"]["namespace"] == "demo"
    assert pod["metadata"]["labels"][INSTANCE_UID_LABEL] == UID
    assert pod["metadata"]["annotations"][NODE_ANNOTATION] == "node-a"
    assert pod["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "compute.kubenova.io/v1alpha1",
            "kind": "Instance",
            "name": "web-1",
            "uid": UID,
        }
    ]
    assert spec["nodeName"] == "node-a"
    assert spec["restartPolicy"] == "Never"
    assert "schedulerName" not in spec
    c = container(pod)
    assert c["image"] == "registry/launcher:1"
    # The launcher's ACPI window on SIGTERM: the pod's 30 s grace less 10 s to stop qemu.
    assert c["command"] == [
        "kubenova",
        "launch",
        f"--workdir={WORKDIR}",
        f"--ready-file={READY_FILE}",
        "--shutdown-grace=20",
    ]
    assert spec["terminationGracePeriodSeconds"] == 30
    # cpu: the limit is the flavor's, the request what the scheduler's ratio (4.0) allowed; no
    # ephemeral storage: the disk is the claim's.
    assert c["resources"] == {
        "requests": {"cpu": "500m", "memory": "1280Mi"},
        "limits": {"cpu": "2", "memory": "1280Mi"},
    }
    assert c["readinessProbe"]["exec"]["command"] == ["test", "-e", READY_FILE]
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    assert mounts == {"disk": WORKDIR, "tmp": "/tmp"}
    name = pod["metadata"]["name"]
    assert spec["volumes"][0] == {"name": "disk", "persistentVolumeClaim": {"claimName": name}}
    assert pod_disk_is_persistent(pod)


def test_the_ready_file_is_per_pod_not_on_the_kept_disk():
    """A launcher killed while ready leaves its ready file behind: on the claim it would make
    the next pod on the same disk look booted before its guest is."""
    pod = pod_manifest(request(), "node-a", PodOptions())
    mounts = {m["mountPath"]: m["name"] for m in container(pod)["volumeMounts"]}
    assert not READY_FILE.startswith(WORKDIR + "/")
    assert mounts["/tmp"] == "tmp" and READY_FILE.startswith("/tmp/")
    tmp = next(v for v in pod["spec"]["volumes"] if v["name"] == "tmp")
    assert "emptyDir" in tmp


def test_with_the_emptydir_disk_the_pod_keeps_its_disk_in_ephemeral_storage():
    pod = pod_manifest(request(), "node-a", PodOptions(disk="emptyDir"))
    c = container(pod)
    assert c["resources"] == {
        "requests": {"cpu": "500m", "memory": "1280Mi", "ephemeral-storage": "10Gi"},
        "limits": {"cpu": "2", "memory": "1280Mi", "ephemeral-storage": "20Gi"},
    }
    assert pod["spec"]["volumes"][0] == {"name": "disk", "emptyDir": {"sizeLimit": "20Gi"}}
    assert not pod_disk_is_persistent(pod)
    unsized = pod_manifest(request(disk_gib=0), "node-a", PodOptions(disk="emptyDir"))
    assert unsized["spec"]["volumes"][0] == {"name": "disk", "emptyDir": {}}


def test_the_claim_is_named_owned_and_labelled_as_the_pod_and_pinned_to_the_host():
    pod = pod_manifest(request(), "node-a", PodOptions())
    claim = claim_manifest(request(), "node-a", PodOptions())
    assert claim["apiVersion"] == "v1" and claim["kind"] == "PersistentVolumeClaim"
    meta = claim["metadata"]
    for key in ("name", "namespace", "labels", "ownerReferences"):
        assert meta[key] == pod["metadata"][key], key
    # No scheduler sees the pod (nodeName): a WaitForFirstConsumer class provisions the claim
    # only with the annotation the kube-scheduler would have set.
    assert meta["annotations"][SELECTED_NODE_ANNOTATION] == "node-a"
    assert meta["annotations"][NODE_ANNOTATION] == "node-a"
    spec = claim["spec"]
    assert spec["accessModes"] == ["ReadWriteOnce"]
    assert spec["volumeMode"] == "Filesystem"
    # the root disk (10 GiB) and the base image cache (at most as much)
    assert spec["resources"] == {"requests": {"storage": "20Gi"}}
    assert "storageClassName" not in spec, "the cluster's default class"
    elsewhere = claim_manifest(request(), "node-a", PodOptions(namespace="vms"))
    assert "ownerReferences" not in elsewhere["metadata"]


def test_the_claims_class_and_size_options():
    fast = claim_manifest(request(), "n", PodOptions(storage_class_name="fast"))
    assert fast["spec"]["storageClassName"] == "fast"
    none = claim_manifest(request(), "n", PodOptions(storage_class_name=""))
    assert none["spec"]["storageClassName"] == "", "no class: pre-provisioned volumes only"
    unsized = claim_manifest(request(disk_gib=0), "n", PodOptions(image_disk_gib=4))
    assert unsized["spec"]["resources"]["requests"]["storage"] == "8Gi"


def test_the_claim_keeps_what_the_pod_is_made_again_from():
    """power_on gets only the instance's id: the claim's launch spec makes the same pod."""
    nic = NetworkInterface(mac="52:54:00:12:34:56", ip="10.0.0.5", network="net")
    meta = GuestMetadata(UID, "web-1", "#!/bin/sh\n", ("ssh-ed25519 AAAA k",), "version: 2\n")
    original = request(metadata=meta, interfaces=(nic,))
    claim = claim_manifest(original, "node-a", PodOptions())
    again = claim_request(claim)
    options = PodOptions(image="registry/launcher:1")
    assert pod_manifest(again, "node-a", options, kvm=True) == pod_manifest(
        original, "node-a", options, kvm=True
    )
    del claim["metadata"]["annotations"][LAUNCH_SPEC_ANNOTATION]
    with pytest.raises(DriverError, match="launch-spec"):
        claim_request(claim)
    claim["metadata"]["annotations"][LAUNCH_SPEC_ANNOTATION] = '{"version": 1}'
    with pytest.raises(DriverError, match="invalid"):
        claim_request(claim)


def test_pod_stays_within_pod_security_baseline():
    pod = pod_manifest(request(), "node-a", PodOptions(), kvm=True)
    spec = pod["spec"]
    assert not spec.get("hostNetwork") and not spec.get("hostPID") and not spec.get("hostIPC")
    assert all("hostPath" not in v for v in spec["volumes"])
    assert spec["automountServiceAccountToken"] is False
    assert spec["securityContext"]["runAsNonRoot"] is True
    security = container(pod)["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert not security.get("privileged")


def test_kvm_only_on_kvm_nodes_through_the_device_plugin():
    tcg = pod_manifest(request(), "node-a", PodOptions())
    assert env(tcg)["KUBENOVA_ACCEL"] == "tcg"
    assert "devices.kubevirt.io/kvm" not in container(tcg)["resources"]["requests"]
    kvm = pod_manifest(request(), "node-a", PodOptions(), kvm=True)
    assert "KUBENOVA_ACCEL" not in env(kvm), "the launcher probes KVM and falls back to TCG"
    resources = container(kvm)["resources"]
    assert resources["requests"]["devices.kubevirt.io/kvm"] == "1"
    assert resources["limits"]["devices.kubevirt.io/kvm"] == "1"


def test_pod_in_a_configured_namespace_has_no_owner_across_namespaces():
    pod = pod_manifest(request(), "node-a", PodOptions(namespace="vms"))
    assert pod["metadata"]["namespace"] == "vms"
    assert "ownerReferences" not in pod["metadata"]


def test_the_launch_spec_round_trips_through_the_pod():
    nic = NetworkInterface(mac="52:54:00:12:34:56", ip="10.0.0.5", network="net")
    meta = GuestMetadata(UID, "web-1", "#!/bin/sh\n", ("ssh-ed25519 AAAA k",), "version: 2\n")
    original = request(metadata=meta, interfaces=(nic,))
    pod = pod_manifest(original, "node-a", PodOptions())
    spec = load_spec(env(pod)[SPEC_ENV])
    back = spec.to_request()
    assert back.metadata == meta
    assert back.interfaces == (nic,)
    assert (back.vcpus, back.ram_mib, back.disk_gib) == (2, 1024, 10)
    assert (back.image_source, back.image_checksum) == (original.image_source, SUM)
    assert json.loads(env(pod)[SPEC_ENV])["version"] == 1


def test_launch_spec_reads_file_urls_and_prefixed_checksums():
    spec = LaunchSpec.from_request(
        request(image_source="file:///images/a.qcow2", image_checksum=f"sha256:{SUM}")
    )
    assert spec.source_for_cache == "/images/a.qcow2"
    assert spec.sha256 == SUM
    with pytest.raises(ValueError, match="invalid launch spec"):
        load_spec('{"instance_id": "x"}')
    with pytest.raises(DriverError, match="volumes"):
        LaunchSpec.from_request(request(volumes=(Path("/v"),)))


@pytest.mark.parametrize(
    ("status", "deleting", "power", "booted", "finished"),
    [
        ({}, False, PowerState.NOSTATE, False, False),
        ({"phase": "Pending"}, False, PowerState.NOSTATE, False, False),
        ({"phase": "Running"}, False, PowerState.RUNNING, False, False),
        (
            {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]},
            False,
            PowerState.RUNNING,
            True,
            False,
        ),
        ({"phase": "Succeeded"}, False, PowerState.SHUTDOWN, False, True),
        ({"phase": "Failed", "reason": "Evicted"}, False, PowerState.CRASHED, False, True),
        ({"phase": "Unknown"}, False, PowerState.NOSTATE, False, False),
        ({"phase": "Running"}, True, PowerState.SHUTDOWN, False, True),
    ],
)
def test_pod_phase_and_readiness_map_to_power_states(status, deleting, power, booted, finished):
    pod = {"metadata": {"deletionTimestamp": "now"} if deleting else {}, "status": status}
    view = view_pod(pod)
    assert (view.power_state, view.booted, view.finished) == (power, booted, finished)


def test_a_failed_pod_says_why():
    pod = {
        "metadata": {},
        "status": {
            "phase": "Failed",
            "reason": "Evicted",
            "containerStatuses": [
                {
                    "name": "qemu",
                    "state": {"terminated": {"exitCode": 1, "reason": "Error", "message": "boom"}},
                }
            ],
        },
    }
    reason = view_pod(pod).reason
    assert "Failed" in reason and "Evicted" in reason and "exit 1" in reason and "boom" in reason


# -- the pod driver's power operations, against a stand-in for the API ---------------------------
class FakeCore:
    """The CoreV1Api calls the pod driver makes, on pods and claims kept in dicts; a deleted pod
    is gone at once (as kwok does), and the grace of each pod deletion is recorded."""

    def __init__(self) -> None:
        self.pods: dict[str, dict] = {}
        self.claims: dict[str, dict] = {}
        self.deletions: list[tuple[str, int]] = []
        self.created = 0
        self.phase = "Running"
        """what a new pod becomes (kwok makes it Running; a kubelet without its volume won't)"""

    @staticmethod
    def _ours(objs: dict[str, dict], label_selector: str) -> SimpleNamespace:
        wanted = dict(t.split("=", 1) for t in label_selector.split(",") if "=" in t)
        labels = [(o, o["metadata"]["labels"]) for o in objs.values()]
        return SimpleNamespace(
            items=[o for o, have in labels if all(have.get(k) == v for k, v in wanted.items())]
        )

    async def list_pod_for_all_namespaces(self, label_selector: str, field_selector: str):
        return self._ours(self.pods, label_selector)

    async def list_persistent_volume_claim_for_all_namespaces(self, label_selector: str):
        return self._ours(self.claims, label_selector)

    async def read_namespaced_pod(self, name: str, namespace: str) -> dict:
        if name not in self.pods:
            raise ApiException(status=404, reason="Not Found")
        return self.pods[name]

    async def create_namespaced_pod(self, namespace: str, body: dict) -> dict:
        if body["metadata"]["name"] in self.pods:
            raise ApiException(status=409, reason="Conflict")
        self.created += 1
        pod = json.loads(json.dumps(body))
        pod["metadata"]["uid"] = f"pod-{self.created}"
        pod["status"] = {"phase": self.phase}
        self.pods[pod["metadata"]["name"]] = pod
        return pod

    async def delete_namespaced_pod(self, name: str, namespace: str, grace_period_seconds: int):
        if name not in self.pods:
            raise ApiException(status=404, reason="Not Found")
        self.deletions.append((name, grace_period_seconds))
        del self.pods[name]

    async def read_namespaced_persistent_volume_claim(self, name: str, namespace: str) -> dict:
        return self.claims[name]

    async def read_node(self, name: str):
        return SimpleNamespace(metadata=SimpleNamespace(labels={}))


def pod_driver(disk: str = "pvc") -> tuple[PodDriver, FakeCore]:
    api = SimpleNamespace(sanitize_for_serialization=lambda obj: obj)
    driver = PodDriver(api, "node-a", PodOptions(disk=disk, poll_interval=0.01))
    driver.core = FakeCore()
    return driver, driver.core


def stopped(core: FakeCore, disk: str = "pvc") -> dict:
    """An instance whose pod is gone and whose claim is kept; its pod's manifest."""
    claim = claim_manifest(request(), "node-a", PodOptions())
    core.claims[claim["metadata"]["name"]] = claim
    return pod_manifest(request(), "node-a", PodOptions(disk=disk))


def test_stopped_is_the_claim_without_a_pod():
    driver, core = pod_driver()
    with pytest.raises(InstanceNotFound):
        asyncio.run(driver.get_info(UID))
    stopped(core)
    info = asyncio.run(driver.get_info(UID))
    assert info.power_state == PowerState.SHUTDOWN, "not a lost VM: its disk is kept"
    assert asyncio.run(driver.list_instances()) == [UID]
    assert asyncio.run(driver.console_output(UID)) == ""


def test_power_on_makes_the_pod_again_from_the_claim_and_reboots_make_a_new_one():
    driver, core = pod_driver()
    pod = stopped(core)
    name = pod["metadata"]["name"]
    info = asyncio.run(driver.power_on(UID, start_timeout=5))
    assert info.power_state == PowerState.RUNNING
    assert core.pods[name]["spec"] == pod["spec"], "the same pod as the spawn made"
    assert asyncio.run(driver.power_on(UID, start_timeout=5)).power_state == PowerState.RUNNING
    assert core.created == 1, "a pod that runs is not made twice"

    asyncio.run(driver.reboot(UID, hard=True, start_timeout=5))
    asyncio.run(driver.reboot(UID, hard=False, start_timeout=5))
    # hard: grace 1 (0 would be a force deletion: the object gone before qemu stopped); soft:
    # the pod's own grace, the launcher's ACPI power-off window.
    assert core.deletions == [(name, 1), (name, 30)]
    assert core.created == 3 and core.pods[name]["metadata"]["uid"] == "pod-3"

    asyncio.run(driver.power_off(UID, grace=60))
    asyncio.run(driver.power_off(UID, grace=60))  # already off: nothing to do
    assert core.deletions[2:] == [(name, 30)] and not core.pods
    asyncio.run(driver.power_on(UID, start_timeout=5))
    asyncio.run(driver.power_off(UID, grace=0))  # hard
    assert core.deletions[3:] == [(name, 1)]
    assert list(core.claims) == [name], "the disk stays"


def test_a_pod_that_ended_is_replaced_by_power_on():
    driver, core = pod_driver()
    pod = stopped(core)
    asyncio.run(driver.power_on(UID, start_timeout=5))
    core.pods[pod["metadata"]["name"]]["status"] = {"phase": "Succeeded"}  # the guest shut down
    assert asyncio.run(driver.get_info(UID)).power_state == PowerState.SHUTDOWN
    asyncio.run(driver.power_on(UID, start_timeout=5))
    assert core.created == 2


def test_a_pod_that_does_not_run_in_time_names_its_unbound_claim():
    driver, core = pod_driver()
    pod = stopped(core)
    core.phase = "Pending"  # the kubelet waits for the volume
    with pytest.raises(DriverError, match="is Pending, not bound"):
        asyncio.run(driver.power_on(UID, start_timeout=0.05))
    assert not core.pods, "the start failed: the pod is deleted again, the disk kept"
    assert list(core.claims) == [pod["metadata"]["name"]]


def test_power_operations_refuse_an_emptydir_disk():
    driver, core = pod_driver(disk="emptyDir")
    assert "emptyDir" in driver.power_operations_unsupported
    with pytest.raises(DriverError, match="emptyDir"):
        asyncio.run(driver.power_off(UID))
    # a pod made with the emptyDir disk, under an operator now making claims: never deleted
    driver, core = pod_driver()
    assert driver.power_operations_unsupported is None
    pod = pod_manifest(request(), "node-a", PodOptions(disk="emptyDir"))
    pod["metadata"]["uid"] = "old"
    core.pods[pod["metadata"]["name"]] = pod
    for operation in (
        driver.power_off(UID),
        driver.power_on(UID, 5),
        driver.reboot(UID, True, 5),
    ):
        with pytest.raises(DriverError, match="emptyDir"):
            asyncio.run(operation)
    assert not core.deletions


# -- the VirtualMachineInstance ------------------------------------------------------------------
def test_vmi_is_pinned_sized_and_gets_the_metadata():
    nic = NetworkInterface(mac="52:54:00:12:34:56", ip="10.0.0.5", network="net")
    meta = GuestMetadata(UID, "Web_1", "#cloud-config\nruncmd: [true]\n", (), "version: 2\n")
    vmi = vmi_manifest(
        request(metadata=meta, interfaces=(nic,)),
        "node-a",
        KubeVirtOptions(container_disk="registry/images:{checksum}"),
    )
    assert vmi["apiVersion"] == "kubevirt.io/v1" and vmi["kind"] == "VirtualMachineInstance"
    spec = vmi["spec"]
    assert spec["nodeSelector"] == {"kubernetes.io/hostname": "node-a"}
    assert spec["hostname"] == "web-1"
    domain = spec["domain"]
    assert domain["cpu"] == {"cores": 2}
    assert domain["resources"] == {"requests": {"memory": "1024Mi"}}
    assert domain["firmware"] == {"uuid": UID}, "KubeVirt's NoCloud instance-id"
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["rootdisk"]["containerDisk"]["image"] == f"registry/images:{SUM}"
    assert volumes["cloudinitdisk"]["cloudInitNoCloud"] == {
        "userData": "#cloud-config\nruncmd: [true]\n",
        "networkData": "version: 2\n",
    }
    disks = {d["name"] for d in domain["devices"]["disks"]}
    assert disks == set(volumes)
    assert domain["devices"]["interfaces"] == [
        {"name": "default", "masquerade": {}, "macAddress": "52:54:00:12:34:56"}
    ]
    assert spec["networks"] == [{"name": "default", "pod": {}}]


def test_the_image_property_names_the_container_disk_first():
    req = request(image_properties={CONTAINER_DISK_PROPERTY: "quay.io/containerdisks/x:1"})
    vmi = vmi_manifest(req, "n", KubeVirtOptions(container_disk="registry/images:{checksum}"))
    assert vmi["spec"]["volumes"][0]["containerDisk"]["image"] == "quay.io/containerdisks/x:1"
    with pytest.raises(DriverError, match="containerDisk"):
        vmi_manifest(request(), "n", KubeVirtOptions())
    with pytest.raises(DriverError, match="volume"):
        vmi_manifest(request(volumes=(Path("/v.qcow2"),)), "n", KubeVirtOptions(container_disk="x"))


def test_public_keys_join_cloud_config_user_data():
    merged = yaml.safe_load(user_data_with_keys("#cloud-config\nruncmd: [true]\n", ("k1",)))
    assert merged == {"runcmd": [True], "ssh_authorized_keys": ["k1"]}
    assert user_data_with_keys("#!/bin/sh\necho\n", ("k1",)) == "#!/bin/sh\necho\n"
    empty = vmi_manifest(
        request(metadata=GuestMetadata(UID, "h", None, ("k2",))),
        "n",
        KubeVirtOptions(container_disk="x"),
    )
    user_data = empty["spec"]["volumes"][1]["cloudInitNoCloud"]["userData"]
    assert yaml.safe_load(user_data)["ssh_authorized_keys"] == ["k2"]


def ready(status: str) -> dict:
    return {"type": "Ready", "status": status}


@pytest.mark.parametrize(
    ("status", "power", "booted", "finished"),
    [
        ({}, PowerState.NOSTATE, False, False),
        ({"phase": "Pending"}, PowerState.NOSTATE, False, False),
        ({"phase": "Scheduling"}, PowerState.NOSTATE, False, False),
        ({"phase": "Scheduled"}, PowerState.NOSTATE, False, False),
        ({"phase": "Running"}, PowerState.RUNNING, True, False),
        ({"phase": "Running", "conditions": [ready("False")]}, PowerState.RUNNING, False, False),
        ({"phase": "Running", "conditions": [ready("True")]}, PowerState.RUNNING, True, False),
        (
            {
                "phase": "Running",
                "conditions": [ready("True"), {"type": "AgentConnected", "status": "False"}],
            },
            PowerState.RUNNING,
            False,
            False,
        ),
        (
            {"phase": "Running", "conditions": [{"type": "Paused", "status": "True"}]},
            PowerState.PAUSED,
            False,
            False,
        ),
        ({"phase": "Succeeded"}, PowerState.SHUTDOWN, False, True),
        ({"phase": "Failed"}, PowerState.CRASHED, False, True),
        ({"phase": "Unknown"}, PowerState.NOSTATE, False, False),
    ],
)
def test_vmi_phases_map_to_power_states(status, power, booted, finished):
    view = view_vmi({"metadata": {}, "status": status})
    assert (view.power_state, view.booted, view.finished) == (power, booted, finished)


# -- which driver serves which host --------------------------------------------------------------
def test_a_cluster_driver_serves_every_host_bound_to_its_name():
    config = OperatorConfig(driver="pod", pod_image="img:1")
    assert config.hosts == 0, "no embedded hosts by default with a cluster driver"
    hosts = ComputeHosts(cluster_driver=cluster_driver_for(config, api=object()))
    a, b = hosts.driver_for("node-a"), hosts.driver_for("node-b")
    assert isinstance(a, PodDriver) and isinstance(b, PodDriver)
    assert (a.host, b.host, a.options.image) == ("node-a", "node-b", "img:1")
    assert (a.options.disk, a.options.storage_class_name) == ("pvc", None)
    assert a.power_operations_unsupported is None, "the disk outlives the pod"
    ephemeral = OperatorConfig(driver="pod", pod_disk="emptyDir", pod_storage_class="fast")
    c = cluster_driver_for(ephemeral, api=object())("node-c", {})
    assert (c.options.disk, c.options.storage_class_name) == ("emptyDir", "fast")
    assert "emptyDir" in c.power_operations_unsupported
    assert hosts.driver_for("node-a") is a
    assert hosts.serving("node-c").host == "node-c", "its pods outlive the operator"
    kubevirt = cluster_driver_for(OperatorConfig(driver="kubevirt"), api=object())
    assert isinstance(kubevirt("node-a", {}), KubeVirtDriver)
    assert cluster_driver_for(OperatorConfig(driver="qemu"), api=object()) is None


def test_fake_everywhere_serves_only_hosts_it_has_seen_for_cleanup():
    hosts = ComputeHosts(fake_everywhere=True)
    assert hosts.serving("node-a") is None, "a FakeDriver's VMs live in its memory"
    driver = hosts.driver_for("node-a", {"compute.kubenova.io/fake-fail": "spawn"})
    assert isinstance(driver, FakeDriver) and driver.fail_spawn
    assert hosts.serving("node-a") is driver
    assert ComputeHosts().driver_for("node-a") is None
