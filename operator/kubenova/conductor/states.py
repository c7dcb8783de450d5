"""The Instance state machine, in one place: which (vmState, taskState) may follow which.

Names are Nova's (vm_states, task_states). Every status write goes through `check()`, and the
writer compares the object's current state with the caller's expected one first, as Nova's
`instance.save(expected_task_state=...)` does, so a stale actor cannot move an instance back.
"""

from __future__ import annotations

from typing import NamedTuple

from kubenova.models.v1alpha1.states import TaskState, VmState


class State(NamedTuple):
    vm: VmState | None
    task: TaskState | None

    def __str__(self) -> str:
        return f"{self.vm or 'NEW'}/{self.task or 'none'}"


NEW = State(None, None)
SCHEDULING = State(VmState.BUILDING, TaskState.SCHEDULING)
NETWORKING = State(VmState.BUILDING, TaskState.NETWORKING)
BLOCK_DEVICE_MAPPING = State(VmState.BUILDING, TaskState.BLOCK_DEVICE_MAPPING)
SPAWNING = State(VmState.BUILDING, TaskState.SPAWNING)
ACTIVE = State(VmState.ACTIVE, None)
STOPPED = State(VmState.STOPPED, None)
ERROR = State(VmState.ERROR, None)

#: the build, in order; a failure at any step on a host goes back to SCHEDULING (reschedule)
BUILD_STEPS: tuple[State, ...] = (SCHEDULING, NETWORKING, BLOCK_DEVICE_MAPPING, SPAWNING)

_ALLOWED: dict[State, frozenset[State]] = {
    NEW: frozenset({SCHEDULING, ERROR}),  # ERROR: refused at acceptance (quota, no flavor)
    SCHEDULING: frozenset({NETWORKING, ERROR}),
    NETWORKING: frozenset({BLOCK_DEVICE_MAPPING, SCHEDULING, ERROR}),
    BLOCK_DEVICE_MAPPING: frozenset({SPAWNING, SCHEDULING, ERROR}),
    SPAWNING: frozenset({ACTIVE, SCHEDULING, ERROR}),
    ACTIVE: frozenset({ERROR}),
    STOPPED: frozenset({ERROR}),
    ERROR: frozenset(),
}


class InvalidTransition(Exception):
    pass


class UnexpectedState(Exception):
    """The instance is not in the state the caller expected (Nova's UnexpectedTaskStateError)."""


def check(current: State, target: State) -> None:
    if target not in _ALLOWED.get(current, frozenset()):
        raise InvalidTransition(f"{current} -> {target} is not allowed")


def next_build_step(current: State) -> State:
    """The state after a successful build step: the next step, or ACTIVE after SPAWNING."""
    index = BUILD_STEPS.index(current)
    return BUILD_STEPS[index + 1] if index + 1 < len(BUILD_STEPS) else ACTIVE


def of_status(status: dict | None) -> State:
    status = status or {}
    vm, task = status.get("vmState"), status.get("taskState")
    return State(VmState(vm) if vm else None, TaskState(task) if task else None)
