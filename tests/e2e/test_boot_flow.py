"""An Instance walks Nova's states to a real QEMU boot, and delete/crash leave nothing behind.

Real etcd + kube-apiserver, the operator as its own process, QEMU under TCG.
"""

from __future__ import annotations

import pytest
from kubernetes import client

from kubenova import GROUP, VERSION
from tests.e2e.conftest import HOST
from tests.kit import Operator, columns, wait_for
from tests.proc import processes_with

pytestmark = pytest.mark.e2e

BUILD_PATH = [
    ("BUILDING", "SCHEDULING"),
    ("BUILDING", "NETWORKING"),
    ("BUILDING", "BLOCK_DEVICE_MAPPING"),
    ("BUILDING", "SPAWNING"),
    ("ACTIVE", None),
]


def wait_mid_boot(boot, name: str) -> dict:
    """SPAWNING, or ACTIVE with the guest still booting (Ready False GuestBooting): spawn returns
    once qemu runs, so SPAWNING alone may last less than a poll."""

    def booting():
        obj = boot.get(name) or {}
        status = obj.get("status") or {}
        if status.get("taskState") == "SPAWNING":
            return obj
        ready = next((c for c in status.get("conditions") or [] if c["type"] == "Ready"), {})
        return (
            obj
            if status.get("vmState") == "ACTIVE" and ready.get("reason") == "GuestBooting"
            else None
        )

    return wait_for(booting, 120, f"{name} to be mid-boot", interval=0.02)


def instance_dir(operator: Operator, uid: str):
    return operator.state_dir / HOST / "instances" / uid


def qemu_of(uid: str) -> list[int]:
    return processes_with("qemu-system", uid)


def allocations(api, node: str = HOST) -> dict:
    custom = client.CustomObjectsApi(api)
    try:
        rp = custom.get_cluster_custom_object(GROUP, VERSION, "resourceproviders", node)
    except client.ApiException as err:
        if err.status == 404:
            return {}
        raise
    return rp["spec"].get("allocations") or {}


def assert_nothing_left(api, operator: Operator, uid: str) -> None:
    assert qemu_of(uid) == []
    assert not instance_dir(operator, uid).exists()
    assert uid not in allocations(api)


def test_instance_boots_to_active(operator, boot, kubectl, api):
    uid = boot.instance("web-1")["metadata"]["uid"]
    waited = kubectl(
        "wait", "--for=condition=Ready", "instance/web-1", "-n", boot.namespace, "--timeout=120s"
    )
    assert waited.returncode == 0, waited.stderr + operator.log_tail()

    status = boot.get("web-1")["status"]
    assert (status["vmState"], status.get("taskState")) == ("ACTIVE", None)
    assert status["powerState"] == "RUNNING" and status["host"] == HOST
    path = [(t["vmState"], t.get("taskState")) for t in status["phaseTransitionTimestamps"]]
    assert path == BUILD_PATH
    conditions = {c["type"]: c["status"] for c in status["conditions"]}
    assert conditions == {
        "Scheduled": "True",
        "NetworkReady": "True",
        "BlockDevicesReady": "True",
        "Ready": "True",
        "Failed": "False",
    }
    assert status["printableStatus"] == "ACTIVE"
    assert len(qemu_of(uid)) == 1
    console = (instance_dir(operator, uid) / "console.log").read_text(errors="replace")
    assert f"kubenova-guest booted hostname=web-1 instance-id={uid}" in console
    assert uid in allocations(api)

    table = kubectl("get", "instance", "web-1", "-n", boot.namespace, "-o", "wide")
    row = columns(table.stdout)
    assert (row["STATUS"], row["READY"], row["HOST"]) == ("ACTIVE", "True", HOST), table.stdout
    assert (row["VM STATE"], row["TASK"], row["POWER"]) == ("ACTIVE", "", "RUNNING"), table.stdout

    def reasons():
        events = client.CoreV1Api(api).list_namespaced_event(
            boot.namespace, field_selector=f"involvedObject.uid={uid}"
        )
        return {e.reason for e in events.items}

    # No ports, no volumes: those steps write status only; the acceptance and the claim too.
    expected = {"Active", "GuestBooted"}
    wait_for(lambda: expected <= reasons(), 10, "an event for each step that did something")
    assert not {"Scheduled", "Scheduling", "Networked", "BlockDevicesMapped"} & reasons()

    boot.delete("web-1")
    boot.wait_gone("web-1")
    assert_nothing_left(api, operator, uid)


def test_delete_while_spawning_leaves_nothing(operator, boot, api):
    uid = boot.instance("short-lived")["metadata"]["uid"]
    wait_mid_boot(boot, "short-lived")
    boot.delete("short-lived")
    boot.wait_gone("short-lived")
    assert_nothing_left(api, operator, uid)


def test_checksum_mismatch_ends_in_error_without_a_vm(operator, boot, api):
    boot.image("tampered", checksum="0" * 64)
    uid = boot.instance("bad-image", image="tampered")["metadata"]["uid"]
    obj = boot.wait_state("bad-image", "ERROR")
    fault = obj["status"]["fault"]
    assert "checksum" in fault["message"].lower() or "sha256" in fault["message"].lower(), fault
    assert qemu_of(uid) == []
    assert uid not in allocations(api)


@pytest.mark.parametrize("moment", ["SPAWNING", "ACTIVE"])
def test_operator_sigkilled_then_restarted_adopts_the_vm(operator, boot, api, moment):
    name = f"survivor-{moment.lower()}"
    uid = boot.instance(name)["metadata"]["uid"]
    if moment == "SPAWNING":
        wait_mid_boot(boot, name)
        # -daemonize: the launching qemu lives beside the VM for a moment; the VM is the one
        # whose pid qemu wrote to the pidfile.
        pidfile = instance_dir(operator, uid) / "qemu.pid"
        wait_for(
            lambda: pidfile.exists() and qemu_of(uid) == [int(pidfile.read_text())],
            30,
            "the VM's qemu to be the only one",
            interval=0.02,
        )
    else:
        boot.wait_state(name, "ACTIVE")
    before = qemu_of(uid)
    operator.restart(kill=True)
    obj = boot.wait_state(name, "ACTIVE", timeout=180)
    assert obj["status"]["host"] == HOST
    assert qemu_of(uid) == before, "the restarted operator must adopt the VM, not start another"
    boot.delete(name)
    boot.wait_gone(name)
    assert_nothing_left(api, operator, uid)
