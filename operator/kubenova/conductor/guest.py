"""The guest watch: condition Ready follows the first sign that the guest OS is up.

ACTIVE means the hypervisor runs the VM (as in Nova and KubeVirt). Whether the guest OS came up
is the driver's wait_for_guest() (a DHCP request, cloud-init's last line, the guest agent, a
console line, the pod's readiness). The watch runs it for an ACTIVE instance whose Ready is
GuestBooting and writes the outcome in one compare-and-swap status write: Ready True
GuestBooted with `guestBootedAt` and `guestBootSignal`, or Ready False GuestBootTimeout after
the boot timeout (the VM stays ACTIVE, as in Nova). The deadline counts from the move to ACTIVE
(the last entry of phaseTransitionTimestamps), so an operator restarted meanwhile waits only
for what is left of it, and a result that arrives after the instance moved on is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from typing import Any

from kubenova import metrics
from kubenova.conductor import states
from kubenova.conductor.conditions import find, with_condition
from kubenova.conductor.context import Conductor
from kubenova.conductor.states import UnexpectedState
from kubenova.conductor.status import GUEST_BOOT_TIMEOUT, GUEST_BOOTED, GUEST_BOOTING, READY
from kubenova.kube.events import Reason
from kubenova.timestamps import iso, now, parse_time
from kubenova.virt.driver import ComputeDriver, DriverError, GuestBoot, GuestBootTimeout

log = logging.getLogger("kubenova.guest")
Emit = Callable[[Reason, str], None]


def boot_started(status: Mapping[str, Any]) -> str | None:
    """When the current boot began (the move to ACTIVE it belongs to), if Ready waits on it."""
    if states.of_status(status) != states.ACTIVE or not status.get("host"):
        return None
    ready = find(status.get("conditions"), READY)
    if ready is None or ready.get("reason") != GUEST_BOOTING:
        return None
    history = status.get("phaseTransitionTimestamps") or []
    return history[-1]["time"] if history else None


def first_boot(status: Mapping[str, Any]) -> bool:
    """The build's boot, not a start or reboot: the boot-latency histogram's samples."""
    entries = status.get("phaseTransitionTimestamps") or []
    actives = [e for e in entries if e.get("vmState") == "ACTIVE" and not e.get("taskState")]
    return len(actives) == 1


class GuestWatch:
    """At most one wait per instance, run beside its Lifecycle (which cancels it before an
    action and ensures it again after)."""

    def __init__(
        self,
        conductor: Conductor,
        namespace: str,
        name: str,
        uid: str,
        driver_for: Callable[[str], ComputeDriver | None],
        emit: Emit,
    ) -> None:
        self.c = conductor
        self.namespace, self.name, self.uid = namespace, name, uid
        self.ref = f"{namespace}/{name}"
        self.driver_for = driver_for
        self.emit = emit
        self._task: asyncio.Task | None = None
        self._boot: str | None = None

    def ensure(self, obj: Mapping[str, Any]) -> None:
        """Start waiting for the guest if the instance's Ready waits on it and nobody does."""
        status = obj.get("status") or {}
        started = boot_started(status)
        if started is None or (self._boot == started and self._task is not None):
            return
        driver = self.driver_for(status["host"])
        if driver is None:
            return
        self._cancel_task()
        self._boot = started
        self._task = asyncio.create_task(
            self._watch(driver, status["host"], started), name=f"guest-{self.ref}"
        )

    async def cancel(self) -> None:
        task = self._cancel_task()
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _cancel_task(self) -> asyncio.Task | None:
        task, self._task, self._boot = self._task, None, None
        if task is not None:
            task.cancel()
        return task

    async def _watch(self, driver: ComputeDriver, host: str, started: str) -> None:
        elapsed = (now() - parse_time(started)).total_seconds()
        remaining = max(0.0, self.c.boot_timeout - elapsed)
        try:
            boot = await driver.wait_for_guest(self.uid, remaining)
        except GuestBootTimeout as err:
            message = (
                f"no sign that the guest OS is up within {self.c.boot_timeout:g}s of the VM "
                f"running on {host} (the VM stays ACTIVE): {err}"
            )
            await self._write(started, "False", GUEST_BOOT_TIMEOUT, message, None)
            self.emit(Reason.GUEST_BOOT_TIMEOUT, message)
            log.warning("%s: %s", self.ref, message)
            return
        except DriverError as err:  # the VM stopped or vanished: the power-state sync's turn
            log.info("%s: stopped waiting for the guest on %s: %s", self.ref, host, err)
            return
        except Exception:
            log.exception("%s: waiting for the guest on %s failed", self.ref, host)
            return
        message = f"the guest OS is up on {host} ({boot.signal}: {boot.detail})"
        await self._write(started, "True", GUEST_BOOTED, message, boot)
        self.emit(Reason.GUEST_BOOTED, message)
        log.info("%s: %s", self.ref, message)

    async def _write(
        self, started: str, ready: str, reason: str, message: str, boot: GuestBoot | None
    ) -> None:
        observed: list[dict[str, Any]] = []

        def derive(status: dict, patch: dict) -> None:
            if boot_started(status) != started:
                raise UnexpectedState(f"{self.ref} moved on from the boot of {started}")
            at = boot.at if boot else now()
            patch["conditions"] = with_condition(
                status.get("conditions"), READY, ready, reason, message, iso(at),
                status.get("observedGeneration"),
            )  # fmt: skip
            if boot is not None:
                patch.update(guestBootedAt=iso(boot.at), guestBootSignal=boot.signal.value)
                observed[:] = [status]

        try:
            obj = await self.c.writer.update(self.namespace, self.name, states.ACTIVE, derive)
        except UnexpectedState as err:
            log.info("%s: guest result dropped: %s", self.ref, err)
            return
        if boot is not None and observed and first_boot(observed[0]):
            created = parse_time(obj["metadata"]["creationTimestamp"])
            metrics.CREATE_TO_GUEST_BOOTED.observe(metrics.seconds_between(created, boot.at))
