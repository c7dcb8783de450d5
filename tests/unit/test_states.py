"""The Instance state machine: Nova's build path, reschedule, and nothing else."""

import itertools

import pytest

from kubenova.conductor import states
from kubenova.conductor.states import InvalidTransition, State, check, next_build_step, of_status
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
