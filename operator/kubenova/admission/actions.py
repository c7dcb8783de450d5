"""nova-api's state check on an action (`check_instance_state`), at `kubectl apply` time.

An Instance update that asks for an action (a new `compute.kubenova.io/reboot` annotation, a
changed `spec.powerState`) is refused when the instance rests in a state that does not allow it:
the same rules the operator applies when it takes the request up (conductor/actions.py). An
instance still building or busy with another action is not judged here: the request waits its
turn and the operator judges it then (refused there with a Warning event and the action log).
What only the host knows (whether it still has the VM, whether its driver can power-cycle) is
left to the operator too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kubenova.admission.refs import Problem
from kubenova.conductor import states
from kubenova.conductor.actions import (
    REBOOT_ANNOTATION,
    START,
    STOP,
    reboot_action,
    refusal,
)
from kubenova.models.v1alpha1.states import VmState


def action_problems(name: str, old: Mapping[str, Any], new: Mapping[str, Any]) -> list[Problem]:
    status = old.get("status") or {}
    state = states.of_status(status)
    if state.task is not None or state.vm in (None, VmState.BUILDING):
        return []  # queued: judged when the operator takes it up
    host = status.get("host")
    problems = []
    old_power = (old.get("spec") or {}).get("powerState") or "Running"
    new_power = (new.get("spec") or {}).get("powerState") or "Running"
    if new_power != old_power:
        action = None
        if new_power == "Stopped" and state.vm != VmState.STOPPED:
            action = STOP
        elif new_power == "Running" and state.vm != VmState.ACTIVE:
            action = START
        why = action and refusal(action, state, name, host=host, vm_present=None)
        if why:
            problems.append(Problem(f"spec.powerState {new_power}: {why}", 409))
    value = ((new.get("metadata") or {}).get("annotations") or {}).get(REBOOT_ANNOTATION)
    before = ((old.get("metadata") or {}).get("annotations") or {}).get(REBOOT_ANNOTATION)
    if value is not None and value != before:
        action = reboot_action(value)
        if action is None:
            problems.append(
                Problem(f"annotation {REBOOT_ANNOTATION}={value!r}: it must be soft or hard")
            )
        elif new_power == old_power:  # else judged after the power change, by the operator
            why = refusal(action, state, name, host=host, vm_present=None)
            if why:
                problems.append(Problem(f"annotation {REBOOT_ANNOTATION}={value}: {why}", 409))
    return problems
