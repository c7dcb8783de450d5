"""The KubeVirt driver on the real apiserver, with a VirtualMachineInstance CRD standing in for
KubeVirt's (tests/fixtures/kubevirt-vmi-crd.yaml: same group, version and names, any content).

No KubeVirt runs: the operator (a real process, `--driver kubevirt`, no embedded host) creates
the VMI, and the test writes the VMI's status the way virt-controller and virt-handler would,
phase by phase. Checked: the VMI matches the flavor, the image, the host and the metadata; the
Instance stays SPAWNING through Scheduling and Scheduled and becomes ACTIVE when the VMI runs and
is Ready; a Failed VMI sends the build to the alternate host.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from kubenova import GROUP, VERSION
from kubenova.virt.cluster import INSTANCE_UID_LABEL, NODE_ANNOTATION
from tests.cloud import Cloud, remove_test_hosts
from tests.kit import running_operator, wait_for

pytestmark = pytest.mark.integration

CRD = Path(__file__).resolve().parents[1] / "fixtures" / "kubevirt-vmi-crd.yaml"
KUBEVIRT = ("kubevirt.io", "v1")
VMIS = "virtualmachineinstances"
HOSTNAME = "kubernetes.io/hostname"
DISK_TEMPLATE = "registry.test/kubenova/images:{checksum}"
USER_DATA = "#cloud-config\nruncmd:\n- echo hello\n"


@pytest.fixture(scope="module")
def vmi_crd(api):
    """KubeVirt's VMI kind, as a bare CRD; removed at the end."""
    extensions = client.ApiextensionsV1Api(api)
    body = yaml.safe_load(CRD.read_text())
    extensions.create_custom_resource_definition(body)

    def established() -> bool:
        crd = extensions.read_custom_resource_definition(body["metadata"]["name"])
        return any(
            c.type == "Established" and c.status == "True" for c in crd.status.conditions or []
        )

    wait_for(established, 30, "the VMI CRD to be established")
    yield
    extensions.delete_custom_resource_definition(body["metadata"]["name"])


@pytest.fixture(scope="module")
def kubevirt_operator(cluster, api, crds, vmi_crd, tmp_path_factory):
    work = tmp_path_factory.mktemp("kubevirt-op")
    args = ("--driver=kubevirt", f"--kubevirt-container-disk={DISK_TEMPLATE}", "--boot-timeout=60")
    with running_operator(cluster, api, work, *args) as op:
        yield op
    remove_test_hosts(api)


@pytest.fixture
def cloud(kubevirt_operator, api, namespace, tmp_path) -> Cloud:
    return Cloud(api, namespace, tmp_path)


def vmis_of(cloud: Cloud, uid: str) -> list[dict]:
    return cloud.custom.list_namespaced_custom_object(
        *KUBEVIRT, cloud.ns, VMIS, label_selector=f"{INSTANCE_UID_LABEL}={uid}"
    )["items"]


def wait_vmi(cloud: Cloud, uid: str, not_on: str | None = None) -> dict:
    def found():
        vmis = [v for v in vmis_of(cloud, uid) if v["spec"]["nodeSelector"] != {HOSTNAME: not_on}]
        return vmis[0] if len(vmis) == 1 else None

    return wait_for(found, 60, "the VMI")


def set_phase(cloud: Cloud, vmi: dict, phase: str, **status) -> None:
    """Write the VMI's status as KubeVirt's controllers would."""
    cloud.custom.patch_namespaced_custom_object_status(
        *KUBEVIRT,
        cloud.ns,
        VMIS,
        vmi["metadata"]["name"],
        {"status": {"phase": phase, **status}},
    )


def task(cloud: Cloud, name: str) -> tuple[str, str | None]:
    status = cloud.get(name).get("status") or {}
    return status.get("vmState"), status.get("taskState")


def still_spawning(cloud: Cloud, name: str, seconds: float = 1.5) -> None:
    """The instance stays BUILDING/SPAWNING for a while (several of the driver's polls)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert task(cloud, name) == ("BUILDING", "SPAWNING")
        time.sleep(0.2)


def ready(status: str) -> dict:
    return {"type": "Ready", "status": status, "reason": "Test", "message": "set by the test"}


def instance_ready(cloud, name: str) -> dict:
    return next(c for c in cloud.get(name)["status"]["conditions"] if c["type"] == "Ready")


def test_the_vmi_matches_the_instance_and_its_phases_drive_the_build(cloud, api):
    cloud.node("a")
    cloud.node("b")
    flavor = cloud.flavor(vcpus=2, ram=1024)
    cloud.instance("vm", flavor=flavor, spec={"userData": USER_DATA})
    uid = cloud.get("vm")["metadata"]["uid"]
    vmi = wait_vmi(cloud, uid)
    assert task(cloud, "vm") == ("BUILDING", "SPAWNING")
    host = cloud.get("vm")["status"]["host"]

    meta, spec = vmi["metadata"], vmi["spec"]
    assert meta["namespace"] == cloud.ns
    assert meta["annotations"][NODE_ANNOTATION] == host
    assert meta["ownerReferences"][0]["uid"] == uid
    assert spec["nodeSelector"] == {HOSTNAME: host}
    assert spec["hostname"] == "vm"
    assert spec["domain"]["cpu"] == {"cores": 2}
    assert spec["domain"]["resources"]["requests"] == {"memory": "1024Mi"}
    assert spec["domain"]["firmware"]["uuid"] == uid
    image = cloud.custom.get_namespaced_custom_object(GROUP, VERSION, cloud.ns, "images", "tiny")
    volumes = {v["name"]: v for v in spec["volumes"]}
    container_disk = volumes["rootdisk"]["containerDisk"]["image"]
    assert container_disk == DISK_TEMPLATE.format(checksum=image["spec"]["checksum"])
    assert volumes["cloudinitdisk"]["cloudInitNoCloud"]["userData"] == USER_DATA
    assert {d["name"] for d in spec["domain"]["devices"]["disks"]} == set(volumes)

    for phase in ("Pending", "Scheduling", "Scheduled"):
        set_phase(cloud, vmi, phase)
        still_spawning(cloud, "vm")
    set_phase(cloud, vmi, "Running", nodeName=host, conditions=[ready("False")])
    # Running is ACTIVE (as Nova's libvirt driver and KubeVirt's VMI phase say); Ready waits
    # for KubeVirt's own Ready condition.
    status = cloud.settled("vm")
    assert status["vmState"] == "ACTIVE", status.get("fault")
    assert (status["host"], status["powerState"]) == (host, "RUNNING")
    assert not status.get("attempts")
    assert instance_ready(cloud, "vm")["reason"] == "GuestBooting"
    set_phase(cloud, vmi, "Running", nodeName=host, conditions=[ready("True")])
    wait_for(
        lambda: instance_ready(cloud, "vm")["status"] == "True", 30, "the instance to be Ready"
    )
    assert cloud.get("vm")["status"]["guestBootSignal"] == "Hypervisor"

    cloud.delete("vm")
    wait_for(lambda: not vmis_of(cloud, uid), 60, "the VMI to be deleted")


def test_a_failed_vmi_reschedules_the_instance(cloud, api):
    cloud.node("a")
    cloud.node("b")
    cloud.instance("vm")
    uid = cloud.get("vm")["metadata"]["uid"]
    first = wait_vmi(cloud, uid)
    failed_host = first["spec"]["nodeSelector"][HOSTNAME]
    set_phase(cloud, first, "Scheduling")
    set_phase(cloud, first, "Failed", reason="PodFailed")

    second = wait_vmi(cloud, uid, not_on=failed_host)
    good_host = second["spec"]["nodeSelector"][HOSTNAME]
    assert good_host != failed_host
    assert second["metadata"]["name"] != first["metadata"]["name"]
    set_phase(cloud, second, "Running", nodeName=good_host, conditions=[ready("True")])
    status = cloud.settled("vm")
    assert status["vmState"] == "ACTIVE", status.get("fault")
    assert status["host"] == good_host
    (attempt,) = status["attempts"]
    assert attempt["host"] == failed_host
    assert "VMI phase Failed" in attempt["reason"] and "PodFailed" in attempt["reason"]
    names = [v["metadata"]["name"] for v in vmis_of(cloud, uid)]
    assert names == [second["metadata"]["name"]], "the failed VMI was deleted"
