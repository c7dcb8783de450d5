"""Instance actions: Nova's rules for which action may run in which state, where a failed one
leaves the instance, the action log, the admission check, and the console's identity rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from kubenova.admission.actions import action_problems
from kubenova.conductor import actionlog, states
from kubenova.conductor.actions import (
    BY_TASK,
    HARD_REBOOT,
    REBOOT_ANNOTATION,
    SOFT_REBOOT,
    START,
    STOP,
    reboot_action,
    refusal,
)
from kubenova.console.server import access_review, user_of_certificate
from kubenova.eventlist import action_rows, table
from kubenova.models.v1alpha1.instance import MAX_ACTIONS, Instance
from kubenova.models.v1alpha1.states import TaskState, VmState

T0 = datetime(2025, 1, 1, tzinfo=UTC)

# -- which action may start where (Nova's check_instance_state) -------------------------------
ALLOWED = {
    (STOP, states.ACTIVE),
    (STOP, states.ERROR),
    (START, states.STOPPED),
    (SOFT_REBOOT, states.ACTIVE),
    (HARD_REBOOT, states.ACTIVE),
    (HARD_REBOOT, states.STOPPED),
    (HARD_REBOOT, states.ERROR),
}
RESTING_AND_BUSY = [
    states.NEW,
    *states.BUILD_STEPS,
    states.ACTIVE,
    states.STOPPED,
    states.ERROR,
    *states.ACTION_STATES,
]


@pytest.mark.parametrize("action", [STOP, START, SOFT_REBOOT, HARD_REBOOT], ids=lambda a: a.label)
@pytest.mark.parametrize("state", RESTING_AND_BUSY, ids=str)
def test_actions_start_only_where_nova_allows_them(action, state):
    why = refusal(action, state, "web", host="compute-0")
    if (action, state) in ALLOWED:
        assert why is None
        states.check(state, action.starting(state))  # and the state machine agrees
    else:
        assert why is not None and why.startswith(f"Cannot '{action.name}' instance web")


def test_refusals_say_why_and_what_to_do():
    assert refusal(SOFT_REBOOT, states.STOPPED, "web", host="h") == (
        "Cannot 'reboot' instance web while it is in vm_state STOPPED: a soft reboot needs a "
        "running guest; set spec.powerState: Running, or ask for a hard reboot"
    )
    assert "while it is in vm_state BUILDING: wait until it is ACTIVE" in refusal(
        START, states.SPAWNING, "web"
    )
    assert "while it is in task_state REBOOTING" in refusal(STOP, states.REBOOTING, "web")
    assert "a hard reboot starts it again" in refusal(START, states.ERROR, "web", host="h")


def test_hard_reboot_from_error_needs_a_host_and_its_vm():
    assert "ERROR with no host" in refusal(HARD_REBOOT, states.ERROR, "web", host=None)
    assert "host compute-0 has no VM for it" in refusal(
        HARD_REBOOT, states.ERROR, "web", host="compute-0", vm_present=False
    )
    assert refusal(HARD_REBOOT, states.ERROR, "web", host="compute-0", vm_present=None) is None
    assert "ERROR with no host" in refusal(STOP, states.ERROR, "web", host=None)


def test_a_driver_without_power_operations_refuses_them():
    why = refusal(STOP, states.ACTIVE, "web", host="n1", unsupported="not supported by pod")
    assert why == "Cannot 'stop' instance web: not supported by pod"


def test_reboot_annotation_values():
    assert reboot_action("soft") is SOFT_REBOOT
    assert reboot_action(" HARD ") is HARD_REBOOT
    assert reboot_action("now") is None


def test_each_task_state_belongs_to_one_action_redone_after_a_restart():
    for state in states.ACTION_STATES:
        action = BY_TASK[state.task]
        assert action.task == state.task
        assert state.vm in action.allowed_from


@pytest.mark.parametrize("running", [True, False, None])
@pytest.mark.parametrize("state", states.ACTION_STATES, ids=str)
def test_a_failed_action_ends_where_the_state_machine_allows(state, running):
    action = BY_TASK[state.task]
    target = action.after_failure(state.vm, running)
    states.check(state, target)
    states.check(state, action.done)
    if running is None:
        assert target == states.ERROR
    elif action.name == "reboot":  # Nova: "reboot failed but the instance is running"
        assert target == (states.ACTIVE if running else states.ERROR)
    elif action is STOP:
        assert target == (states.State(state.vm, None) if running else states.STOPPED)
    else:
        assert target == (states.ACTIVE if running else states.STOPPED)


# -- the action log ------------------------------------------------------------------------------
def test_log_entries_start_finish_and_are_bounded():
    log = []
    for i in range(MAX_ACTIONS + 5):
        log = actionlog.appended(log, actionlog.entry("stop", f"req-{i}", T0, T0))
    assert len(log) == MAX_ACTIONS and log[0]["requestId"] == "req-5"
    log = actionlog.appended(log, actionlog.entry("reboot", "req-x", T0, T0, "SOFT"))
    assert actionlog.in_progress(log)["requestId"] == "req-x"
    done = actionlog.finished(log, "req-x", "Success", "ok", T0 + timedelta(seconds=3))
    assert done[-1] == {
        "action": "reboot",
        "requestId": "req-x",
        "requestTime": "2025-01-01T00:00:00Z",
        "startTime": "2025-01-01T00:00:00Z",
        "finishTime": "2025-01-01T00:00:03Z",
        "rebootType": "SOFT",
        "result": "Success",
        "message": "ok",
    }
    assert actionlog.finished(log, "req-unknown", "Error", "x", T0) == log
    # what the operator writes is what the CRD accepts
    status = {"actions": done, "observedPowerState": "Stopped"}
    Instance.model_validate({"spec": {"flavor": "f", "image": "i"}, "status": status})


def test_create_action_is_logged_once_and_finished():
    status: dict = {}
    patch: dict = {}
    actionlog.create_started(T0, T0)(status, patch)
    status = {"actions": patch["actions"]}
    again: dict = {}
    actionlog.create_started(T0, T0)(status, again)  # a restart repeating acceptance
    assert "actions" not in again
    patch = {}
    actionlog.create_finished("Error", "No valid host", T0)(status, patch)
    (entry,) = patch["actions"]
    assert (entry["action"], entry["result"], entry["message"]) == (
        "create",
        "Error",
        "No valid host",
    )


def test_condition_moves_its_transition_time_only_on_a_change():
    first = actionlog.with_condition([], "Unknown", "StopInProgress", "m", T0)
    later = T0 + timedelta(seconds=5)
    done = actionlog.with_condition(first, "True", "Stop", "done", later)
    again = actionlog.with_condition(done, "True", "Start", "done", later + timedelta(seconds=5))
    assert done[0]["lastTransitionTime"] == "2025-01-01T00:00:05Z"
    assert again[0]["lastTransitionTime"] == "2025-01-01T00:00:05Z"
    assert again[0]["reason"] == "Start"


def test_request_time_comes_from_managed_fields():
    meta = {
        "managedFields": [
            {"manager": "kubectl-create", "time": "2025-01-01T00:00:00Z", "fieldsV1": {"f:spec": {"f:powerState": {}}}},  # noqa: E501
            {"manager": "kubectl-patch", "time": "2025-01-01T00:01:00Z", "fieldsV1": {"f:spec": {"f:powerState": {}}}},  # noqa: E501
            {"manager": "kopf", "time": "2025-01-01T00:02:00Z", "subresource": "status", "fieldsV1": {"f:spec": {"f:powerState": {}}}},  # noqa: E501
            {"manager": "kubectl-annotate", "time": "2025-01-01T00:03:00Z", "fieldsV1": {"f:metadata": {"f:annotations": {f"f:{REBOOT_ANNOTATION}": {}}}}},  # noqa: E501
        ]
    }  # fmt: skip
    assert actionlog.changed_at(meta, "spec", "powerState") == T0 + timedelta(minutes=1)
    assert actionlog.changed_at(
        meta, "metadata", "annotations", REBOOT_ANNOTATION
    ) == T0 + timedelta(minutes=3)
    assert actionlog.changed_at(meta, "spec", "flavor") is None


def test_event_list_table():
    rows = action_rows(
        [
            {"action": "create", "requestId": "req-1", "startTime": "2025-01-01T00:00:00.123Z",
             "finishTime": "2025-01-01T00:00:03Z", "result": "Success", "message": "booted"},
            {"action": "reboot", "rebootType": "SOFT", "requestId": "req-2",
             "startTime": "2025-01-01T00:01:00Z"},
        ]
    )  # fmt: skip
    header = ("Action", "Request ID", "Start Time", "Finish Time", "Result", "Message")
    assert table(header, rows).splitlines() == [
        "Action         Request ID  Start Time            Finish Time           Result      "
        "Message",
        "create         req-1       2025-01-01T00:00:00Z  2025-01-01T00:00:03Z  Success     booted",
        "reboot (SOFT)  req-2       2025-01-01T00:01:00Z  -                     InProgress",
    ]


# -- the admission check -----------------------------------------------------------------------
def instance(vm=None, task=None, host="compute-0", power="Running", reboot=None):
    annotations = {REBOOT_ANNOTATION: reboot} if reboot is not None else {}
    status = {"vmState": vm, "taskState": task, "host": host} if vm else {}
    return {
        "metadata": {"name": "web", "annotations": annotations},
        "spec": {"flavor": "m1.tiny", "image": "busybox", "powerState": power},
        "status": status,
    }


def test_admission_refuses_a_soft_reboot_of_a_stopped_instance():
    (problem,) = action_problems("web", instance("STOPPED"), instance("STOPPED", reboot="soft"))
    assert problem.code == 409
    assert problem.message.startswith(
        f"annotation {REBOOT_ANNOTATION}=soft: Cannot 'reboot' instance web while it is in "
        "vm_state STOPPED"
    )
    assert action_problems("web", instance("STOPPED"), instance("STOPPED", reboot="hard")) == []


def test_admission_refuses_a_bad_annotation_value_and_impossible_power_changes():
    (bad,) = action_problems("web", instance("ACTIVE"), instance("ACTIVE", reboot="later"))
    assert "it must be soft or hard" in bad.message and bad.code == 400
    (start,) = action_problems(
        "web", instance("ERROR", power="Stopped"), instance("ERROR", power="Running")
    )
    assert "spec.powerState Running: Cannot 'start' instance web" in start.message
    (stop,) = action_problems(
        "web", instance("ERROR", host=None), instance("ERROR", host=None, power="Stopped")
    )
    assert "ERROR with no host" in stop.message


def test_admission_lets_queued_requests_and_unrelated_updates_through():
    building = instance("BUILDING", TaskState.SPAWNING.value)
    assert action_problems("web", building, instance("BUILDING", power="Stopped")) == []
    rebooting = instance("ACTIVE", "REBOOTING")
    assert action_problems("web", rebooting, instance("ACTIVE", "REBOOTING", reboot="soft")) == []
    stopped = instance("STOPPED", reboot="soft")  # the annotation was there before: not new
    assert action_problems("web", stopped, stopped) == []
    # a start and a soft reboot together: the reboot is judged after the start, by the operator
    both = instance("STOPPED", power="Running", reboot="soft")
    assert action_problems("web", instance("STOPPED", power="Stopped"), both) == []
    assert action_problems("web", instance("ACTIVE"), instance("ACTIVE", power="Running")) == []


# -- the console endpoint's identity -------------------------------------------------------------
def test_client_certificate_user_is_cn_and_groups_are_o():
    peer = {
        "subject": (
            (("organizationName", "system:masters"),),
            (("organizationName", "devs"),),
            (("commonName", "alice"),),
        )
    }
    user = user_of_certificate(peer)
    assert (user.name, user.groups) == ("alice", ("system:masters", "devs"))
    assert user_of_certificate(None) is None
    assert user_of_certificate({"subject": ((("organizationName", "x"),),)}) is None


def test_access_review_asks_for_the_console_subresource():
    user = user_of_certificate({"subject": ((("commonName", "alice"),),)})
    review = access_review(user, "demo", "web")
    assert review["spec"]["user"] == "alice"
    assert review["spec"]["resourceAttributes"] == {
        "namespace": "demo",
        "verb": "get",
        "group": "compute.kubenova.io",
        "resource": "instances",
        "subresource": "console",
        "name": "web",
    }


def test_vm_states_named_as_nova():
    assert {a.task for a in (STOP, START, SOFT_REBOOT, HARD_REBOOT)} == {
        TaskState.POWERING_OFF,
        TaskState.POWERING_ON,
        TaskState.REBOOTING,
        TaskState.REBOOTING_HARD,
    }
    assert STOP.allowed_from == {VmState.ACTIVE, VmState.ERROR}
