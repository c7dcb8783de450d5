"""The Instance state machine: Nova's build path, reschedule, and nothing else."""

import itertools

import pytest

from kubenova.conductor import states
from kubenova.conductor.states import (
    InvalidTransition,
    State,
    check,
    next_build_step,
    of_status,
    printable_status,
)
from kubenova.models.v1alpha1.states import TaskState, VmState


def test_build_path_in_nova_order():
    path = [states.SCHEDULING]
    while path[-1] != states.ACTIVE:
        path.append(next_build_step(path[-1]))
    assert [str(s) for s in path] == [
        "BUILDING/SCHEDULING",
        "BUILDING/NETWORKING",
        "BUILDING/BLOCK_DEVICE_MAPPING",
        "BUILDING/SPAWNING",
        "ACTIVE/none",
    ]
    for before, after in itertools.pairwise(path):
        check(before, after)


@pytest.mark.parametrize("step", states.BUILD_STEPS)
def test_every_build_step_may_fail_to_error(step):
    check(step, states.ERROR)


@pytest.mark.parametrize("step", states.BUILD_STEPS[1:])
def test_steps_after_scheduling_may_reschedule(step):
    check(step, states.SCHEDULING)


@pytest.mark.parametrize(
    ("source", "target"),
    [
        (states.NEW, states.ACTIVE),
        (states.SCHEDULING, states.SPAWNING),
        (states.ACTIVE, states.SCHEDULING),
        (states.ERROR, states.ACTIVE),
        (states.SPAWNING, states.NETWORKING),
    ],
)
def test_forbidden_transitions(source, target):
    with pytest.raises(InvalidTransition):
        check(source, target)


def test_of_status_reads_nova_names():
    assert of_status(None) == states.NEW
    assert of_status({"vmState": "BUILDING", "taskState": "SPAWNING"}) == State(
        VmState.BUILDING, TaskState.SPAWNING
    )
    assert of_status({"vmState": "ACTIVE"}) == states.ACTIVE


# -- instance actions (issue 7) ----------------------------------------------------------------
ACTION_PATHS = {
    "stop": [states.ACTIVE, states.POWERING_OFF, states.STOPPED],
    "start": [states.STOPPED, states.POWERING_ON, states.ACTIVE],
    "soft reboot": [states.ACTIVE, states.REBOOTING, states.ACTIVE],
    "hard reboot": [states.ACTIVE, states.REBOOTING_HARD, states.ACTIVE],
    "hard reboot from STOPPED": [states.STOPPED, states.STOPPED_REBOOTING_HARD, states.ACTIVE],
    "hard reboot from ERROR": [states.ERROR, states.ERROR_REBOOTING_HARD, states.ACTIVE],
    "stop from ERROR": [states.ERROR, states.ERROR_POWERING_OFF, states.STOPPED],
}


@pytest.mark.parametrize("path", ACTION_PATHS.values(), ids=ACTION_PATHS.keys())
def test_action_paths_in_nova_states(path):
    for before, after in itertools.pairwise(path):
        check(before, after)


def test_action_task_states_are_novas():
    assert str(states.POWERING_OFF) == "ACTIVE/POWERING_OFF"
    assert str(states.POWERING_ON) == "STOPPED/POWERING_ON"
    assert str(states.REBOOTING) == "ACTIVE/REBOOTING"
    assert str(states.ERROR_REBOOTING_HARD) == "ERROR/REBOOTING_HARD"


@pytest.mark.parametrize("state", states.ACTION_STATES)
def test_every_action_can_end_in_error(state):
    check(state, states.ERROR)


@pytest.mark.parametrize(
    ("source", "target"),
    [
        (states.STOPPED, states.REBOOTING),  # soft reboot only from ACTIVE
        (State(VmState.ERROR, TaskState.REBOOTING), states.ACTIVE),
        (states.ERROR, states.POWERING_ON),  # start only from STOPPED
        (states.ACTIVE, states.POWERING_ON),
        (states.STOPPED, states.POWERING_OFF),
        (states.SPAWNING, states.POWERING_OFF),  # nothing while building
        (states.SCHEDULING, states.REBOOTING_HARD),
        (states.STOPPED, states.ACTIVE),
        (states.POWERING_OFF, states.REBOOTING),  # one action at a time
        (states.REBOOTING, states.REBOOTING_HARD),
        (states.STOPPED_REBOOTING_HARD, states.STOPPED),  # a failed reboot with no VM: ERROR
        (states.ERROR_POWERING_OFF, states.ACTIVE),
    ],
)
def test_forbidden_action_transitions(source, target):
    with pytest.raises(InvalidTransition):
        check(source, target)


def test_a_failed_action_reverts_where_nova_reverts():
    check(states.POWERING_OFF, states.ACTIVE)  # the VM still runs
    check(states.POWERING_ON, states.STOPPED)  # the VM did not start
    check(states.REBOOTING, states.ACTIVE)  # "reboot failed but instance is running"
    check(states.ERROR_POWERING_OFF, states.ERROR)


# -- the printable status (issue 15): Nova's nova/api/openstack/common.py _STATE_MAP ------------
@pytest.mark.parametrize(
    ("state", "printable"),
    [
        (states.NEW, None),
        (states.SCHEDULING, "BUILD"),
        (states.NETWORKING, "BUILD"),
        (states.BLOCK_DEVICE_MAPPING, "BUILD"),
        (states.SPAWNING, "BUILD"),
        (states.ACTIVE, "ACTIVE"),
        (states.STOPPED, "SHUTOFF"),
        (states.ERROR, "ERROR"),
        (states.REBOOTING, "REBOOT"),
        (states.REBOOTING_HARD, "HARD_REBOOT"),
        # Nova's map has no entry for these task states: the vm_state's word shows
        (states.POWERING_OFF, "ACTIVE"),
        (states.POWERING_ON, "SHUTOFF"),
        (states.STOPPED_REBOOTING_HARD, "SHUTOFF"),
        (states.ERROR_REBOOTING_HARD, "ERROR"),
        (states.ERROR_POWERING_OFF, "ERROR"),
        (State(VmState.ACTIVE, TaskState.DELETING), "ACTIVE"),
        (State(VmState.DELETED, None), "DELETED"),
    ],
)
def test_printable_status_as_novas_api(state, printable):
    assert printable_status(state) == printable


def test_every_state_of_the_machine_has_a_printable_status():
    reachable = {target for source in (states.NEW, *states.ACTION_STATES) for target in
                 states._ALLOWED[source]}  # fmt: skip
    for state in reachable:
        assert printable_status(state) not in (None, "UNKNOWN"), state
