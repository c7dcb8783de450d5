"""What a user reads and waits on (issue 15): Nova's API status in STATUS, the Ready and Failed
conditions, `kubectl wait` on them. The operator is a real process with Nova's FakeDriver."""

from __future__ import annotations

import pytest

from kubenova.conductor.context import FAKE_FAIL_LABEL
from tests.integration.conftest import BOOT_TIMEOUT
from tests.integration.test_events import events_of
from tests.kit import columns, wait_for

pytestmark = pytest.mark.integration


def conditions(status: dict) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c.get("message", "")) for c in status["conditions"]}


def test_kubectl_wait_for_failed_returns_on_no_valid_host(cloud, kubectl):
    cloud.node("small", cpu="2", memory="2Gi")
    too_big = cloud.flavor(vcpus=64, ram=1024 * 1024)  # no host fits it
    cloud.instance("huge", flavor=too_big)

    waited = kubectl(
        "wait", "--for=condition=Failed", "instance/huge", "-n", cloud.ns, "--timeout=60s"
    )
    assert waited.returncode == 0, waited.stderr

    status = cloud.get("huge")["status"]
    assert (status["vmState"], status["printableStatus"]) == ("ERROR", "ERROR")
    failed, ready = conditions(status)["Failed"], conditions(status)["Ready"]
    assert failed == ("True", status["fault"]["message"])
    assert "No valid host" in failed[1]
    assert ready[0] == "False"
    row = columns(kubectl("get", "instance", "huge", "-n", cloud.ns).stdout)
    assert (row["STATUS"], row["READY"], row["HOST"]) == ("ERROR", "False", "")


def test_an_active_instance_is_ready_and_not_failed(cloud, kubectl):
    host = cloud.node("a")
    cloud.instance("vm")
    waited = kubectl(
        "wait", "--for=condition=Ready", "instance/vm", "-n", cloud.ns, "--timeout=60s"
    )
    assert waited.returncode == 0, waited.stderr
    not_failed = kubectl(
        "wait", "--for=condition=Failed=False", "instance/vm", "-n", cloud.ns, "--timeout=5s"
    )
    assert not_failed.returncode == 0, not_failed.stderr

    table = kubectl("get", "instance", "vm", "-n", cloud.ns, "-o", "wide").stdout
    row = columns(table)
    assert (row["STATUS"], row["READY"], row["HOST"]) == ("ACTIVE", "True", host), table
    assert (row["VM STATE"], row["TASK"], row["POWER"]) == ("ACTIVE", "", "RUNNING"), table
    assert row["BOOTED BY"] == "Hypervisor", table  # the fake driver's own verdict
    narrow = columns(kubectl("get", "instance", "vm", "-n", cloud.ns).stdout)
    assert list(narrow) == ["NAME", "STATUS", "READY", "HOST", "IP", "AGE"]
    status = cloud.get("vm")["status"]
    assert status["guestBootSignal"] == "Hypervisor"
    assert status["guestBootedAt"] >= status["launchedAt"]  # ACTIVE first, then the guest
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "GuestBooted" and "the guest OS is up" in ready["message"]
    # The fake guest is up when its VM starts: Ready comes in the move to ACTIVE (one write,
    # one Event); a guest with a boot to wait for gets a GuestBooted Event of its own.
    uid = cloud.get("vm")["metadata"]["uid"]
    wait_for(lambda: events_of(cloud.api, cloud.ns, uid), 10, "the Active Event")
    reasons = [e.reason for e in events_of(cloud.api, cloud.ns, uid)]
    assert reasons == ["Active"], reasons


def test_a_silent_guest_stays_active_with_ready_false_after_the_boot_timeout(cloud, kubectl):
    """Nova keeps an instance ACTIVE when its guest never comes up; Ready says why."""
    cloud.node("quiet", **{FAKE_FAIL_LABEL: "guest"})
    cloud.instance("mute")
    waited = kubectl(
        "wait", "--for=jsonpath={.status.vmState}=ACTIVE", "instance/mute", "-n", cloud.ns,
        "--timeout=60s",
    )  # fmt: skip
    assert waited.returncode == 0, waited.stderr

    def timed_out():
        ready = next(c for c in cloud.get("mute")["status"]["conditions"] if c["type"] == "Ready")
        return ready if ready["reason"] == "GuestBootTimeout" else None

    ready = wait_for(timed_out, BOOT_TIMEOUT + 30, "Ready False GuestBootTimeout")
    assert ready["status"] == "False"
    assert f"within {BOOT_TIMEOUT}s" in ready["message"] and "stays ACTIVE" in ready["message"]
    status = cloud.get("mute")["status"]
    assert (status["vmState"], status["powerState"]) == ("ACTIVE", "RUNNING")
    assert status.get("guestBootedAt") is None and status.get("guestBootSignal") is None
    uid = cloud.get("mute")["metadata"]["uid"]
    warnings = [(e.type, e.reason) for e in events_of(cloud.api, cloud.ns, uid)]
    assert ("Warning", "GuestBootTimeout") in warnings, warnings
