"""The Instance state machine, in one place: which (vmState, taskState) may follow which.

Names are Nova's (vm_states, task_states). Every status write goes through `check()`, and the
writer compares the object's current state with the caller's expected one first, as Nova's
`instance.save(expected_task_state=...)` does, so a stale actor cannot move an instance back.
"""

from __future__ import annotations

from typing import NamedTuple

from kubenova.models.v1alpha1.instance import PrintableStatus
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

# -- instance actions (issue 7): stop, start, soft and hard reboot, as Nova's compute API --------
# The task state is written before the driver is called, so an operator restarted mid-action
# finds it and redoes the action (conductor/actions.py), as Nova's `_init_instance` does.
POWERING_OFF = State(VmState.ACTIVE, TaskState.POWERING_OFF)
ERROR_POWERING_OFF = State(VmState.ERROR, TaskState.POWERING_OFF)  # Nova: stop from ERROR
POWERING_ON = State(VmState.STOPPED, TaskState.POWERING_ON)
REBOOTING = State(VmState.ACTIVE, TaskState.REBOOTING)  # soft: only from ACTIVE
REBOOTING_HARD = State(VmState.ACTIVE, TaskState.REBOOTING_HARD)
STOPPED_REBOOTING_HARD = State(VmState.STOPPED, TaskState.REBOOTING_HARD)
ERROR_REBOOTING_HARD = State(VmState.ERROR, TaskState.REBOOTING_HARD)
#: every state an action is in progress in; each ends in one of `ACTION_OUTCOMES[state]`
ACTION_STATES: tuple[State, ...] = (
    POWERING_OFF,
    ERROR_POWERING_OFF,
    POWERING_ON,
    REBOOTING,
    REBOOTING_HARD,
    STOPPED_REBOOTING_HARD,
    ERROR_REBOOTING_HARD,
)

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

# -- instance actions (issue 7) ------------------------------------------------------------------
# Starting an action: the resting state gets the action's task state (Nova's API sets it).
# Ending it: success, or on failure the state the VM is really in (Nova's reverts_task_state and
# "reboot failed but the instance is running"): a VM still running stays ACTIVE, a stop or start
# that failed leaves it where it was, a reboot that left no running VM is ERROR with a fault;
# ERROR too when the VM's state cannot be read at all (it vanished mid-action).
# ACTIVE -> ERROR (above) is also the power-state sync finding the VM gone behind our back.
_ACTION_STARTS: dict[State, frozenset[State]] = {
    ACTIVE: frozenset({POWERING_OFF, REBOOTING, REBOOTING_HARD}),
    STOPPED: frozenset({POWERING_ON, STOPPED_REBOOTING_HARD}),
    ERROR: frozenset({ERROR_POWERING_OFF, ERROR_REBOOTING_HARD}),
}
ACTION_OUTCOMES: dict[State, frozenset[State]] = {
    POWERING_OFF: frozenset({STOPPED, ACTIVE, ERROR}),
    ERROR_POWERING_OFF: frozenset({STOPPED, ERROR}),
    POWERING_ON: frozenset({ACTIVE, STOPPED, ERROR}),
    REBOOTING: frozenset({ACTIVE, ERROR}),
    REBOOTING_HARD: frozenset({ACTIVE, ERROR}),
    STOPPED_REBOOTING_HARD: frozenset({ACTIVE, ERROR}),
    ERROR_REBOOTING_HARD: frozenset({ACTIVE, ERROR}),
}
_ALLOWED = {
    **{
        source: targets | _ACTION_STARTS.get(source, frozenset())
        for source, targets in _ALLOWED.items()
    },
    **ACTION_OUTCOMES,
}

# -- host failure (issue 7 part 4, conductor/hosts.py) --------------------------------------------
# An ACTIVE instance whose VM is not running when its host comes back (or when the operator
# starts again) is stopped, as Nova's power-state sync calls its stop API then; with
# resume_guests_state_on_host_boot it is started again instead and stays ACTIVE.
_ALLOWED[ACTIVE] = _ALLOWED[ACTIVE] | {STOPPED}


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


# -- the status a user reads (issue 15) -----------------------------------------------------------
# Nova's API status (nova/api/openstack/common.py `_STATE_MAP` and `status_from_state`): one
# word per vm_state, with a few task states shown instead while they run. Only the task states
# kubenova has appear; a stop or start shows the state it starts from (ACTIVE, SHUTOFF), as in
# Nova, and so does a hard reboot from STOPPED or ERROR.
_PRINTABLE: dict[VmState, dict[TaskState | None, PrintableStatus]] = {
    VmState.ACTIVE: {
        None: "ACTIVE",
        TaskState.REBOOTING: "REBOOT",
        TaskState.REBOOTING_HARD: "HARD_REBOOT",
    },
    VmState.BUILDING: {None: "BUILD"},
    VmState.STOPPED: {None: "SHUTOFF"},
    VmState.ERROR: {None: "ERROR"},
    VmState.DELETED: {None: "DELETED"},
}


def printable_status(state: State) -> PrintableStatus | None:
    """Nova's API status for `state` (`openstack server list`'s Status column); None before
    the operator has taken the instance up, UNKNOWN for a vm_state Nova has no word for."""
    if state.vm is None:
        return None
    by_task: dict[TaskState | None, PrintableStatus] = _PRINTABLE.get(state.vm, {None: "UNKNOWN"})
    return by_task.get(state.task, by_task[None])
