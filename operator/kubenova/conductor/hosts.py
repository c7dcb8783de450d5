"""Host failure: a compute host whose heartbeat stops is down; its instances are marked, and
reconciled with what the host has when it comes back.

Nova's model, followed here:

- The servicegroup API calls a compute service down when its heartbeat is older than
  `service_down_time` (here `--host-down-after`, judged in compute/liveness.py from the host's
  Lease). ComputeFilter then keeps new instances off the host.
- Nova leaves vm_state alone (a host that stopped reporting may only be unreachable: its guests
  may run on) and shows `host_status: DOWN` on its servers. Here a resting instance (ACTIVE or
  STOPPED, no task) on a down host keeps its vmState and gets `status.hostStatus: DOWN`,
  powerState NOSTATE (not known), a fault (code 503) saying why, the conditions `HostUp` and
  `Ready` False, and a Warning event `HostDown`. A build or an action in progress is not marked:
  it has its own deadline, and is marked once it rests.
- When the host's heartbeat moves again, and for this operator's own hosts when it starts
  (nova-compute's `init_host`), each instance is reconciled with what the driver reports:
  * a running VM is adopted: powerState RUNNING, the mark and its fault cleared, `HostUp`
    True, `Ready` True again if its guest had shown it is up (else the instance's guest watch
    goes on waiting), event `HostReturned`;
  * an ACTIVE instance whose VM is not running, or gone: by default it is stopped (vmState
    STOPPED, powerState SHUTDOWN, a fault saying why), as Nova's power-state sync calls the stop
    API; a hard reboot (or spec.powerState Stopped, then Running) starts it again. With
    `--resume-guests-state-on-host-boot` (Nova's `resume_guests_state_on_host_boot`) it is
    started again at once and stays ACTIVE: powered on from its disk if the host kept it,
    spawned afresh (same ports, same metadata) if the host has nothing of it; a start that
    fails ends in ERROR with the fault;
  * a STOPPED instance gets powerState SHUTDOWN back (a VM found running is powered off, as
    Nova's sync does).

The monitor is one background task of the operator (handlers/hosts.py starts it). Each status
write is a compare-and-swap on the state the instance was seen in, so it never overrides a
build step or an action that moved the instance meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

import aiohttp
from kubernetes_asyncio import client

from kubenova import metrics
from kubenova.compute.liveness import HeartbeatTracker
from kubenova.compute.registration import LEASE_NAMESPACE
from kubenova.conductor import states
from kubenova.conductor.build import Build, BuildError, Caches
from kubenova.conductor.conditions import set_condition
from kubenova.conductor.context import Conductor
from kubenova.conductor.states import State, UnexpectedState
from kubenova.conductor.status import GUEST_BOOTED, GUEST_BOOTING, READY
from kubenova.kube import events
from kubenova.kube.client import ApiException
from kubenova.kube.events import Reason
from kubenova.models.v1alpha1.states import PowerState
from kubenova.timestamps import iso, now
from kubenova.virt.driver import ComputeDriver, DriverError, InstanceNotFound
from kubenova.virt.fake import FakeDriver

log = logging.getLogger("kubenova.hosts")

DOWN, UNKNOWN = "DOWN", "UNKNOWN"
HOST_UP_CONDITION = "HostUp"
#: the fault of an instance on a down host (service unavailable), cleared when it returns
HOST_DOWN_FAULT = {"code": 503, "details": "host-down"}
#: instances that rest: the only ones marked and reconciled
RESTING = frozenset({states.ACTIVE, states.STOPPED})
API_ERRORS = (ApiException, aiohttp.ClientError, OSError, TimeoutError)


def is_host_fault(fault: dict | None) -> bool:
    return bool(fault) and fault.get("details") == HOST_DOWN_FAULT["details"]


def conditions_with(
    status: dict, changes: list[tuple[str, str, str, str]], generation: int | None
) -> list[dict[str, Any]]:
    """The status's conditions with (type, status, reason, message) changes applied."""
    conditions = [dict(c) for c in status.get("conditions") or []]
    stamp = iso(now())
    for ctype, value, reason, message in changes:
        set_condition(conditions, ctype, value, reason, message[:1000], stamp, generation)
    return conditions


class HostMonitor:
    """Judges the hosts' heartbeats, marks the instances of down hosts, reconciles returns."""

    def __init__(
        self,
        conductor: Conductor,
        api: client.ApiClient,
        down_after: float,
        resume_guests: bool = False,
        caches: Caches | None = None,
        interval: float | None = None,
    ) -> None:
        self.c = conductor
        self.api = api
        self.leases_api = client.CoordinationV1Api(api)
        self.tracker = HeartbeatTracker(down_after)
        self.resume_guests = resume_guests
        self.caches = caches
        self.interval = interval or min(5.0, max(0.5, down_after / 6))
        self._initialised = False
        """init_host done: this operator's own hosts' ACTIVE instances were checked once."""
        self._recheck = True
        """Some instance still needs a look (a mark to clear, a reconcile that failed)."""
        self._busy: dict[str, asyncio.Task] = {}

    # -- the loop ----------------------------------------------------------------------------
    async def run(self) -> None:
        while True:
            try:
                await self.tick()
            except API_ERRORS as err:  # the apiserver may be restarting: judge nothing now
                log.warning("host monitor: %r", err)
            except Exception:
                log.exception("host monitor failed; trying again")
            await asyncio.sleep(self.interval)

    async def tick(self) -> None:
        leases = await self.leases()  # no listing, no judgement: stale data marks nobody
        now_ = asyncio.get_running_loop().time()
        self.tracker.observe(leases, now_)
        down = self.tracker.down(now_)
        before = dict(self.c.hosts_down)
        newly_down = down.keys() - before.keys()
        for host in sorted(newly_down):
            log.warning("host %s is down: %s", host, down[host])
        returned = before.keys() - down.keys()
        for host in sorted(returned):
            log.warning("host %s is up again: its heartbeat moved", host)
        self.c.hosts_down.clear()
        self.c.hosts_down.update(down)
        metrics.HOSTS_DOWN.set(len(down))
        # The instances are listed only when something changed or is still to be done: a
        # host that stays down adds no work (nothing new is placed on it).
        if not self._initialised or newly_down or returned or self._recheck:
            try:
                await self.scan(down, initial=not self._initialised)
            except BaseException:
                self._recheck = True  # a returned host's instances must not be forgotten
                raise
            self._initialised = True

    async def leases(self) -> dict[str, str | None]:
        listing = await self.leases_api.list_namespaced_lease(LEASE_NAMESPACE)
        return {
            lease.metadata.name: str(lease.spec.renew_time) if lease.spec else None
            for lease in listing.items
        }

    async def scan(self, down: dict[str, str], initial: bool) -> None:
        """One look at every placed instance (a fresh, consistent list)."""
        self._recheck = False  # a reconcile failing meanwhile sets it again
        recheck = False
        for inst in await self.c.objects.list("instances"):
            meta, status = inst["metadata"], inst.get("status") or {}
            host = status.get("host")
            if not host or meta.get("deletionTimestamp"):
                continue
            state = states.of_status(status)
            marked = status.get("hostStatus") in (DOWN, UNKNOWN)
            if state not in RESTING or meta["uid"] in self._busy:
                recheck |= marked or host in down  # look again once it rests
                continue
            if host in down:
                if status.get("hostStatus") != DOWN:
                    self._start(inst, self.mark(inst, state, host, down[host]))
            elif status.get("hostStatus") == DOWN and not self.tracker.seen_alive(host):
                recheck = True  # marked before this process started: wait for a heartbeat
            elif status.get("hostStatus") == DOWN or (
                initial and state == states.ACTIVE and self._restarted_here(host)
            ):
                self._start(inst, self.reconcile(inst, state, host, marked))
        self._recheck = self._recheck or recheck or bool(self._busy)

    def _restarted_here(self, host: str) -> bool:
        """An embedded host of this operator whose VMs outlive it: its start is the host's
        (re)start, after which the VMs are looked at once (init_host). A FakeDriver's VMs live
        in this process's memory: it starts with none."""
        compute = self.c.hosts.local.get(host)
        return compute is not None and not isinstance(compute.driver, FakeDriver)

    def _start(self, inst: dict, work: Coroutine[Any, Any, None]) -> None:
        uid = inst["metadata"]["uid"]
        ref = f"{inst['metadata']['namespace']}/{inst['metadata']['name']}"
        task = asyncio.create_task(work, name=f"host-{uid}")
        self._busy[uid] = task

        def done(task: asyncio.Task) -> None:
            self._busy.pop(uid, None)
            if task.cancelled():
                return
            err = task.exception()
            if isinstance(err, UnexpectedState):
                log.info("%s moved meanwhile: %s", ref, err)
                self._recheck = True
            elif err is not None:
                log.warning("%s: host reconcile failed: %r; trying again", ref, err)
                self._recheck = True

        task.add_done_callback(done)

    async def close(self) -> None:
        for task in list(self._busy.values()):
            task.cancel()

    # -- marking -----------------------------------------------------------------------------
    async def mark(self, inst: dict, state: State, host: str, reason: str) -> None:
        meta = inst["metadata"]
        message = f"host {host} is down: {reason}; the instance's state is not known"
        at = iso(now())

        def derive(status: dict, patch: dict) -> None:
            patch.update(
                powerState=PowerState.NOSTATE.value,
                hostStatus=DOWN,
                fault={**HOST_DOWN_FAULT, "message": message[:1000], "time": at},
                conditions=conditions_with(
                    status,
                    [
                        (HOST_UP_CONDITION, "False", "HostDown", message),
                        ("Ready", "False", "HostDown", message),
                    ],
                    meta.get("generation"),
                ),
            )

        await self.c.writer.update(meta["namespace"], meta["name"], state, derive)
        log.warning("%s/%s: %s", meta["namespace"], meta["name"], message)
        await events.post(inst, Reason.HOST_DOWN, message)

    # -- reconciling -------------------------------------------------------------------------
    async def reconcile(self, inst: dict, state: State, host: str, marked: bool) -> None:
        meta = inst["metadata"]
        uid = meta["uid"]
        why = f"host {host} is up again" if marked else f"the operator started again on host {host}"
        driver = self.c.hosts.serving(host)
        if driver is None:
            message = f"{why}, but it is not served by this operator: power state not known"
            await self._clear(inst, state, message, None, UNKNOWN)
            return
        try:
            info = await driver.get_info(uid)
            running, present = info.power_state == PowerState.RUNNING, True
        except InstanceNotFound:
            running, present = False, False
        if state == states.STOPPED:
            if running:  # Nova's sync: a stopped instance's VM runs: stop it
                await driver.power_off(uid)
            if marked:
                await self._clear(inst, state, f"{why}; the instance stays stopped", "SHUTDOWN")
            return
        if running:
            if marked:
                await self._clear(inst, state, f"{why}; its VM is running (adopted)", "RUNNING")
            return
        gone = "the host has nothing of its VM" if not present else "its VM is not running"
        if self.resume_guests:
            await self.restart(inst, host, driver, present, f"{why}; {gone}")
        else:
            await self.stop_instance(inst, f"{why}; {gone}")

    async def _clear(
        self,
        inst: dict,
        state: State,
        message: str,
        power: str | None,
        host_status: str | None = None,
        new_boot: bool = False,
    ) -> None:
        """Clear the mark (and the host's fault); `power`: the powerState to show. `new_boot`:
        the VM was started again, so the guest watch waits for its guest afresh."""
        meta = inst["metadata"]
        running = state == states.ACTIVE and power == PowerState.RUNNING.value

        def derive(status: dict, patch: dict) -> None:
            patch["hostStatus"] = host_status
            if power is not None:
                patch["powerState"] = power
            if is_host_fault(status.get("fault")):
                patch["fault"] = None
            changes = [(HOST_UP_CONDITION, "True", "HostUp", message)]
            if running and new_boot:
                patch.update(guestBootedAt=None, guestBootSignal=None)
                changes.append((READY, "False", GUEST_BOOTING, message))
            elif running and status.get("guestBootedAt"):
                changes.append((READY, "True", GUEST_BOOTED, message))
            elif running:
                changes.append((READY, "False", GUEST_BOOTING, message))
            patch["conditions"] = conditions_with(status, changes, meta.get("generation"))

        await self.c.writer.update(meta["namespace"], meta["name"], state, derive)
        log.warning("%s/%s: %s", meta["namespace"], meta["name"], message)
        await events.post(inst, Reason.HOST_RETURNED, message)

    async def stop_instance(self, inst: dict, why: str) -> None:
        """The stop policy: ACTIVE -> STOPPED, with a fault saying why."""
        meta = inst["metadata"]
        message = (
            f"{why}: the instance is stopped (resume_guests_state_on_host_boot is off); "
            "a hard reboot starts it again"
        )
        fault = {"code": 500, "message": message[:1000], "details": "host-returned"}
        await self.c.writer.transition(
            meta["namespace"],
            meta["name"],
            states.ACTIVE,
            states.STOPPED,
            message[:1000],
            {
                "powerState": PowerState.SHUTDOWN.value,
                "hostStatus": None,
                "fault": {**fault, "time": iso(now())},
            },
            derive=self._host_up(message, meta.get("generation")),
        )
        log.warning("%s/%s: %s", meta["namespace"], meta["name"], message)
        await events.post(inst, Reason.GUEST_NOT_RUNNING, message)

    async def restart(
        self, inst: dict, host: str, driver: ComputeDriver, present: bool, why: str
    ) -> None:
        """The resume policy: start the VM again; ERROR with a fault if that fails."""
        meta = inst["metadata"]
        unsupported = getattr(driver, "power_operations_unsupported", None)
        try:
            if present and not unsupported:
                await driver.power_on(meta["uid"], self.c.start_timeout)
                how = "powered on from its disk"
            else:
                if present:  # e.g. a pod that ended: its disk went with it
                    await driver.destroy(meta["uid"])
                request = await self._spawn_request(inst, driver)
                await driver.spawn(request, self.c.start_timeout)
                how = "spawned again (same ports and metadata, a fresh disk from the image)"
        except (DriverError, BuildError) as err:
            message = f"{why}; starting it again failed: {err}"
            await self.c.writer.transition(
                meta["namespace"],
                meta["name"],
                states.ACTIVE,
                states.ERROR,
                message[:1000],
                {
                    "powerState": PowerState.SHUTDOWN.value,
                    "hostStatus": None,
                    "fault": {"code": 500, "message": message[:1000], "time": iso(now())},
                },
                derive=self._host_up(message, meta.get("generation")),
            )
            log.warning("%s/%s: %s", meta["namespace"], meta["name"], message)
            await events.post(inst, Reason.GUEST_RESUME_FAILED, message)
            return
        await self._clear(
            inst,
            states.ACTIVE,
            f"{why}: started again (resume_guests_state_on_host_boot): {how}",
            PowerState.RUNNING.value,
            new_boot=True,
        )

    async def _spawn_request(self, inst: dict, driver: ComputeDriver):
        if self.caches is None:
            raise BuildError("no caches to rebuild the VM's spawn request from")
        build = Build(self.c, inst, self.caches, lambda *_: None)
        return await build.spawn_request(driver)

    @staticmethod
    def _host_up(message: str, generation: int | None) -> Callable[[dict, dict], None]:
        def derive(status: dict, patch: dict) -> None:
            changes = [(HOST_UP_CONDITION, "True", "HostUp", message)]
            patch["conditions"] = conditions_with(
                {"conditions": patch.get("conditions") or status.get("conditions")},
                changes,
                generation,
            )

        return derive
