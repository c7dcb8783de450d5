"""Instance actions after the build, with Nova's states: stop, start, soft and hard reboot.

How users ask (both kubectl-friendly, both survive an operator restart):
- `spec.powerState` (Running | Stopped) is the desired power state. Each change of it that the
  operator takes up is one stop or start request; `status.observedPowerState` records the value
  taken up (acted on or refused), so a restart never repeats or forgets one.
- the annotation `compute.kubenova.io/reboot: soft|hard` asks for one reboot; the operator
  removes it once the request is recorded in status (or refused).

Requests are taken up one at a time by the instance's own daemon (the one writer of its status)
whenever the instance rests (no build step, no action running), power state first. Each is
checked against `refusal()` (Nova's `check_instance_state`); a refused one is logged in
`status.actions` with its reason, a Warning event and the `ActionSucceeded` condition, and
changes nothing else. An accepted one writes the action's task state with its log entry in one
compare-and-swap write, then calls the driver, then writes the outcome.

An operator restarted mid-action finds the task state and redoes the action (Nova's
`_init_instance`): power off and power on are idempotent in the driver; an interrupted reboot
is done again (a reboot may happen twice, never zero times).

Power-state sync (Nova's `_sync_power_states`): while an instance rests ACTIVE, its driver is
asked every `sync_interval` seconds whether the VM runs. A VM gone without a stop request (its
qemu crashed or was killed) puts the instance in ERROR with a fault, powerState SHUTDOWN; a hard
reboot starts it again. (Nova calls its stop API there; with a declared `powerState: Running`
a silent STOPPED would hide the crash.) A host that is down (`Conductor.hosts_down`), or that
has no VM at all for the instance, is left to the host-failure handling.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from kubenova import GROUP
from kubenova.conductor import actionlog, states
from kubenova.conductor.context import Conductor
from kubenova.conductor.guest import GuestWatch
from kubenova.conductor.states import State, UnexpectedState
from kubenova.conductor.status import Seen
from kubenova.kube.client import ApiException
from kubenova.kube.events import Reason
from kubenova.models.v1alpha1.states import PowerState, TaskState, VmState
from kubenova.timestamps import iso, now
from kubenova.virt.driver import ComputeDriver, DriverError, InstanceNotFound

log = logging.getLogger("kubenova.actions")

#: `kubectl annotate instance NAME compute.kubenova.io/reboot=soft` (or `=hard`)
REBOOT_ANNOTATION = f"{GROUP}/reboot"
REBOOT_TYPES = {"soft": "SOFT", "hard": "HARD"}


@dataclass(frozen=True)
class Timing:
    shutdown_timeout: float = 60.0
    """Seconds a stop gives the guest to power off through ACPI before forcing it (Nova's
    `shutdown_timeout`)."""
    start_timeout: float = 120.0
    """Seconds a start or reboot waits for the VM to run (the guest watch then waits for the
    guest OS: conductor/guest.py)."""
    sync_interval: float = 60.0
    """Seconds between power-state syncs of a resting ACTIVE instance (0: never)."""


# -- the actions -----------------------------------------------------------------------------
class Action:
    """One kind of action: where it may start, what it asks the driver, where it ends."""

    name: str  # as the action log and Nova name it
    label: str  # for messages
    task: TaskState
    allowed_from: frozenset[VmState]
    reboot_type: str | None = None
    done: State = states.ACTIVE
    done_power: PowerState = PowerState.RUNNING
    event_started: Reason
    event_done: Reason
    done_message: str = "{host}: done"

    def starting(self, source: State) -> State:
        return State(source.vm, self.task)

    async def run(self, driver: ComputeDriver, instance_id: str, timing: Timing) -> None:
        raise NotImplementedError

    def after_failure(self, source_vm: VmState | None, running: bool | None) -> State:
        """Where a failed action leaves the instance, given whether the VM runs now (None:
        unknown, its state could not be read)."""
        if running is None:
            return states.ERROR
        return states.ACTIVE if running else states.ERROR


class Stop(Action):
    name, label, task = "stop", "stop", TaskState.POWERING_OFF
    allowed_from = frozenset({VmState.ACTIVE, VmState.ERROR})
    done, done_power = states.STOPPED, PowerState.SHUTDOWN
    event_started, event_done = Reason.STOPPING, Reason.STOPPED
    done_message = "the VM on {host} is powered off"

    async def run(self, driver: ComputeDriver, instance_id: str, timing: Timing) -> None:
        await driver.power_off(instance_id, grace=timing.shutdown_timeout)

    def after_failure(self, source_vm: VmState | None, running: bool | None) -> State:
        if running is None:
            return states.ERROR
        return State(source_vm, None) if running else states.STOPPED


class Start(Action):
    name, label, task = "start", "start", TaskState.POWERING_ON
    allowed_from = frozenset({VmState.STOPPED})
    event_started, event_done = Reason.STARTING, Reason.STARTED
    done_message = "the VM runs on {host}"

    async def run(self, driver: ComputeDriver, instance_id: str, timing: Timing) -> None:
        await driver.power_on(instance_id, timing.start_timeout)

    def after_failure(self, source_vm: VmState | None, running: bool | None) -> State:
        if running is None:
            return states.ERROR
        return states.ACTIVE if running else states.STOPPED


class Reboot(Action):
    name = "reboot"
    event_started, event_done = Reason.REBOOTING, Reason.REBOOTED

    def __init__(self, hard: bool) -> None:
        self.hard = hard
        self.reboot_type = "HARD" if hard else "SOFT"
        self.label = "hard reboot" if hard else "soft reboot"
        self.done_message = f"{self.label}: the VM runs again on {{host}}"
        self.task = TaskState.REBOOTING_HARD if hard else TaskState.REBOOTING
        # Nova: ALLOW_SOFT_REBOOT = [ACTIVE]; ALLOW_HARD_REBOOT adds STOPPED, ERROR (and PAUSED,
        # SUSPENDED, which kubenova has not).
        self.allowed_from = frozenset(
            {VmState.ACTIVE, VmState.STOPPED, VmState.ERROR} if hard else {VmState.ACTIVE}
        )

    async def run(self, driver: ComputeDriver, instance_id: str, timing: Timing) -> None:
        await driver.reboot(instance_id, self.hard, timing.start_timeout)


STOP, START = Stop(), Start()
SOFT_REBOOT, HARD_REBOOT = Reboot(hard=False), Reboot(hard=True)
#: the action a task state belongs to (an interrupted one is redone from it)
BY_TASK: dict[TaskState, Action] = {a.task: a for a in (STOP, START, SOFT_REBOOT, HARD_REBOOT)}


def refusal(
    action: Action,
    state: State,
    name: str,
    *,
    host: str | None = None,
    vm_present: bool | None = True,
    unsupported: str | None = None,
) -> str | None:
    """Why `action` may not run on an instance in `state`, or None. `vm_present`: whether the
    host has the VM (None: not known, as at admission); `unsupported`: the driver's reason it
    cannot do power operations, if it cannot."""
    what = f"Cannot '{action.name}' instance {name}"
    if state.vm in (None, VmState.BUILDING):
        return f"{what} while it is in vm_state BUILDING: wait until it is ACTIVE"
    if state.task is not None:
        return f"{what} while it is in task_state {state.task}: wait until it is done"
    if state.vm not in action.allowed_from:
        return f"{what} while it is in vm_state {state.vm}: {_hint(action, state.vm)}"
    if state.vm == VmState.ERROR and not host:
        return (
            f"{what}: it is in ERROR with no host (its build failed before a VM existed); "
            "delete it and create it again"
        )
    if state.vm == VmState.ERROR and vm_present is False:
        return f"{what}: host {host} has no VM for it; delete it and create it again"
    if unsupported:
        return f"{what}: {unsupported}"
    return None


def _hint(action: Action, vm: VmState | None) -> str:
    if action is SOFT_REBOOT and vm == VmState.STOPPED:
        return (
            "a soft reboot needs a running guest; set spec.powerState: Running, "
            "or ask for a hard reboot"
        )
    if action is SOFT_REBOOT:
        return "a soft reboot needs an ACTIVE instance; ask for a hard reboot"
    if action is START and vm == VmState.ERROR:
        return "a hard reboot starts it again"
    if action is STOP:
        return "it is not running"
    return f"{action.label} is allowed from {', '.join(sorted(action.allowed_from))} only"


def reboot_action(value: str) -> Action | None:
    """The action of a reboot annotation's value, or None if it is not soft or hard."""
    kind = REBOOT_TYPES.get(value.strip().lower())
    return None if kind is None else HARD_REBOOT if kind == "HARD" else SOFT_REBOOT


# -- the loop of one instance ----------------------------------------------------------------
Emit = Callable[[Reason, str], None]


class Lifecycle:
    """Takes one instance's requests up after its build, one at a time; resumes an action an
    operator restart interrupted; syncs the power state. Runs in the instance's daemon."""

    def __init__(
        self,
        conductor: Conductor,
        body: Mapping[str, Any],
        driver_for: Callable[[str], ComputeDriver | None],
        emit: Emit,
        wake: asyncio.Event,
        timing: Timing,
        live: Mapping[str, Any] | None = None,
        seen: Seen | None = None,
    ) -> None:
        """`body`: the instance as the caller last saw it; `live`: kopf's live view of it
        (renewed by each watch event), `seen`: the versions the caller's copy has had."""
        self.c = conductor
        meta = body["metadata"]
        self.namespace, self.name, self.uid = meta["namespace"], meta["name"], meta["uid"]
        self.ref = f"{self.namespace}/{self.name}"
        self.driver_for = driver_for
        self.emit = emit
        self.wake = wake
        self.timing = timing
        self.live = live
        self.seen = seen or Seen()
        self.obj = dict(body)
        self._missing_logged = False
        self.guest = GuestWatch(conductor, self.namespace, self.name, self.uid, driver_for, emit)

    # -- reading -----------------------------------------------------------------------------
    @property
    def obj(self) -> dict[str, Any]:
        return self._obj

    @obj.setter
    def obj(self, obj: dict[str, Any]) -> None:
        self._obj = obj
        self.seen.add(obj)

    @property
    def status(self) -> dict[str, Any]:
        return self.obj.get("status") or {}

    @property
    def state(self) -> State:
        return states.of_status(self.status)

    async def refresh(self) -> bool:
        """Re-read the instance; False when it is gone or being deleted. No read when the
        watch's copy is at a version this copy has had (the event of our own write)."""
        if self.seen.known(self.live):
            return not self.obj["metadata"].get("deletionTimestamp")
        obj = await self.c.objects.find("instances", self.name, self.namespace)
        if obj is None:
            return False
        self.obj = obj
        return not obj["metadata"].get("deletionTimestamp")

    # -- the loop ------------------------------------------------------------------------------
    async def run(self) -> None:
        """Until cancelled (kopf cancels the daemon on deletion and on operator exit)."""
        try:
            await self._run()
        finally:
            await self.guest.cancel()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        # The first look is at the object as the caller last saw it (the build's last write's
        # answer, or the watch's copy), not a read: an event that came since has set `wake`,
        # so the first wait returns at once and reads it (issue 13: no GET before a write).
        if self.obj["metadata"].get("deletionTimestamp"):
            return
        await self.resume()
        interval = self.timing.sync_interval
        next_sync = loop.time() + interval if interval > 0 else None
        look_again = False
        while True:
            if look_again:
                self.wake.clear()  # before the read: an event arriving after it wakes the wait
                if not await self.refresh():
                    return
            look_again = True
            self.guest.ensure(self.obj)  # condition Ready follows the guest (guest.py)
            try:
                if await self.take_request():
                    continue
                if next_sync is not None and loop.time() >= next_sync:
                    await self.sync_power_state()
                    next_sync = loop.time() + interval
            except UnexpectedState as err:  # someone else moved it: look again
                log.info("%s: %s", self.ref, err)
                continue
            timeout = None if next_sync is None else max(0.0, next_sync - loop.time())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), timeout)

    async def resume(self) -> None:
        """Finish an action an operator restart interrupted (its task state is in status)."""
        state = self.state
        if state not in states.ACTION_STATES or state.task is None:
            return
        action = BY_TASK[state.task]
        record = actionlog.in_progress(self.status.get("actions"), action.name)
        request_id = record["requestId"] if record else None
        message = f"redoing the {action.label} an operator restart interrupted"
        log.info("%s: %s (%s)", self.ref, message, state)
        self.emit(Reason.ACTION_RESUMED, message)
        if action.name == "reboot":
            await self.remove_reboot_annotation(action)
        await self.execute(action, state, request_id)

    async def take_request(self) -> bool:
        """Take up the next request, if the instance rests; True if one was taken up."""
        state = self.state
        if state.task is not None or state.vm in (None, VmState.BUILDING):
            return False
        desired = (self.obj.get("spec") or {}).get("powerState") or "Running"
        if desired != (self.status.get("observedPowerState") or "Running"):
            await self.power_request(desired, state)
            return True
        annotations = self.obj["metadata"].get("annotations") or {}
        if REBOOT_ANNOTATION in annotations:
            await self.reboot_request(annotations[REBOOT_ANNOTATION], state)
            return True
        return False

    # -- requests ------------------------------------------------------------------------------
    async def power_request(self, desired: str, state: State) -> None:
        requested = actionlog.changed_at(self.obj["metadata"], "spec", "powerState") or now()
        if (desired, state.vm) in (("Stopped", VmState.STOPPED), ("Running", VmState.ACTIVE)):

            def observe(status: dict, patch: dict) -> None:
                patch["observedPowerState"] = desired

            self.obj = await self.c.writer.update(
                self.namespace, self.name, state, observe, known=self.obj
            )
            return
        action = STOP if desired == "Stopped" else START
        await self.request(action, state, requested, observed=desired)

    async def reboot_request(self, value: str, state: State) -> None:
        meta = self.obj["metadata"]
        requested = actionlog.changed_at(meta, "metadata", "annotations", REBOOT_ANNOTATION)
        action = reboot_action(value)
        if action is None:
            await self.refuse(
                SOFT_REBOOT,
                state,
                requested or now(),
                f"annotation {REBOOT_ANNOTATION}={value!r} is neither soft nor hard",
                reboot_type=None,
            )
            await self.remove_annotation(value)
            return
        await self.request(action, state, requested or now(), annotation=value)

    async def request(
        self,
        action: Action,
        state: State,
        requested: datetime,
        observed: str | None = None,
        annotation: str | None = None,
    ) -> None:
        why = await self.check(action, state)
        if why is not None:
            await self.refuse(action, state, requested, why, action.reboot_type, observed)
            if annotation is not None:
                await self.remove_annotation(annotation)
            return
        request_id = actionlog.new_request_id()
        started = now()
        record = actionlog.entry(action.name, request_id, requested, started, action.reboot_type)
        target = action.starting(state)
        message = f"{action.label} requested ({request_id})"
        generation = self.obj["metadata"].get("generation")

        def begin(status: dict, patch: dict) -> None:
            patch["actions"] = actionlog.appended(status.get("actions"), record)
            patch["conditions"] = actionlog.with_condition(
                patch.get("conditions"),
                "Unknown",
                f"{_camel(action.label)}InProgress",
                message,
                started,
                generation,
            )
            if observed is not None:
                patch["observedPowerState"] = observed

        self.obj = await self.c.writer.transition(
            self.namespace, self.name, state, target, message, at=started, derive=begin,
            known=self.obj,
        )  # fmt: skip
        if annotation is not None:
            await self.remove_annotation(annotation)
        self.emit(action.event_started, message)
        log.info("%s: %s", self.ref, message)
        await self.execute(action, target, request_id)

    async def check(self, action: Action, state: State) -> str | None:
        """refusal() with what only the host knows: whether it has the VM, the driver's
        support of power operations."""
        host = self.status.get("host")
        driver = self.driver_for(host) if host else None
        unsupported = getattr(driver, "power_operations_unsupported", None) if driver else None
        vm_present: bool | None = True
        if host and driver is None:
            unsupported = f"its host {host} is not served by this operator"
        elif driver is not None and state.vm == VmState.ERROR and not unsupported:
            try:
                await driver.get_info(self.uid)
            except InstanceNotFound:
                vm_present = False
            except DriverError:
                vm_present = None
        return refusal(
            action, state, self.name, host=host, vm_present=vm_present, unsupported=unsupported
        )

    async def refuse(
        self,
        action: Action,
        state: State,
        requested: datetime,
        why: str,
        reboot_type: str | None,
        observed: str | None = None,
    ) -> None:
        at = now()
        record = actionlog.entry(
            action.name, actionlog.new_request_id(), requested, at, reboot_type
        )
        record.update(finishTime=iso(at), result=actionlog.ERROR, message=f"refused: {why}"[:1000])
        generation = self.obj["metadata"].get("generation")

        def refused(status: dict, patch: dict) -> None:
            patch["actions"] = actionlog.appended(status.get("actions"), record)
            patch["conditions"] = actionlog.with_condition(
                status.get("conditions"),
                "False",
                f"{_camel(action.label)}Refused",
                why,
                at,
                generation,
            )
            if observed is not None:
                patch["observedPowerState"] = observed

        self.obj = await self.c.writer.update(
            self.namespace, self.name, state, refused, known=self.obj
        )
        self.emit(Reason.ACTION_REFUSED, why)
        log.info("%s: refused: %s", self.ref, why)

    # -- doing it ------------------------------------------------------------------------------
    async def execute(self, action: Action, state: State, request_id: str | None) -> None:
        """Run `action` on the driver (the instance is in its task state `state`) and write
        where it ended, finishing the log entry `request_id`."""
        host = self.status.get("host") or ""
        driver = self.driver_for(host) if host else None
        source_vm = state.vm
        fault = None
        await self.guest.cancel()  # the action ends this boot's wait (a new boot may begin)
        try:
            if driver is None:
                raise DriverError(f"host {host or '(none)'} is not served by this operator")
            await action.run(driver, self.uid, self.timing)
        except Exception as err:  # a driver failure, or a bug: the outcome says where it is
            if not isinstance(err, DriverError):
                log.exception("%s: unexpected error in %s", self.ref, action.label)
            running = await self.running(driver)
            target = action.after_failure(source_vm, running)
            result, message = actionlog.ERROR, f"{action.label} failed on {host}: {err}"
            power = {True: PowerState.RUNNING, False: PowerState.SHUTDOWN}.get(
                running, PowerState.NOSTATE
            )
            if target == states.ERROR:
                fault = {"code": 500, "message": message[:1000], "time": iso(now())}
        else:
            target, power = action.done, action.done_power
            result, message = actionlog.SUCCESS, action.done_message.format(host=host)
        finished = now()
        generation = self.obj["metadata"].get("generation")
        ok = result == actionlog.SUCCESS
        reason = _camel(action.label) + ("" if ok else "Failed")

        def finish(status: dict, patch: dict) -> None:
            patch["actions"] = actionlog.finished(
                status.get("actions"), request_id, result, message, finished
            )
            patch["conditions"] = actionlog.with_condition(
                patch.get("conditions"), "True" if ok else "False", reason, message, finished,
                generation,
            )  # fmt: skip

        fields: dict[str, Any] = {"powerState": power.value}
        if target == states.ERROR:
            fields["fault"] = fault or {
                "code": 500,
                "message": message[:1000],
                "time": iso(finished),
            }
        elif source_vm == VmState.ERROR or target == states.ACTIVE:
            fields["fault"] = None  # out of ERROR: the fault was about the state it left
        self.obj = await self.c.writer.transition(
            self.namespace, self.name, state, target, message, fields, at=finished, derive=finish,
            known=self.obj,
        )  # fmt: skip
        self.emit(action.event_done if ok else Reason.ACTION_FAILED, message)
        log.info("%s: %s -> %s (%s)", self.ref, state, target, message)

    async def running(self, driver: ComputeDriver | None) -> bool | None:
        if driver is None:
            return None
        try:
            info = await driver.get_info(self.uid)
        except DriverError:
            return None
        return info.power_state == PowerState.RUNNING

    # -- power-state sync ----------------------------------------------------------------------
    async def sync_power_state(self) -> None:
        """An ACTIVE instance whose VM stopped behind the operator's back goes to ERROR."""
        if self.state != states.ACTIVE:
            return
        host = self.status.get("host")
        if host in getattr(self.c, "hosts_down", {}):  # the host-failure handling's (hosts.py)
            return
        driver = self.driver_for(host) if host else None
        if driver is None or getattr(driver, "power_operations_unsupported", None):
            return
        try:
            info = await driver.get_info(self.uid)
        except InstanceNotFound:
            if not self._missing_logged:  # once: it is the host-failure handling's to decide
                log.warning("%s: host %s has no VM for this ACTIVE instance", self.ref, host)
                self._missing_logged = True
            return
        except DriverError as err:
            log.warning("%s: power-state sync: %s", self.ref, err)
            return
        if info.power_state == PowerState.RUNNING:
            return
        message = (
            f"the VM on {host} stopped without a stop request (power state "
            f"{info.power_state}): it crashed or was killed; a hard reboot starts it again"
        )
        fault = {"code": 500, "message": message, "time": iso(now())}
        self.obj = await self.c.writer.transition(
            self.namespace,
            self.name,
            states.ACTIVE,
            states.ERROR,
            message,
            {"powerState": info.power_state.value, "fault": fault},
        )
        self.emit(Reason.POWER_STATE_SYNC, message)
        log.warning("%s: %s", self.ref, message)

    # -- the annotation ------------------------------------------------------------------------
    async def remove_reboot_annotation(self, action: Action) -> None:
        value = (self.obj["metadata"].get("annotations") or {}).get(REBOOT_ANNOTATION)
        if value is not None and reboot_action(value) is action:
            await self.remove_annotation(value)

    async def remove_annotation(self, value: str) -> None:
        """Remove the reboot annotation if it still holds `value` (a newer request stays);
        the answer is the copy from now on (the event of this write needs no read)."""
        updated = await remove_annotation(
            self.c, self.namespace, self.name, REBOOT_ANNOTATION, value
        )
        if updated is not None:
            self.obj = updated


async def remove_annotation(
    conductor: Conductor, namespace: str, name: str, key: str, value: str
) -> dict[str, Any] | None:
    """JSON-patch `test` + `remove`: atomic, so a value written meanwhile is not lost. The
    updated object, or None if the annotation had changed or gone meanwhile."""
    path = "/metadata/annotations/" + key.replace("~", "~0").replace("/", "~1")
    patch = [{"op": "test", "path": path, "value": value}, {"op": "remove", "path": path}]
    try:
        return await conductor.objects.json_patch("instances", name, namespace, patch)
    except ApiException as err:
        if err.status in (404, 409, 422):  # gone, or the annotation changed or went meanwhile
            return None
        raise


async def record_delete(
    conductor: Conductor, namespace: str, name: str, requested: datetime | None
) -> None:
    """The deletion's entry in the action log (its end is the object's disappearance; the
    Events outlive it). Best effort: a deletion never waits on its log."""
    at = now()
    record = actionlog.entry("delete", actionlog.new_request_id(), requested or at, at)

    def log_delete(status: dict, patch: dict) -> None:
        patch["actions"] = actionlog.appended(status.get("actions"), record)

    try:
        await conductor.writer.update(namespace, name, None, log_delete, retries=3)
    except (ApiException, UnexpectedState) as err:
        log.info("%s/%s: deletion not logged in status: %s", namespace, name, err)


def _camel(label: str) -> str:
    return "".join(word.capitalize() for word in label.split())
