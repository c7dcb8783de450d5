"""Events no other test makes, each seen on the apiserver (the suite's check, in
tests/event_reasons.py, wants every declared reason once): failed and refused actions, an invalid
public key, volume errors, a guest that cannot be started again when its host returns.

The operator is a real process with Nova's FakeDriver (its failures injected by Node label) and
one embedded host, the resume policy on.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kubernetes import client

from kubenova import GROUP, VERSION
from kubenova.conductor.actions import REBOOT_ANNOTATION
from kubenova.conductor.context import FAKE_FAIL_LABEL
from tests.cloud import Cloud, remove_test_hosts
from tests.kit import Operator, running_operator, wait_for

pytestmark = pytest.mark.integration

EMBEDDED_HOST, EMBEDDED_ZONE = "compute-0", "nova"  # OperatorConfig's host_prefix and zone


@pytest.fixture(scope="module")
def operator(cluster, api, crds, tmp_path_factory) -> Iterator[Operator]:
    work = tmp_path_factory.mktemp("reasons-op")
    args = ("--driver=fake", "--resume-guests-state-on-host-boot", "--host-down-after=8")
    with running_operator(cluster, api, work, *args, hosts=1) as op:
        yield op
    remove_test_hosts(api)


@pytest.fixture
def cloud(operator, api, namespace, tmp_path) -> Cloud:
    return Cloud(api, namespace, tmp_path)


def reasons_of(api, namespace: str, name: str, kind: str) -> set[tuple[str, str]]:
    selector = f"involvedObject.name={name},involvedObject.kind={kind}"
    items = client.CoreV1Api(api).list_namespaced_event(namespace, field_selector=selector).items
    return {(e.type, e.reason) for e in items}


def wait_event(api, namespace: str, name: str, type_: str, reason: str, kind="Instance") -> None:
    wait_for(
        lambda: (type_, reason) in reasons_of(api, namespace, name, kind),
        30,
        f"a {type_} {reason} event about {kind} {name}",
    )


def patch(cloud: Cloud, plural: str, name: str, body: dict) -> None:
    cloud.custom.patch_namespaced_custom_object(GROUP, VERSION, cloud.ns, plural, name, body)


def last_action(cloud: Cloud, name: str, count: int) -> dict:
    """The action log's `count`th entry once it has finished."""

    def done():
        actions = (cloud.get(name).get("status") or {}).get("actions") or []
        return actions[count - 1] if len(actions) >= count and actions[-1].get("result") else None

    return wait_for(done, 30, f"action {count} of {name} to finish")


def test_actions_say_what_they_did_and_what_they_refused(cloud, api):
    zone = f"{cloud.ns}-a"
    cloud.node("a", zone=zone)
    cloud.instance("srv", zone=zone)
    assert cloud.settled("srv")["vmState"] == "ACTIVE"

    patch(cloud, "instances", "srv", {"spec": {"powerState": "Stopped"}})
    assert last_action(cloud, "srv", 2)["result"] == "Success"  # (1 is the create)
    wait_event(api, cloud.ns, "srv", "Normal", "Stopping")
    wait_event(api, cloud.ns, "srv", "Normal", "Stopped")

    patch(cloud, "instances", "srv", {"spec": {"powerState": "Running"}})
    assert last_action(cloud, "srv", 3)["result"] == "Success"
    wait_event(api, cloud.ns, "srv", "Normal", "Starting")
    wait_event(api, cloud.ns, "srv", "Normal", "Started")

    patch(cloud, "instances", "srv", {"metadata": {"annotations": {REBOOT_ANNOTATION: "soft"}}})
    assert last_action(cloud, "srv", 4)["result"] == "Success"
    wait_event(api, cloud.ns, "srv", "Normal", "Rebooting")
    wait_event(api, cloud.ns, "srv", "Normal", "Rebooted")

    patch(cloud, "instances", "srv", {"metadata": {"annotations": {REBOOT_ANNOTATION: "gently"}}})
    refused = last_action(cloud, "srv", 5)
    assert refused["result"] == "Error" and "neither soft nor hard" in refused["message"]
    wait_event(api, cloud.ns, "srv", "Warning", "ActionRefused")


def test_a_failed_stop_is_a_warning_and_the_instance_stays_active(cloud, api):
    zone = f"{cloud.ns}-flaky"
    cloud.node("flaky", zone=zone, **{FAKE_FAIL_LABEL: "power"})
    cloud.instance("srv", zone=zone)
    assert cloud.settled("srv")["vmState"] == "ACTIVE"
    patch(cloud, "instances", "srv", {"spec": {"powerState": "Stopped"}})
    failed = last_action(cloud, "srv", 2)
    assert failed["result"] == "Error" and "injected power off failure" in failed["message"]
    assert cloud.get("srv")["status"]["vmState"] == "ACTIVE"  # the VM still runs
    wait_event(api, cloud.ns, "srv", "Warning", "ActionFailed")


def test_a_key_that_is_not_base64_is_a_warning_on_the_keypair(cloud, api):
    cloud.create("keypairs", "Keypair", "bad", {"publicKey": "ssh-ed25519 AAAAB bob@laptop"})
    wait_event(api, cloud.ns, "bad", "Warning", "InvalidPublicKey", kind="Keypair")


def test_volume_errors_are_warnings(cloud, api, operator):
    cloud.create("volumes", "Volume", "orphan", {"sizeGiB": 1, "sourceImage": "missing"})
    wait_event(api, cloud.ns, "orphan", "Warning", "VolumeError", kind="Volume")
    patch(cloud, "volumes", "orphan", {"spec": {"sizeGiB": 2}})  # a volume in error
    wait_event(api, cloud.ns, "orphan", "Warning", "VolumeExtendRefused", kind="Volume")

    uid = cloud.create("volumes", "Volume", "data", {"sizeGiB": 1})["metadata"]["uid"]
    wait_event(api, cloud.ns, "data", "Normal", "VolumeAvailable", kind="Volume")
    disk = operator.state_dir / "volumes" / f"{uid}.qcow2"
    disk.write_bytes(b"not a qcow2 image")  # qemu-img cannot resize it
    patch(cloud, "volumes", "data", {"spec": {"sizeGiB": 2}})
    wait_event(api, cloud.ns, "data", "Warning", "VolumeExtendFailed", kind="Volume")


def test_a_guest_that_cannot_start_again_when_its_host_returns_is_in_error(cloud, api, operator):
    """The resume policy (resume_guests_state_on_host_boot) on a host marked down: the
    operator restarted, so the FakeDriver has no VM; spawning it again needs its flavor, which
    was deleted meanwhile."""
    flavor = cloud.flavor()
    cloud.instance("srv", flavor=flavor, zone=EMBEDDED_ZONE)
    status = cloud.settled("srv")
    assert (status["vmState"], status["host"]) == ("ACTIVE", EMBEDDED_HOST)
    # the mark a monitor leaves on the instances of a host whose heartbeat stopped
    cloud.custom.patch_namespaced_custom_object_status(
        GROUP, VERSION, cloud.ns, "instances", "srv", {"status": {"hostStatus": "DOWN"}}
    )
    cloud.custom.delete_cluster_custom_object(GROUP, VERSION, "flavors", flavor)
    operator.restart(kill=True)

    def errored():
        status = cloud.get("srv").get("status") or {}
        return status if status.get("vmState") == "ERROR" else None

    status = wait_for(errored, 60, "the instance to go to ERROR")
    assert "starting it again failed" in status["fault"]["message"]
    wait_event(api, cloud.ns, "srv", "Warning", "GuestResumeFailed")


def test_a_network_with_ports_waits_for_them_before_it_goes(cloud, api):
    """neutron's NetworkInUse: without the webhook (this operator runs none) the delete is
    accepted, but the Network stays, with a Warning naming its Ports, until they are gone."""
    zone = f"{cloud.ns}-net"
    cloud.node("n", zone=zone)
    cloud.network("lan", "10.90.0.0/24", gateway="10.90.0.1")
    cloud.instance("srv", zone=zone, spec={"networks": [{"network": "lan"}]})
    assert cloud.settled("srv")["vmState"] == "ACTIVE"
    (port,) = cloud.list("ports")
    cloud.delete("lan", plural="networks")
    wait_event(api, cloud.ns, "lan", "Warning", "NetworkInUse", kind="Network")
    (event,) = [
        e
        for e in client.CoreV1Api(api).list_namespaced_event(cloud.ns).items
        if e.reason == "NetworkInUse"
    ]
    assert port["metadata"]["name"] in event.message and "delete their instances" in event.message
    network = cloud.custom.get_namespaced_custom_object(GROUP, VERSION, cloud.ns, "networks", "lan")
    assert network["metadata"].get("deletionTimestamp")  # waiting, not gone
    cloud.delete("srv")
    wait_for(lambda: not cloud.list("instances"), 30, "the instance to go")
    wait_for(lambda: not cloud.list("networks"), 30, "the network to go once its port is gone")
