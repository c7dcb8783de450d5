"""The only way Instance status is written: one compare-and-swap write per transition.

A transition may pass through states on its way (`via`): a build step with nothing to do
(no ports, no volumes) is folded into the next write, each state still recorded with its own
time in phaseTransitionTimestamps and checked against the state machine, hop by hop.

The patch is computed from the object as the caller last saw it (the response to its previous
write, `known`) or, without one or after a lost race, as read afresh; its state is compared with
what the caller expected, the transition checked against the state machine, and the patch sent
with the resourceVersion it was computed from, so a concurrent writer makes it fail (409) instead
of being overwritten. No read precedes a write whose base is still current (kube-scheduler's
"no GET before a write": the resourceVersion comes from the last response).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from kubenova import metrics
from kubenova.conductor import states
from kubenova.conductor.conditions import set_condition
from kubenova.conductor.states import State, UnexpectedState
from kubenova.kube.client import Objects
from kubenova.models.v1alpha1.states import VmState
from kubenova.timestamps import iso, now, parse_time

PLURAL = "instances"
Derive = Callable[[dict[str, Any], dict[str, Any]], None]
"""Adds to a status patch from the status it is computed on: derive(status, patch)."""

#: the condition a state's success sets True (Ready follows the guest: see guest_boot_kept)
_DONE_CONDITION = {
    states.SCHEDULING: "Scheduled",
    states.NETWORKING: "NetworkReady",
    states.BLOCK_DEVICE_MAPPING: "BlockDevicesReady",
}
READY = "Ready"
#: Ready's reasons while ACTIVE: waiting for the guest OS, up, or no sign in time (guest.py)
GUEST_BOOTING, GUEST_BOOTED, GUEST_BOOT_TIMEOUT = "GuestBooting", "GuestBooted", "GuestBootTimeout"
#: the transitions into which the guest's current boot survives: an ACTIVE instance's stop
#: begins (the VM still runs) and, if it fails, ends ACTIVE again. Every other transition
#: starts or ends a boot (spawn, start, reboot, stop, ERROR), so guestBootedAt is cleared.
_BOOT_SURVIVES = {
    (states.ACTIVE, states.POWERING_OFF),
    (states.POWERING_OFF, states.ACTIVE),
}


#: the status fields of a guest boot, cleared when a move starts or ends a boot
_BOOT_CLEARED = {"guestBootedAt": None, "guestBootSignal": None}


def guest_boot_kept(source: State, target: State) -> bool:
    """Whether status.guestBootedAt (the guest of this boot is up) stays across the move."""
    return (source, target) in _BOOT_SURVIVES


def conditions_for(
    current: list[dict[str, Any]],
    source: State,
    target: State,
    message: str,
    at: str,
    generation: int | None,
    fault: str | None = None,
    guest_up: bool = False,
) -> list[dict[str, Any]]:
    """The conditions after `source` -> `target`: the build steps', Ready and Failed (ERROR,
    with the fault's message, else `message`), so `kubectl wait` returns on either.

    Ready is True only while ACTIVE with the guest of the current boot up (`guest_up`); a
    move into ACTIVE without it sets Ready False GuestBooting, which the guest watch
    (conductor/guest.py) turns True once the guest shows it is up."""
    conditions = [dict(c) for c in current]
    if target == states.SCHEDULING and source != states.NEW:
        for ctype in _DONE_CONDITION.values():  # a reschedule starts the build over
            set_condition(conditions, ctype, "False", "Rescheduling", message, at, generation)
    if source in _DONE_CONDITION and target in (*states.BUILD_STEPS[1:], states.ACTIVE):
        set_condition(conditions, _DONE_CONDITION[source], "True", "Done", message, at, generation)
    if target == states.ACTIVE and guest_up:
        ready = ("True", GUEST_BOOTED, message)
    elif target == states.ACTIVE:
        ready = ("False", GUEST_BOOTING, f"{message}; waiting for the guest OS to show it is up")
    else:
        ready = ("False", str(target).replace("/", "_").replace("_none", ""), message)
    set_condition(conditions, READY, *ready, at, generation)
    if target.vm == VmState.ERROR:
        failed = ("True", "Error", fault or message)
    else:
        failed = ("False", "NoError", message)
    set_condition(conditions, "Failed", *failed, at, generation)
    return conditions


class Seen:
    """The resourceVersions one actor's copy of an instance has had (its writes' answers and
    its reads), newest last. Its copy only moves forward (each write is a compare-and-swap on
    the one before), so a watch event at one of them brings nothing the actor does not know:
    no read for it."""

    def __init__(self, limit: int = 64) -> None:
        self.limit = limit
        self._versions: OrderedDict[str, None] = OrderedDict()

    def add(self, obj: Mapping[str, Any]) -> None:
        version = (obj.get("metadata") or {}).get("resourceVersion")
        if version:
            self._versions[version] = None
            self._versions.move_to_end(version)
            while len(self._versions) > self.limit:
                self._versions.popitem(last=False)

    def known(self, watched: Mapping[str, Any] | None) -> bool:
        """Whether the watch's copy is at a version this actor has had already."""
        version = ((watched or {}).get("metadata") or {}).get("resourceVersion")
        return bool(version) and version in self._versions


@dataclass(frozen=True)
class Hop:
    """A state passed through on the way to a transition's target, when it was reached and
    what was done there (the message of its conditions)."""

    target: State
    message: str
    at: datetime


def chain(derives: Sequence[Derive]) -> Derive:
    """One derive of several moves written together: each sees the status as the moves
    before it left it (the create action a folded acceptance starts is there for the ERROR
    in the same write to finish)."""

    def derive(status: dict[str, Any], patch: dict[str, Any]) -> None:
        for each in derives:
            each({**status, **patch}, patch)

    return derive


def path_kept_boot(source: State, hops: Sequence[State]) -> bool:
    """Whether the guest's current boot survives every move of the path."""
    previous = source
    for target in hops:
        if not guest_boot_kept(previous, target):
            return False
        previous = target
    return True


class StatusWriter:
    def __init__(self, objects: Objects) -> None:
        self.objects = objects

    async def transition(
        self,
        namespace: str,
        name: str,
        expected: State,
        target: State,
        message: str,
        fields: dict[str, Any] | None = None,
        at: datetime | None = None,
        retries: int = 8,
        derive: Derive | None = None,
        known: dict[str, Any] | None = None,
        via: Sequence[Hop] = (),
        guest_up: bool = False,
    ) -> dict[str, Any]:
        """Move the instance from `expected` to `target`, setting `fields` in the same write.

        `via`: the states passed through on the way, in order (folded steps), each checked
        and recorded as if written on its own.
        `known`: the object as the caller last saw it, tried first (a stale one only costs
        the 409 after which it is read afresh).
        `derive(status, patch)`, if given, adds to the status patch from the status just read
        (for lists such as `actions`, which must not be computed from a stale copy).
        `guest_up`: a move into ACTIVE whose guest OS is known up already (the driver said so
        when the VM started): Ready True GuestBooted in the same write.
        Raises UnexpectedState if the instance is elsewhere (someone else moved it), and
        InvalidTransition if the state machine forbids a step.
        """
        path = [hop.target for hop in via] + [target]
        previous = expected
        for hop_target in path:
            states.check(previous, hop_target)
            previous = hop_target
        for attempt in range(retries):
            base = known if attempt == 0 else None
            obj, status, current = await self._base(namespace, name, base, expected)
            if current != expected:
                raise UnexpectedState(f"{namespace}/{name} is {current}, expected {expected}")
            hops = [*via, Hop(target, message, at or now())]
            transitions = list(status.get("phaseTransitionTimestamps") or [])
            generation = obj["metadata"].get("generation")
            fault = (fields or {}).get("fault") or {}
            kept = path_kept_boot(expected, path) and bool(status.get("guestBootedAt"))
            conditions = status.get("conditions") or []
            source = expected
            for hop in hops:
                stamp = iso(hop.at)
                entry: dict[str, Any] = {"vmState": hop.target.vm.value, "time": stamp}
                if hop.target.task:
                    entry["taskState"] = hop.target.task.value
                transitions.append(entry)
                conditions = conditions_for(
                    conditions,
                    source,
                    hop.target,
                    hop.message,
                    stamp,
                    generation,
                    fault=fault.get("message"),
                    guest_up=kept or (guest_up and hop is hops[-1]),
                )
                source = hop.target
            patch_status: dict[str, Any] = {
                "vmState": target.vm.value,
                "taskState": target.task.value if target.task else None,
                "printableStatus": states.printable_status(target),
                "phaseTransitionTimestamps": transitions[-64:],
                "conditions": conditions,
                "observedGeneration": generation,
                **({} if kept or not status.get("guestBootedAt") else _BOOT_CLEARED),
                **(fields or {}),
            }
            if derive is not None:
                derive(status, patch_status)
            updated = await self.objects.patch_status_unless_changed(PLURAL, obj, patch_status)
            if updated is None:
                continue
            _observe(obj, status, expected, hops)
            return updated
        raise UnexpectedState(f"{namespace}/{name}: status kept changing under us")

    async def update(
        self,
        namespace: str,
        name: str,
        expected: State | None,
        derive: Derive,
        retries: int = 8,
        known: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """One compare-and-swap status write that keeps the state (a refused action, the
        action log): `derive(status, patch)` fills the patch from the status just read.
        `expected` None: whatever the state (the deletion's log entry). `known`: as in
        transition()."""
        for attempt in range(retries):
            base = known if attempt == 0 else None
            obj, status, current = await self._base(namespace, name, base, expected)
            if expected is not None and current != expected:
                raise UnexpectedState(f"{namespace}/{name} is {current}, expected {expected}")
            patch_status: dict[str, Any] = {}
            printable = states.printable_status(current)
            if status.get("printableStatus") != printable:  # one written before the field
                patch_status["printableStatus"] = printable
            derive(status, patch_status)
            updated = await self.objects.patch_status_unless_changed(PLURAL, obj, patch_status)
            if updated is not None:
                return updated
        raise UnexpectedState(f"{namespace}/{name}: status kept changing under us")

    async def _base(
        self, namespace: str, name: str, known: dict[str, Any] | None, expected: State | None
    ) -> tuple[dict[str, Any], dict[str, Any], State]:
        """What a patch is computed from, its status and state: the caller's copy if it has a
        resourceVersion to send as the precondition and is in the `expected` state (a copy
        that is behind is not trusted to say the instance moved), else the object read now."""
        if known is not None and (known.get("metadata") or {}).get("resourceVersion"):
            status = known.get("status") or {}
            state = states.of_status(status)
            if expected is None or state == expected:
                return known, status, state
        obj = await self.objects.get(PLURAL, name, namespace)
        status = obj.get("status") or {}
        return obj, status, states.of_status(status)


def _observe(obj: dict, status: dict, source: State, hops: Sequence[Hop]) -> None:
    created = parse_time(obj["metadata"]["creationTimestamp"])
    history = status.get("phaseTransitionTimestamps") or []
    since = parse_time(history[-1]["time"]) if history else None
    for hop in hops:
        metrics.PHASE_TRANSITION_FROM_CREATION.labels(str(hop.target)).observe(
            metrics.seconds_between(created, hop.at)
        )
        if source.task and since is not None:
            metrics.TASK_STATE_DURATION.labels(source.task.value).observe(
                metrics.seconds_between(since, hop.at)
            )
        if hop.target == states.ACTIVE and source == states.SPAWNING:  # the boot, not a start
            metrics.CREATE_TO_ACTIVE.observe(metrics.seconds_between(created, hop.at))
        source, since = hop.target, hop.at
