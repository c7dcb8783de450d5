"""The build pipeline: one function per step, each ending in one status transition.

`drive()` reads where the instance is (its status) and runs steps until it is ACTIVE or ERROR,
so an operator restarted mid-build simply carries on from the last written state; the steps
are idempotent (claims are keyed by instance uid, spawn adopts a running VM).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import kopf

from kubenova import metrics
from kubenova.conductor import states
from kubenova.conductor.context import Conductor
from kubenova.conductor.states import State
from kubenova.conductor.status import iso, now, parse_time
from kubenova.image.cache import ImageError
from kubenova.models.v1alpha1.states import PowerState
from kubenova.scheduler.host_state import HostState, NodeSummary
from kubenova.scheduler.interface import NoValidHost, RequestSpec
from kubenova.scheduler.resources import Resources
from kubenova.virt.driver import DriverError, GuestMetadata, SpawnRequest

log = logging.getLogger("kubenova.conductor")
IMAGE_WAIT_SECONDS = 0.1


class BuildError(Exception):
    """A step failed. `reschedule`: the failure belongs to the host, another may succeed."""

    def __init__(
        self, message: str, code: int = 500, details: str = "", reschedule: bool = False
    ) -> None:
        super().__init__(message)
        self.code, self.details, self.reschedule = code, details, reschedule


@dataclass
class Caches:
    """The watch-fed indexes the pipeline reads instead of listing objects."""

    nodes: Mapping[str, Any]
    providers: Mapping[str, Any]
    flavors: Mapping[str, Any]
    images: Mapping[Any, Any]

    @staticmethod
    def one(index: Mapping[Any, Any], key: Any) -> Any:
        store = index.get(key)
        return next(iter(store), None) if store is not None else None


class Build:
    """One instance's walk through the build states."""

    def __init__(
        self,
        conductor: Conductor,
        body: Mapping[str, Any],
        caches: Caches,
        emit: Callable[[str, str, str], None],
    ) -> None:
        self.c = conductor
        self.caches = caches
        self.emit = emit
        meta = body["metadata"]
        self.namespace, self.name, self.uid = meta["namespace"], meta["name"], meta["uid"]
        self.ref = f"{self.namespace}/{self.name}"
        self.obj: dict[str, Any] = {
            "metadata": dict(meta),
            "spec": dict(body["spec"]),
            "status": dict(body.get("status") or {}),
        }

    @property
    def status(self) -> dict[str, Any]:
        return self.obj.get("status") or {}

    @property
    def state(self) -> State:
        return states.of_status(self.status)

    async def _move(self, target: State, reason: str, message: str, **fields: Any) -> None:
        self.obj = await self.c.writer.transition(
            self.namespace, self.name, self.state, target, message, fields
        )
        self.emit("Warning" if target == states.ERROR else "Normal", reason, message)
        log.info("%s: %s (%s)", self.ref, target, message)

    async def drive(self) -> None:
        steps = {
            states.NEW: self.accept,
            states.SCHEDULING: self.schedule,
            states.NETWORKING: self.network,
            states.BLOCK_DEVICE_MAPPING: self.map_block_devices,
            states.SPAWNING: self.spawn,
        }
        while (step := steps.get(self.state)) is not None:
            current = self.state
            try:
                await step()
            except BuildError as err:
                await self.fail(current, err)
            except states.UnexpectedState:
                self.obj = await self.c.objects.get("instances", self.name, self.namespace)

    # -- steps -------------------------------------------------------------------------------
    async def accept(self) -> None:
        await self._move(
            states.SCHEDULING,
            "Scheduling",
            "build requested; scheduling",
            powerState=PowerState.NOSTATE.value,
        )

    async def schedule(self) -> None:
        spec = self.obj["spec"]
        flavor = self.resolve_flavor(spec["flavor"])
        image = await self.resolve_image(spec["image"])
        request = Resources(flavor["vcpus"], flavor["ramMiB"], flavor.get("diskGiB", 0))
        if image["spec"].get("minRamMiB", 0) > flavor["ramMiB"]:
            raise BuildError(f"Flavor's memory is too small for image {spec['image']}", 400)
        if flavor.get("diskGiB", 0) and image["spec"].get("minDiskGiB", 0) > flavor["diskGiB"]:
            raise BuildError(f"Flavor's disk is too small for image {spec['image']}", 400)
        host = self.claimed_host()
        if host is None:
            tried = frozenset(a["host"] for a in self.status.get("attempts") or [])
            try:
                selection = await self.c.scheduler.select_destinations(
                    RequestSpec(
                        instance_uid=self.uid,
                        instance=self.ref,
                        resources=request,
                        availability_zone=spec.get("availabilityZone"),
                        image_properties=dict(image["spec"].get("properties") or {}),
                        extra_specs=dict(flavor.get("extraSpecs") or {}),
                        ignore_hosts=tried,
                    ),
                    self.host_states(),
                )
            except NoValidHost as err:
                raise BuildError(str(err), 500, details=self.attempts_text()) from err
            host = selection.host
        await self._move(states.NETWORKING, "Scheduled", f"claimed resources on {host}", host=host)

    async def network(self) -> None:
        if self.obj["spec"].get("networks"):
            raise BuildError(
                "this kubenova version cannot attach networks yet; remove spec.networks", 400
            )
        await self._move(states.BLOCK_DEVICE_MAPPING, "Networked", "no ports requested")

    async def map_block_devices(self) -> None:
        if self.obj["spec"].get("volumes"):
            raise BuildError(
                "this kubenova version cannot attach volumes yet; remove spec.volumes", 400
            )
        await self._move(states.SPAWNING, "BlockDevicesMapped", "root disk only")

    async def spawn(self) -> None:
        host_name = self.status.get("host")
        host = self.c.hosts.get(host_name or "")
        if host is None:
            raise BuildError(f"host {host_name} is not served by this operator", reschedule=True)
        spec = self.obj["spec"]
        flavor = self.resolve_flavor(spec["flavor"])
        image = await self.resolve_image(spec["image"])
        try:
            path = await self.c.image_cache.fetch(
                image["spec"]["source"], image["spec"]["checksum"]
            )
        except ImageError as err:
            raise BuildError(f"image {spec['image']}: {err}", 500) from err
        request = SpawnRequest(
            instance_id=self.uid,
            name=self.ref,
            vcpus=flavor["vcpus"],
            ram_mib=flavor["ramMiB"],
            disk_gib=flavor.get("diskGiB", 0),
            image_path=path,
            image_format=image["spec"].get("diskFormat", "qcow2"),
            metadata=GuestMetadata(
                instance_id=self.uid, hostname=self.name, user_data=spec.get("userData")
            ),
        )
        try:
            info = await host.driver.spawn(request, self.c.boot_timeout)
        except DriverError as err:
            raise BuildError(f"spawn on {host.name} failed: {err}", 500, reschedule=True) from err
        booted = now()
        created = parse_time(self.obj["metadata"]["creationTimestamp"])
        metrics.CREATE_TO_GUEST_BOOTED.observe(metrics.seconds_between(created, booted))
        await self._move(
            states.ACTIVE,
            "Active",
            f"guest booted on {host.name} ({info.details.get('accelerator', '?')})",
            powerState=PowerState.RUNNING.value,
            launchedAt=iso(booted),
        )

    # -- failure -----------------------------------------------------------------------------
    async def fail(self, step: State, err: BuildError) -> None:
        """Release the host and reschedule if that may help, else ERROR with a fault."""
        metrics.BUILD_FAILURES.labels(step.task.value if step.task else "none").inc()
        host = self.status.get("host")
        attempts = list(self.status.get("attempts") or [])
        if host:
            attempts.append({"host": host, "reason": str(err)[:4000], "time": iso(now())})
            await self.cleanup_host(host)
        if err.reschedule and host and len(attempts) < self.c.max_attempts:
            await self._move(
                states.SCHEDULING,
                "Rescheduling",
                f"build failed on {host}; rescheduling: {err}",
                host=None,
                attempts=attempts,
            )
            return
        fault = {
            "code": err.code,
            "message": str(err)[:1000],
            "time": iso(now()),
            "details": err.details or self.attempts_text(attempts),
        }
        await self._move(
            states.ERROR, "BuildFailed", str(err)[:1000], fault=fault, attempts=attempts, host=None
        )

    async def cleanup_host(self, host: str) -> None:
        compute = self.c.hosts.get(host)
        if compute is not None:
            await compute.driver.destroy(self.uid)
        await self.c.placement.release(host, self.uid)

    def attempts_text(self, attempts: list[dict] | None = None) -> str:
        attempts = attempts if attempts is not None else self.status.get("attempts") or []
        return "; ".join(f"{a['host']}: {a['reason']}" for a in attempts)

    # -- lookups (watch-fed caches) ----------------------------------------------------------
    def resolve_flavor(self, name: str) -> dict[str, Any]:
        flavor = Caches.one(self.caches.flavors, name)
        if flavor is None:
            raise BuildError(f"Flavor {name} could not be found", 404)
        return flavor

    async def resolve_image(self, name: str) -> dict[str, Any]:
        """The Image once active; waits while glance is still fetching and verifying it."""
        while True:
            image = Caches.one(self.caches.images, (self.namespace, name))
            if image is None:
                raise BuildError(f"Image {name} could not be found", 404)
            phase = (image.get("status") or {}).get("phase")
            if phase == "active":
                return image
            if phase == "killed":
                message = (image.get("status") or {}).get("message", "")
                raise BuildError(f"Image {name} is killed: {message}", 400)
            await asyncio.sleep(IMAGE_WAIT_SECONDS)

    def claimed_host(self) -> str | None:
        """A host already holding our claim (a restart between claim and status write)."""
        for node, store in self.caches.providers.items():
            for allocations in store:
                if self.uid in allocations:
                    return node
        return None

    def host_states(self) -> list[HostState]:
        hosts = []
        for name, store in self.caches.nodes.items():
            node: NodeSummary | None = next(iter(store), None)
            if node is None:
                continue
            used = Resources()
            for allocations in self.caches.providers.get(name, []):
                for alloc in allocations.values():
                    used = used + Resources.of_allocation(alloc)
            hosts.append(HostState.build(node, used, self.c.ratios))
        return hosts


def event_emitter(body: Mapping[str, Any]) -> Callable[[str, str, str], None]:
    def emit(type_: str, reason: str, message: str) -> None:
        kopf.event(body, type=type_, reason=reason, message=message[:1000])

    return emit
