"""Instance actions on a real booted guest: stop, start, soft and hard reboot, refusals, the
action log, `kubenova events` and `kubenova console`.

The operator runs as its own process with one embedded QEMU host, the admission webhook, a
one-second power-state sync and its console endpoint on a free loopback port. The guest
(hack/guest/init) announces every boot on its serial console, and its ACPI handler prints
`kubenova-guest powering off` before it powers off: a soft reboot or a stop that went through
the guest shows that line, a reset does not.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import pytest
from kubernetes import client

from kubenova import GROUP, VERSION
from kubenova.conductor.actions import REBOOT_ANNOTATION
from kubenova.devcluster.cluster import free_port
from tests.e2e.conftest import GUEST, HOST
from tests.kit import node_ready, remove_webhooks, running_operator, wait_for, webhook_answers
from tests.proc import processes_with, wait_gone

pytestmark = pytest.mark.e2e

BOOT_LINE = "kubenova-guest booted hostname="
ACPI_LINE = "kubenova-guest powering off"


@pytest.fixture(scope="module")
def operator(cluster, api, crds, tmp_path_factory):
    if not GUEST.exists():
        pytest.fail(f"{GUEST} is missing: `make setup` builds it")
    console_port = free_port()
    args = (
        "--sync-power-state-interval=1",
        "--shutdown-timeout=30",
        f"--console-listen=127.0.0.1:{console_port}",
        "--admission",
        f"--webhook-listen=127.0.0.1:{free_port()}",
    )
    work = tmp_path_factory.mktemp("actions-op")
    try:
        with running_operator(cluster, api, work, *args, hosts=1) as handle:
            wait_for(lambda: node_ready(api, HOST), 60, f"{HOST} to register")
            wait_for(lambda: webhook_answers(api), 60, "the apiserver to call the webhook")
            handle.console_url = f"https://127.0.0.1:{console_port}"
            handle.console_ca = handle.state_dir / "console" / "ca.crt"
            yield handle
        assert processes_with("qemu-system", str(handle.state_dir)) == []
    finally:
        remove_webhooks(api)


# -- helpers ---------------------------------------------------------------------------------
def qemu_of(uid: str) -> list[int]:
    return processes_with("qemu-system", uid)


def console(operator, uid: str) -> str:
    path = operator.state_dir / HOST / "instances" / uid / "console.log"
    return path.read_text(errors="replace")


def boots(text: str) -> int:
    return text.count(BOOT_LINE)


def patch(boot, name: str, body: dict) -> dict:
    return boot.custom.patch_namespaced_custom_object(
        GROUP, VERSION, boot.namespace, "instances", name, body
    )


def set_power(boot, name: str, power: str) -> None:
    patch(boot, name, {"spec": {"powerState": power}})


def annotate(kubectl, boot, name: str, value: str):
    return kubectl(
        "annotate", "instance", name, "-n", boot.namespace, f"{REBOOT_ANNOTATION}={value}"
    )


def actions(boot, name: str) -> list[dict]:
    return (boot.get(name).get("status") or {}).get("actions") or []


def wait_action(boot, name: str, count: int, timeout: float = 120) -> dict:
    """The `count`-th action log entry, once finished (and the guest up, if ACTIVE)."""

    def finished():
        log = actions(boot, name)
        if len(log) >= count and log[count - 1].get("result"):
            return log[count - 1]
        return None

    entry = wait_for(finished, timeout, f"action #{count} of {name} to finish", interval=0.2)
    if boot.get(name)["status"].get("vmState") == "ACTIVE":  # the VM runs: wait for its guest
        boot.wait_state(name, "ACTIVE", timeout=timeout)
    return entry


def path_of(obj: dict) -> list[tuple[str, str | None]]:
    return [(t["vmState"], t.get("taskState")) for t in obj["status"]["phaseTransitionTimestamps"]]


def kubenova(operator, cluster, *args: str, kubeconfig=None) -> subprocess.CompletedProcess:
    env = {**os.environ, "KUBECONFIG": str(kubeconfig or cluster.kubeconfig)}
    return subprocess.run(
        [sys.executable, "-m", "kubenova.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def console_args(operator, name: str, namespace: str) -> list[str]:
    return [
        "console",
        name,
        "-n",
        namespace,
        f"--console-url={operator.console_url}",
        f"--console-ca={operator.console_ca}",
    ]


def events(boot, uid: str) -> list[tuple[str, str, str]]:
    items = (
        client.CoreV1Api(boot.custom.api_client)
        .list_namespaced_event(boot.namespace, field_selector=f"involvedObject.uid={uid}")
        .items
    )
    return [(e.type, e.reason, e.message) for e in items]


# -- the tests -------------------------------------------------------------------------------
def test_stop_start_and_soft_reboot_reach_the_guest(operator, boot, kubectl, cluster):
    uid = boot.instance("srv")["metadata"]["uid"]
    boot.wait_state("srv", "ACTIVE")
    assert boots(console(operator, uid)) == 1
    (first_qemu,) = qemu_of(uid)

    # stop: ACPI first (the guest's handler runs), the qemu process ends, STOPPED/SHUTDOWN
    set_power(boot, "srv", "Stopped")
    stopped = boot.wait_state("srv", "STOPPED")
    assert stopped["status"]["powerState"] == "SHUTDOWN"
    assert ("ACTIVE", "POWERING_OFF") in path_of(stopped)
    assert wait_gone([first_qemu], 10) == [] and qemu_of(uid) == []
    assert console(operator, uid).count(ACPI_LINE) == 1
    stop = wait_action(boot, "srv", 2)
    assert (stop["action"], stop["result"]) == ("stop", "Success")
    assert stopped["status"]["observedPowerState"] == "Stopped"

    # a soft reboot of a stopped instance is refused at apply time, with Nova's message
    refused = annotate(kubectl, boot, "srv", "soft")
    assert refused.returncode != 0
    assert "Cannot 'reboot' instance srv while it is in vm_state STOPPED" in refused.stderr
    assert "set spec.powerState: Running, or ask for a hard reboot" in refused.stderr

    # start boots it again: a new qemu, a second boot announcement
    set_power(boot, "srv", "Running")
    active = boot.wait_state("srv", "ACTIVE")
    assert ("STOPPED", "POWERING_ON") in path_of(active)
    assert active["status"]["powerState"] == "RUNNING"
    assert len(qemu_of(uid)) == 1
    assert boots(console(operator, uid)) == 2
    start = wait_action(boot, "srv", 3)
    assert (start["action"], start["result"]) == ("start", "Success")

    # soft reboot, watched through `kubenova console --follow`: the guest's ACPI handler runs,
    # then it boots a third time
    follow = subprocess.Popen(
        [sys.executable, "-m", "kubenova.cli", *console_args(operator, "srv", boot.namespace),
         "--follow"],
        env={**os.environ, "KUBECONFIG": str(cluster.kubeconfig)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert annotate(kubectl, boot, "srv", "soft").returncode == 0
        reboot = wait_action(boot, "srv", 4)
        assert (reboot["action"], reboot["rebootType"], reboot["result"]) == (
            "reboot",
            "SOFT",
            "Success",
        ), reboot
        obj = boot.get("srv")
        assert REBOOT_ANNOTATION not in (obj["metadata"].get("annotations") or {})
        assert (obj["status"]["vmState"], obj["status"].get("taskState")) == ("ACTIVE", None)
        assert ("ACTIVE", "REBOOTING") in path_of(obj)
        text = console(operator, uid)
        assert boots(text) == 3
        # not a reset: the guest powered itself off (ACPI) between the second and third boot
        second, third = [m.start() for m in re.finditer(BOOT_LINE, text)][1:]
        assert ACPI_LINE in text[second:third]
        time.sleep(2.5)  # the follower polls every second
    finally:
        follow.send_signal(signal.SIGINT)
        followed, _ = follow.communicate(timeout=20)
    assert boots(followed) == 3 and followed.count(ACPI_LINE) == 2

    # `kubenova console` prints the whole serial log
    printed = kubenova(operator, cluster, *console_args(operator, "srv", boot.namespace))
    assert printed.returncode == 0, printed.stderr
    assert boots(printed.stdout) == 3 and printed.stdout == console(operator, uid)

    # a user RBAC does not allow instances/console is refused by the endpoint
    eve = cluster.write_kubeconfig_for("eve")
    denied = kubenova(
        operator, cluster, *console_args(operator, "srv", boot.namespace), kubeconfig=eve
    )
    assert denied.returncode == 1
    assert 'user "eve" cannot get instances/console of srv' in denied.stderr
    assert denied.stdout == ""


def test_hard_reboot_from_stopped_and_a_refusal_the_operator_makes(
    operator, boot, kubectl, cluster
):
    uid = boot.instance("hard")["metadata"]["uid"]
    boot.wait_state("hard", "ACTIVE")

    # a stop and a soft reboot in one request: the webhook lets it through (the reboot is to be
    # judged after the stop), the operator stops the instance, then refuses the reboot
    both = {"metadata": {"annotations": {REBOOT_ANNOTATION: "soft"}}}
    both["spec"] = {"powerState": "Stopped"}
    patch(boot, "hard", both)
    refusal = wait_action(boot, "hard", 3)
    assert refusal["action"] == "reboot" and refusal["result"] == "Error"
    assert refusal["message"].startswith(
        "refused: Cannot 'reboot' instance hard while it is in vm_state STOPPED"
    )
    obj = boot.get("hard")
    status = obj["status"]
    assert (status["vmState"], status.get("taskState"), status["powerState"]) == (
        "STOPPED",
        None,
        "SHUTDOWN",
    )
    assert REBOOT_ANNOTATION not in (obj["metadata"].get("annotations") or {})
    condition = next(c for c in status["conditions"] if c["type"] == "ActionSucceeded")
    assert (condition["status"], condition["reason"]) == ("False", "SoftRebootRefused")
    warnings = [e for e in events(boot, uid) if e[0] == "Warning"]
    assert any(r == "ActionRefused" and "vm_state STOPPED" in m for _, r, m in warnings), warnings
    assert qemu_of(uid) == []

    # hard reboot of a STOPPED instance starts it (as Nova); spec.powerState stays Stopped and
    # the operator does not fight the explicit action: it stays ACTIVE
    assert annotate(kubectl, boot, "hard", "hard").returncode == 0
    reboot = wait_action(boot, "hard", 4)
    assert (reboot["rebootType"], reboot["result"]) == ("HARD", "Success")
    obj = boot.wait_state("hard", "ACTIVE")
    assert ("STOPPED", "REBOOTING_HARD") in path_of(obj)
    assert len(qemu_of(uid)) == 1 and boots(console(operator, uid)) == 2
    time.sleep(3)
    assert boot.get("hard")["status"]["vmState"] == "ACTIVE"

    # a hard reboot of a running guest is a reset: no ACPI power-off, a new boot
    assert annotate(kubectl, boot, "hard", "hard").returncode == 0
    assert wait_action(boot, "hard", 5)["result"] == "Success"
    text = console(operator, uid)
    assert boots(text) == 3 and text.count(ACPI_LINE) == 1  # the one of the stop

    # the action log, as `openstack server event list` prints it, and the events
    shown = kubenova(operator, cluster, "events", "hard", "-n", boot.namespace)
    assert shown.returncode == 0, shown.stderr
    out = shown.stdout
    assert "Action" in out and "Request ID" in out and "Finish Time" in out and "Result" in out
    rows = [line.split() for line in out.split("Actions:")[1].split("Events:")[0].splitlines()]
    kinds = [(r[0], r[1]) if r[0] == "reboot" else (r[0],) for r in rows[2:] if r]
    assert kinds == [
        ("create",),
        ("stop",),
        ("reboot", "(SOFT)"),
        ("reboot", "(HARD)"),
        ("reboot", "(HARD)"),
    ], out
    for entry in actions(boot, "hard"):
        assert entry["requestId"] in out
    assert re.search(r"reboot \(SOFT\)\s+req-\S+\s+\S+\s+\S+\s+Error\s+refused: Cannot", out)
    events_part = out.split("Events:")[1]
    for reason in ("Active", "Stopping", "Stopped", "ActionRefused", "Rebooting", "Rebooted"):
        assert reason in events_part, reason


def test_hard_reboot_from_error_after_the_vm_died(operator, boot, kubectl, api):
    uid = boot.instance("crash")["metadata"]["uid"]
    boot.wait_state("crash", "ACTIVE")
    (pid,) = qemu_of(uid)

    # the qemu process dies behind the operator's back: the power-state sync sees it
    os.kill(pid, signal.SIGKILL)
    errored = boot.wait_state("crash", "ERROR", timeout=30)
    status = errored["status"]
    assert status["host"] == HOST and status["powerState"] == "SHUTDOWN"
    assert "stopped without a stop request" in status["fault"]["message"]
    assert "hard reboot" in status["fault"]["message"]

    # start and soft reboot are not for an instance in ERROR
    refused = annotate(kubectl, boot, "crash", "soft")
    assert refused.returncode != 0
    assert "Cannot 'reboot' instance crash while it is in vm_state ERROR" in refused.stderr

    # a hard reboot (Nova allows it from ERROR when the host has the VM) starts it again
    assert annotate(kubectl, boot, "crash", "hard").returncode == 0
    entry = wait_action(boot, "crash", 2)  # (vmState stays ERROR while it is REBOOTING_HARD)
    assert (entry["action"], entry["rebootType"], entry["result"]) == ("reboot", "HARD", "Success")
    active = boot.get("crash")
    assert (active["status"]["vmState"], active["status"].get("taskState")) == ("ACTIVE", None)
    assert ("ERROR", "REBOOTING_HARD") in path_of(active)
    assert active["status"].get("fault") is None and active["status"]["powerState"] == "RUNNING"
    assert len(qemu_of(uid)) == 1 and boots(console(operator, uid)) == 2


def test_actions_are_refused_on_an_instance_that_never_got_a_host(operator, boot, kubectl):
    boot.custom.create_namespaced_custom_object(
        GROUP,
        VERSION,
        boot.namespace,
        "instances",
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "Instance",
            "metadata": {"name": "nowhere"},
            "spec": {"flavor": "m1.tiny", "image": "busybox", "availabilityZone": "nowhere"},
        },
    )
    errored = boot.wait_state("nowhere", "ERROR")
    assert errored["status"].get("host") is None
    assert "No valid host" in errored["status"]["fault"]["message"]
    (create,) = actions(boot, "nowhere")
    assert (create["action"], create["result"]) == ("create", "Error")

    refused = annotate(kubectl, boot, "nowhere", "hard")
    assert refused.returncode != 0
    assert "Cannot 'reboot' instance nowhere: it is in ERROR with no host" in refused.stderr
    stop = kubectl(
        "patch", "instance", "nowhere", "-n", boot.namespace, "--type=merge",
        "-p", '{"spec":{"powerState":"Stopped"}}',
    )  # fmt: skip
    assert stop.returncode != 0 and "Cannot 'stop' instance nowhere" in stop.stderr


def test_a_reboot_interrupted_by_an_operator_crash_is_completed(operator, boot, kubectl):
    """Nova's `_init_instance`: the task state in status tells the restarted operator what was
    going on; the reboot is done again (at least once) and logged as one action."""
    uid = boot.instance("phoenix")["metadata"]["uid"]
    boot.wait_state("phoenix", "ACTIVE")
    # The test guest reboots in about a second: the reboot may end between the test's seeing
    # REBOOTING and the kill. What the dead operator left in status says which it was; if the
    # reboot was done, it is asked for again (each try is one more reboot in the log).
    for reboots in range(1, 6):
        assert annotate(kubectl, boot, "phoenix", "soft").returncode == 0
        boot.wait_state("phoenix", "ACTIVE", "REBOOTING", timeout=30)
        operator.process.kill()  # SIGKILL while the guest is powering off or booting again
        interrupted = boot.get("phoenix")["status"].get("taskState") == "REBOOTING"
        operator.process.start()
        if interrupted:
            break
        wait_action(boot, "phoenix", 1 + reboots)
    assert interrupted, "every reboot ended before the operator was killed"

    entry = wait_action(boot, "phoenix", 1 + reboots)
    assert (entry["action"], entry["rebootType"], entry["result"]) == ("reboot", "SOFT", "Success")
    obj = boot.get("phoenix")
    assert (obj["status"]["vmState"], obj["status"].get("taskState")) == ("ACTIVE", None)
    assert REBOOT_ANNOTATION not in (obj["metadata"].get("annotations") or {})
    assert [a["action"] for a in actions(boot, "phoenix")] == ["create"] + ["reboot"] * reboots
    assert len(qemu_of(uid)) == 1
    assert boots(console(operator, uid)) >= 1 + reboots
    assert any(r == "ActionResumed" for _, r, _ in events(boot, uid))
