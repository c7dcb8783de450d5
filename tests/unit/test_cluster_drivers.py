"""The pure parts of the QEMU pod and KubeVirt drivers: the objects they create from a
SpawnRequest, what the objects' phases mean, and which driver serves which host."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from kubenova.conductor.context import ComputeHosts, cluster_driver_for
from kubenova.config import OperatorConfig
from kubenova.models.v1alpha1.states import PowerState
from kubenova.virt.cluster import (
    INSTANCE_UID_LABEL,
    NODE_ANNOTATION,
    label_value,
    object_name,
    split_name,
)
from kubenova.virt.driver import DriverError, GuestMetadata, NetworkInterface, SpawnRequest
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
from kubenova.virt.pod.manifest import READY_FILE, PodOptions, pod_manifest, view_pod
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
    assert c["command"][:2] == ["kubenova", "launch"]
    # cpu: the limit is the flavor's, the request what the scheduler's ratio (4.0) allowed.
    assert c["resources"] == {
        "requests": {"cpu": "500m", "memory": "1280Mi", "ephemeral-storage": "10Gi"},
        "limits": {"cpu": "2", "memory": "1280Mi", "ephemeral-storage": "20Gi"},
    }
    assert c["readinessProbe"]["exec"]["command"] == ["test", "-e", READY_FILE]
    assert {m["name"] for m in c["volumeMounts"]} == {"disk", "tmp"}
    assert spec["volumes"][0] == {"name": "disk", "emptyDir": {"sizeLimit": "20Gi"}}


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
