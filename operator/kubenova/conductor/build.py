"""The build pipeline: one function per step, each ending in one status transition.

`drive()` reads where the instance is (its status) and runs steps until it is ACTIVE or ERROR,
so an operator restarted mid-build simply carries on from the last written state; the steps
are idempotent (claims are keyed by instance uid, spawn adopts a running VM).

Few writes (issue 13): a move is written when a step is about to do something that must find
it written after a restart or that a user waits on, not for every step. The moves of steps
with nothing to do or nothing a restart needs (the acceptance when nothing makes it wait, the
claim, no ports, no volumes) are kept and written with the next one, each with its own time in
phaseTransitionTimestamps (conditions and `kubectl get` columns stay true); the ports, the
volumes and the VM are only made once the state before them is written. A plain build is two
status writes: SCHEDULING → NETWORKING → BLOCK_DEVICE_MAPPING → SPAWNING before the VM is
started, then ACTIVE (with Ready, if the driver knows the guest up at once).
"""

from __future__ import annotations

import asyncio
import logging
from collections import ChainMap
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from kubenova import metrics
from kubenova.conductor import actionlog, states
from kubenova.conductor.context import Conductor
from kubenova.conductor.states import State
from kubenova.conductor.status import Derive, Hop, Seen, chain
from kubenova.image.cache import ImageError
from kubenova.kube.client import ApiException
from kubenova.kube.events import Reason
from kubenova.metadata.network_config import NicConfig, network_config
from kubenova.models.v1alpha1.states import PowerState
from kubenova.network.ipam import Subnet, port_name
from kubenova.network.ports import Owner, PortError
from kubenova.quota import QuotaExceeded, instance_usage
from kubenova.scheduler.host_state import HostState, host_states
from kubenova.scheduler.host_table import HostTable
from kubenova.scheduler.interface import NoValidHost, RequestSpec
from kubenova.scheduler.request import build_request_spec, resources_of
from kubenova.scheduler.resources import Resources
from kubenova.timestamps import iso, now, parse_time
from kubenova.virt.driver import (
    ComputeDriver,
    DriverError,
    GuestMetadata,
    NetworkInterface,
    SpawnRequest,
)
from kubenova.volume.attachments import AttachError, attached_to

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
    claims: Mapping[str, Any]
    """hosts holding a claim, by consumer (instance) uid"""
    flavors: Mapping[str, Any]
    images: Mapping[Any, Any]
    placements: Mapping[Any, Any]
    """instance placement by ("host", h), ("name", ns, name), ("group", ns, group)"""
    pods: Mapping[str, Any]
    """requests of ordinary pods by node name"""
    networks: Mapping[Any, Any]
    """Network name, uid and spec by (namespace, name)"""
    port_addresses: Mapping[Any, Any]
    """addresses held by Ports by (namespace, network)"""

    @classmethod
    def of_indexes(cls, indexes: Mapping[str, Any]) -> Caches:
        """From kopf's indexes by handler name (a handler's kwargs, or the startup's)."""
        return cls(
            nodes=indexes["nodes"],
            providers=indexes["providers"],
            claims=indexes["claims"],
            flavors=indexes["flavors"],
            images=indexes["images"],
            placements=indexes["placements"],
            pods=indexes["pods"],
            networks=indexes["network_specs"],
            port_addresses=indexes["port_addresses"],
        )

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
        emit: Callable[[Reason, str], None],
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
        # the moves made but not written yet (the next write carries them), with their fields,
        # derives and Events (posted once the status says it)
        self._hops: list[Hop] = []
        self._fields: dict[str, Any] = {}
        self._derives: list[Derive] = []
        self._events: list[tuple[Reason, str]] = []
        self.seen = Seen()
        """the versions self.obj has had (the Lifecycle after the build reads no event of them)"""
        self.seen.add(self.obj)

    @property
    def status(self) -> dict[str, Any]:
        """The status as written, with what the moves not written yet set."""
        return {**(self.obj.get("status") or {}), **self._fields}

    @property
    def state(self) -> State:
        if self._hops:
            return self._hops[-1].target
        return states.of_status(self.obj.get("status"))

    async def _move(
        self,
        target: State,
        reason: Reason | None,
        message: str,
        derive: Derive | None = None,
        later: bool = False,
        guest_up: bool = False,
        **fields: Any,
    ) -> None:
        """Move to `target`: written now with the moves kept so far, or (`later`) kept for the
        next write. An Event too unless `reason` is None (a step with nothing to do or one no
        user looks for: the status and the action log say it), posted once written."""
        self._hops.append(Hop(target, message, now()))
        self._fields.update(fields)
        if derive is not None:
            self._derives.append(derive)
        if reason is not None:
            self._events.append((reason, message))
        if not later:
            await self.flush(guest_up=guest_up)

    async def flush(self, guest_up: bool = False) -> None:
        """Write the moves kept so far, in one status write (nothing if there are none)."""
        if not self._hops:
            return
        *via, last = self._hops
        derives = list(self._derives)
        self.obj = await self.c.writer.transition(
            self.namespace,
            self.name,
            states.of_status(self.obj.get("status")),
            last.target,
            last.message,
            dict(self._fields),
            at=last.at,
            derive=chain(derives) if derives else None,
            known=self.obj,
            via=via,
            guest_up=guest_up,
        )
        self.seen.add(self.obj)
        events, hops = self._events, self._hops
        self._forget()
        for reason, message in events:
            self.emit(reason, message)
        for hop in hops:
            log.info("%s: %s (%s)", self.ref, hop.target, hop.message)

    def _forget(self) -> None:
        """Drop the moves not written (their base moved on: the steps are taken again)."""
        self._hops, self._fields, self._derives, self._events = [], {}, [], []

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
                self._forget()
                self.obj = await self.c.objects.get("instances", self.name, self.namespace)
                self.seen.add(self.obj)
            except (TimeoutError, ApiException, aiohttp.ClientError):
                raise  # the API is unreachable or refusing: kopf retries the daemon later
            except Exception as err:  # a bug or an unforeseen failure: as Nova, fault + retry
                log.exception("%s: unexpected error in %s", self.ref, current)
                await self.fail(
                    current, BuildError(f"unexpected error: {err!r}", 500, reschedule=True)
                )

    # -- steps -------------------------------------------------------------------------------
    async def accept(self) -> None:
        """Count the instance against its namespace's quota (Nova's recheck: the webhook saw
        the usage before concurrent creates), then start scheduling. Keyed by uid, so a
        restart that repeats this step finds its reservation. Written with the scheduling
        decision, unless the build has to wait first (an Image not active yet, another
        member of its server group being decided): then at once, so the wait shows."""
        flavor = self.resolve_flavor(self.obj["spec"]["flavor"])
        usage = instance_usage(flavor)
        try:
            await self.c.quotas.reserve(
                self.namespace, self.uid, usage, kind="Instance", name=self.name
            )
        except QuotaExceeded as err:
            raise BuildError(str(err), 403) from err
        await self._move(
            states.SCHEDULING,
            None,  # the next Event, Scheduled, says where it went
            "build requested; scheduling",
            # the action log's `create` (conductor/actionlog.py); the build boots the guest, so
            # the power state it takes up is Running (a Stopped spec is a stop once ACTIVE)
            derive=actionlog.create_started(
                parse_time(self.obj["metadata"]["creationTimestamp"]), now()
            ),
            later=True,
            powerState=PowerState.NOSTATE.value,
            observedPowerState="Running",
            quotaUsage=usage.to_api(),  # what it counts from now on (quota/counter.py)
        )

    async def schedule(self) -> None:
        spec = self.obj["spec"]
        flavor = self.resolve_flavor(spec["flavor"])
        image = await self.resolve_image(spec["image"])
        request = resources_of(flavor)
        if image["spec"].get("minRamMiB", 0) > flavor["ramMiB"]:
            raise BuildError(f"Flavor's memory is too small for image {spec['image']}", 400)
        if flavor.get("diskGiB", 0) and image["spec"].get("minDiskGiB", 0) > flavor["diskGiB"]:
            raise BuildError(f"Flavor's disk is too small for image {spec['image']}", 400)
        host, alternates = self.claimed_host(), list(self.status.get("alternates") or [])
        if host is None and self.status.get("attempts"):
            host, alternates = await self.claim_alternate(request, alternates)
        if host is not None:
            await self._scheduled(host, alternates)
            return
        group = (spec.get("schedulerHints") or {}).get("group")
        # Members of one server group are decided one at a time, each seeing where the
        # previous ones went (Nova closes this race with a late check on the compute host).
        lock = self.c.group_lock(self.namespace, group)
        if isinstance(lock, asyncio.Lock) and lock.locked():
            await self.flush()  # it waits for the other member: show it SCHEDULING meanwhile
        async with lock:
            wanted = await self.request_spec(flavor, image, group)
            try:
                async with self.c.decisions:  # the table taken only once it is our turn
                    selection = await self.c.scheduler.select_destinations(
                        wanted, self.host_table()
                    )
            except NoValidHost as err:
                raise BuildError(str(err), 500, details=self.attempts_text()) from err
            await self._scheduled(selection.host, list(selection.alternates))
            if group:
                # written before the next member decides: it finds the members' hosts in
                # their status (request_spec), and a move kept for later is in none
                await self.flush()

    async def _scheduled(self, host: str, alternates: list[str]) -> None:
        """Written with the next step's move: the claim, keyed by uid, is found again after a
        restart (claimed_host); the Active Event names the host."""
        await self._move(
            states.NETWORKING,
            None,
            f"claimed resources on {host}",
            later=True,
            host=host,
            alternates=alternates,
        )

    async def claim_alternate(self, request: Resources, alternates: list[str]):
        """A reschedule goes to the decision's next alternate, as Nova's conductor does."""
        table = self.host_table()
        for index, name in enumerate(alternates):
            capacity = table.capacity_of(name)
            if capacity is not None and await self.c.placement.claim(
                name, self.uid, self.ref, request, capacity
            ):
                return name, alternates[index + 1 :]
        raise BuildError(
            f"Exhausted all hosts available for retrying build failures for {self.ref}",
            500,
            details=self.attempts_text(),
        )

    async def request_spec(self, flavor: dict, image: dict, group_name: str | None) -> RequestSpec:
        placements: Mapping[Any, Any] = self.caches.placements
        group = None
        if group_name:
            group = await self.fetch("servergroups", "ServerGroup", group_name)
            # Fresh from the API, not the cache: the previous member's host may be milliseconds old.
            members = [
                (i["metadata"]["uid"], i["status"]["host"])
                for i in await self.c.objects.list("instances", self.namespace)
                if (i["spec"].get("schedulerHints") or {}).get("group") == group_name
                and (i.get("status") or {}).get("host")
            ]
            placements = ChainMap({("group", self.namespace, group_name): members}, placements)
        return build_request_spec(self.obj, flavor, image["spec"], group, placements)

    async def network(self) -> None:
        """One Port per requested network (neutron's allocate_for_instance)."""
        requests = self.obj["spec"].get("networks") or []
        if not requests:
            await self._move(
                states.BLOCK_DEVICE_MAPPING, None, "no ports requested", later=True, addresses=[]
            )
            return
        await self.flush()  # the host written before ports are made for it
        owner = Owner(self.namespace, self.name, self.uid)
        existing = await self.c.ports.of_instance(owner)
        allocations = []
        for request in requests:
            network = self.resolve_network(request["network"])
            held = self.caches.port_addresses.get((self.namespace, request["network"])) or ()
            try:
                allocation = await self.c.ports.allocate(
                    owner, network, request.get("fixedIp"), set(held), existing
                )
            except PortError as err:
                raise BuildError(str(err), err.code) from err
            allocations.append(allocation)
        host = self.status.get("host")
        for allocation in allocations:
            await self.c.ports.set_phase(allocation.port, self.namespace, "BUILD", host)
        addresses = [{"network": a.network, "ip": a.ip, "mac": a.mac} for a in allocations]
        await self._move(
            states.BLOCK_DEVICE_MAPPING,
            Reason.NETWORKED,
            "ports allocated: " + ", ".join(f"{a.ip} on {a.network}" for a in allocations),
            later=True,
            addresses=addresses,
        )

    async def map_block_devices(self) -> None:
        """Attach the requested volumes (cinder's reserve + attach, one CAS per volume)."""
        names = [v["volume"] for v in self.obj["spec"].get("volumes") or []]
        host = self.status.get("host") or ""
        if names:
            await self.flush()  # the addresses written before volumes are attached
        for name in names:
            try:
                await self.c.attachments.attach(self.namespace, name, self.name, self.uid, host)
            except AttachError as err:
                raise BuildError(str(err), err.code) from err
        message = f"attached volumes {', '.join(names)}" if names else "root disk only"
        reason = Reason.BLOCK_DEVICES_MAPPED if names else None
        await self._move(states.SPAWNING, reason, message, later=True)

    async def spawn(self) -> None:
        """Boot the VM; ACTIVE once the hypervisor runs it (the guest watch, guest.py, then
        waits for the guest OS: condition Ready). Each Port's status says where it is plugged,
        ACTIVE once its tap is up (Nova's network-vif-plugged)."""
        await self.flush()  # SPAWNING, the host and the addresses written before the VM starts
        host = self.status.get("host") or ""
        driver = self.driver_on(host)
        if driver is None:
            raise BuildError(f"host {host} is not served by this operator", reschedule=True)
        ports = await self.verify_holdings(host)
        request = await self.spawn_request(driver, ports)
        try:
            info = await driver.spawn(request, self.c.start_timeout)
        except DriverError as err:
            raise BuildError(f"spawn on {host} failed: {err}", 500, reschedule=True) from err
        running = now()
        self.c.failed_builds.pop(host, None)
        vifs = {vif.port: vif for vif in info.vifs}
        for address in self.status.get("addresses") or []:
            port = port_name(address["network"], address["ip"])
            vif = vifs.get(port)
            phase = "ACTIVE" if vif is None or vif.up else "BUILD"
            await self.c.ports.set_phase(port, self.namespace, phase, host, vif)
        message = f"the VM runs on {host} ({info.details.get('accelerator', '?')})"
        guest: dict[str, Any] = {}
        if info.guest is not None:  # up already: Ready in the same write (driver.InstanceInfo)
            booted = max(info.guest.at, running)
            guest = {"guestBootedAt": iso(booted), "guestBootSignal": info.guest.signal.value}
            message += f"; the guest OS is up ({info.guest.signal.value}: {info.guest.detail})"
        await self._move(
            states.ACTIVE,
            Reason.ACTIVE,
            message,
            derive=actionlog.create_finished(actionlog.SUCCESS, message, running),
            guest_up=info.guest is not None,
            powerState=PowerState.RUNNING.value,
            launchedAt=iso(running),
            alternates=None,
            **guest,
        )
        if info.guest is not None:
            created = parse_time(self.obj["metadata"]["creationTimestamp"])
            metrics.CREATE_TO_GUEST_BOOTED.observe(metrics.seconds_between(created, booted))

    async def verify_holdings(self, host: str) -> list[dict[str, Any]]:
        """Before a VM is started: the claim on `host` and the ports in status still exist.

        A resumed build can find them given back: an operator killed in the middle of
        `fail()` (the host's claim released, the ports deleted, the reschedule not yet
        written) resumes the failed step on the same host. Without its claim the VM would run
        uncounted; without its ports its addresses could be handed out again. The claim is
        taken again if it still fits (placement claims are idempotent); missing ports send
        the build to the next host, where the network step allocates afresh (and a detached
        volume is attached again).
        """
        if not self.holds_claim(host):
            flavor = self.resolve_flavor(self.obj["spec"]["flavor"])
            capacity = self.host_table().capacity_of(host)
            if capacity is None or not await self.c.placement.claim(
                host, self.uid, self.ref, resources_of(flavor), capacity
            ):
                raise BuildError(
                    f"the claim on {host} was released and no longer fits", reschedule=True
                )
            log.warning("%s: claimed %s again (its claim had been released)", self.ref, host)
        addresses = self.status.get("addresses") or []
        ports: list[dict[str, Any]] = []
        if addresses:
            ports = await self.c.ports.of_instance(Owner(self.namespace, self.name, self.uid))
            held = {p["spec"]["ipAddress"] for p in ports}
            missing = [a["ip"] for a in addresses if a["ip"] not in held]
            if missing:
                raise BuildError(
                    f"the ports of {', '.join(missing)} were released; allocating afresh",
                    reschedule=True,
                )
        for name in [v["volume"] for v in self.obj["spec"].get("volumes") or []]:
            volume = await self.c.objects.find("volumes", name, self.namespace)
            if volume is not None and not attached_to(volume, self.uid):
                raise BuildError(f"Volume {name} was detached; attaching afresh", reschedule=True)
        return ports

    async def spawn_request(
        self, driver: ComputeDriver, ports: list[dict[str, Any]] | None = None
    ) -> SpawnRequest:
        """What `driver` needs to boot this instance (the image fetched into the local cache
        first when the driver boots from it). `ports`: the instance's Ports if just read (else
        they are listed). Also used to spawn a lost VM again when its host returns
        (conductor/hosts.py)."""
        spec = self.obj["spec"]
        flavor = self.resolve_flavor(spec["flavor"])
        image = await self.resolve_image(spec["image"])
        path = None
        if driver.uses_local_image_cache:
            try:
                path = await self.c.image_cache.fetch(
                    image["spec"]["source"], image["spec"]["checksum"]
                )
            except ImageError as err:
                raise BuildError(f"image {spec['image']}: {err}", 500) from err
        return SpawnRequest(
            instance_id=self.uid,
            name=self.ref,
            vcpus=flavor["vcpus"],
            ram_mib=flavor["ramMiB"],
            disk_gib=flavor.get("diskGiB", 0),
            image_path=path,
            image_format=image["spec"].get("diskFormat", "qcow2"),
            image_source=image["spec"]["source"],
            image_checksum=image["spec"]["checksum"],
            image_properties=dict(image["spec"].get("properties") or {}),
            metadata=await self.guest_metadata(dhcp=driver.serves_dhcp),
            interfaces=await self.interfaces(ports),
            volumes=await self.attached_volume_paths(),
        )

    async def interfaces(
        self, listed: list[dict[str, Any]] | None = None
    ) -> tuple[NetworkInterface, ...]:
        """The NICs of the ports in status, with their Network and Port for the datapath."""
        addresses = self.status.get("addresses") or []
        if not addresses:
            return ()
        if listed is None:
            listed = await self.c.ports.of_instance(Owner(self.namespace, self.name, self.uid))
        ports = {p["metadata"]["name"]: p for p in listed}
        nics = []
        for address in addresses:
            network = self.resolve_network(address["network"])
            spec = network["spec"]
            port = ports.get(port_name(address["network"], address["ip"]))
            nics.append(
                NetworkInterface(
                    mac=address["mac"],
                    ip=address["ip"],
                    network=address["network"],
                    network_uid=network["metadata"]["uid"],
                    port=port["metadata"]["name"] if port else None,
                    port_uid=port["metadata"]["uid"] if port else None,
                    cidr=spec["cidr"],
                    gateway=spec.get("gateway"),
                    dns_servers=tuple(spec.get("dnsServers") or ()),
                    mtu=spec.get("mtu"),
                )
            )
        return tuple(nics)

    async def guest_metadata(self, dhcp: bool = False) -> GuestMetadata:
        """What the metadata service would serve: hostname, keys, user-data, network (`dhcp`:
        the host's DHCP server hands out the Ports' addresses)."""
        spec = self.obj["spec"]
        keys: tuple[str, ...] = ()
        if spec.get("keyName"):
            keys = (await self.resolve_keypair(spec["keyName"]),)
        nics = []
        for address in self.status.get("addresses") or []:
            network = self.resolve_network(address["network"])["spec"]
            nics.append(
                NicConfig(
                    mac=address["mac"],
                    address=address["ip"],
                    prefix=Subnet.of_spec(network).prefix,
                    gateway=network.get("gateway"),
                    dns_servers=tuple(network.get("dnsServers") or ()),
                    mtu=network.get("mtu"),
                    dhcp=dhcp,
                )
            )
        return GuestMetadata(
            instance_id=self.uid,
            hostname=self.name,
            user_data=spec.get("userData"),
            public_keys=keys,
            network_config=network_config(nics),
        )

    async def attached_volume_paths(self) -> tuple[Path, ...]:
        paths = []
        for attachment in self.obj["spec"].get("volumes") or []:
            name = attachment["volume"]
            volume = await self.fetch("volumes", "Volume", name)
            if not attached_to(volume, self.uid):
                raise BuildError(f"Volume {name} is no longer attached to {self.name}", 409)
            path = self.c.volumes.path(volume["metadata"]["uid"])
            if not path.is_file():
                raise BuildError(f"Volume {name} has no disk on the backend ({path})", 500)
            paths.append(path)
        return tuple(paths)

    # -- failure -----------------------------------------------------------------------------
    async def fail(self, step: State, err: BuildError) -> None:
        """Release the host; go on to an alternate if that may help, else ERROR with a fault."""
        metrics.BUILD_FAILURES.labels(step.task.value if step.task else "none").inc()
        host = self.status.get("host")
        attempts = list(self.status.get("attempts") or [])
        if host:
            attempts.append({"host": host, "reason": str(err)[:4000], "time": iso(now())})
            self.c.failed_builds[host] += 1
            await self.cleanup_host(host)
        # Ports and volumes go back once the VM is gone: a reschedule allocates afresh, an
        # instance in ERROR holds nothing.
        await self.c.release_tenant_resources(self.namespace, self.name, self.uid, self.obj["spec"])
        alternates = self.status.get("alternates") or []
        if (
            err.reschedule
            and host
            and alternates
            and len(attempts) < self.c.scheduling.max_attempts
        ):
            metrics.RESCHEDULES.inc()
            await self._move(
                states.SCHEDULING,
                Reason.RESCHEDULING,
                f"build failed on {host}; trying {alternates[0]}: {err}",
                host=None,
                attempts=attempts,
                addresses=[],
            )
            return
        details = err.details or self.attempts_text(attempts)
        fault = {
            "code": err.code,
            "message": str(err)[:1000],
            "time": iso(now()),
            "details": details[:32000],
        }
        await self._move(
            states.ERROR,
            Reason.BUILD_FAILED,
            str(err)[:1000],
            derive=actionlog.create_finished(actionlog.ERROR, str(err), now()),
            fault=fault,
            attempts=attempts,
            host=None,
            alternates=None,
            addresses=[],
        )

    async def cleanup_host(self, host: str) -> None:
        driver = self.driver_on(host)
        if driver is not None:
            await driver.destroy(self.uid)
        await self.c.placement.release(host, self.uid)

    def attempts_text(self, attempts: list[dict] | None = None) -> str:
        attempts = attempts if attempts is not None else self.status.get("attempts") or []
        return "; ".join(f"{a['host']}: {a['reason']}" for a in attempts)

    # -- lookups (watch-fed caches) ----------------------------------------------------------
    def driver_on(self, host: str) -> ComputeDriver | None:
        node = Caches.one(self.caches.nodes, host)
        return self.c.hosts.driver_for(host, node.labels if node else None)

    def resolve_flavor(self, name: str) -> dict[str, Any]:
        flavor = Caches.one(self.caches.flavors, name)
        if flavor is None:
            raise BuildError(f"Flavor {name} could not be found", 404)
        return flavor

    def resolve_network(self, name: str) -> dict[str, Any]:
        network = Caches.one(self.caches.networks, (self.namespace, name))
        if network is None:
            raise BuildError(f"Network {name} could not be found", 404)
        return network

    async def resolve_keypair(self, name: str) -> str:
        return (await self.fetch("keypairs", "Keypair", name))["spec"]["publicKey"]

    async def fetch(self, plural: str, kind: str, name: str) -> dict[str, Any]:
        """A fresh read of an object the instance refers to; Nova's 404 fault if missing."""
        obj = await self.c.objects.find(plural, name, self.namespace)
        if obj is None:
            raise BuildError(f"{kind} {name} could not be found", 404)
        return obj

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
            await self.flush()  # the acceptance shows while the image is imported
            await asyncio.sleep(IMAGE_WAIT_SECONDS)

    def claimed_host(self) -> str | None:
        """A host already holding our claim (a restart between claim and status write; or a
        status write that failed after the claim, e.g. the apiserver restarting: then only
        this process's own record knows it until the watch delivers it)."""
        host = Caches.one(self.caches.claims, self.uid)
        if host is None:
            own = self.c.placement.own_claims.items()
            host = next((node for node, mine in own if self.uid in mine), None)
        return host

    def holds_claim(self, host: str) -> bool:
        indexed = tuple(self.caches.claims.get(self.uid) or ())
        return host in indexed or self.uid in (self.c.placement.own_claims.get(host) or {})

    def host_table(self) -> HostTable:
        """The hosts for a decision: from the host cache once it has caught up with the
        indexes, else rebuilt from them (the operator's first moments)."""
        cache, caches = self.c.host_cache, self.caches
        if cache.caught_up(caches.nodes, caches.providers, caches.pods, caches.placements):
            return cache.table(self.c.placement.own_claims, self.c.failed_builds, self.c.hosts_down)
        return HostTable.of_hosts(self.host_states())

    def host_states(self) -> list[HostState]:
        return host_states(
            self.caches.nodes,
            self.caches.providers,
            self.caches.pods,
            self.caches.placements,
            self.c.scheduling.ratios,
            self.c.failed_builds,
            self.c.placement.own_claims,
            self.c.hosts_down,
        )
