"""What a user reads and waits on (issue 15): Nova's API status in STATUS, the Ready and Failed
conditions, `kubectl wait` on them. The operator is a real process with Nova's FakeDriver."""

from __future__ import annotations

import pytest

from tests.kit import columns

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
    narrow = columns(kubectl("get", "instance", "vm", "-n", cloud.ns).stdout)
    assert list(narrow) == ["NAME", "STATUS", "READY", "HOST", "IP", "AGE"]
