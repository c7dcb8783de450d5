"""Everything the build pipeline talks to, assembled once at operator start-up."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any

from kubenova.compute.registration import HostRegistration
from kubenova.conductor.status import StatusWriter
from kubenova.config import OperatorConfig
from kubenova.image.cache import ImageCache
from kubenova.kube.client import Objects
from kubenova.kube.connections import CLIENT_CONNECTIONS
from kubenova.network.datapath import Datapath
from kubenova.network.ports import Owner, Ports
from kubenova.quota.quotas import Quotas
from kubenova.scheduler.config import SchedulerConfig
from kubenova.scheduler.host_cache import HostCache
from kubenova.scheduler.host_state import AllocationRatios
from kubenova.scheduler.interface import Scheduler
from kubenova.scheduler.placement import Placement
from kubenova.virt.driver import ComputeDriver
from kubenova.virt.fake import FakeDriver
from kubenova.virt.kubevirt import KubeVirtDriver, KubeVirtOptions
from kubenova.virt.pod import PodDriver, PodOptions
from kubenova.volume.attachments import Attachments
from kubenova.volume.backend import VolumeBackend

#: a Node label that makes the FakeDriver fail there (failure injection): `spawn` every spawn,
#: `power` every stop, start and reboot, `guest` a guest that never shows it is up
FAKE_FAIL_LABEL = "compute.kubenova.io/fake-fail"


@dataclass
class ComputeHost:
    """A compute host served by this process: its name (the Node's) and its hypervisor."""

    name: str
    driver: ComputeDriver
    registration: HostRegistration | None = None


DriverFactory = Callable[[str, Mapping[str, str]], ComputeDriver]
"""Makes the driver of one compute Node from its name and labels."""


def fake_driver(host: str, labels: Mapping[str, str]) -> ComputeDriver:
    failing = labels.get(FAKE_FAIL_LABEL)
    return FakeDriver(
        host,
        fail_spawn=failing == "spawn",
        fail_power=failing == "power",
        silent_guest=failing == "guest",
    )


def cluster_driver_for(config: OperatorConfig, api: Any) -> DriverFactory | None:
    """The factory of `config.driver`'s per-host drivers when it serves every compute Node
    (pod, kubevirt: one per host, sharing the API client `api`); None for the others."""
    if config.driver == "pod":
        pod = PodOptions(
            image=config.pod_image,
            namespace=config.vm_namespace,
            disk=config.pod_disk,
            storage_class_name=config.pod_storage_class,
            cpu_allocation_ratio=config.scheduler.cpu_allocation_ratio,
            ram_allocation_ratio=config.scheduler.ram_allocation_ratio,
        )
        return lambda host, _labels: PodDriver(api, host, pod)
    if config.driver == "kubevirt":
        kubevirt = KubeVirtOptions(
            namespace=config.vm_namespace, container_disk=config.kubevirt_container_disk
        )
        return lambda host, _labels: KubeVirtDriver(api, host, kubevirt)
    return None


@dataclass
class ComputeHosts:
    """The hosts this operator can build on.

    `local` holds the embedded hosts this process registered, and every other host it has
    served so far. A *cluster driver* serves every compute Node: `cluster_driver(host, labels)`
    makes that host's driver the first time the host is needed (one per host, bound to its
    name; the pod and KubeVirt drivers share one API client). With `fake_everywhere` the
    cluster driver is Nova's FakeDriver (scale tests and benchmarks: thousands of Node objects,
    no VMs). Embedded hosts keep their own driver either way.
    """

    local: dict[str, ComputeHost] = field(default_factory=dict)
    fake_everywhere: bool = False
    cluster_driver: DriverFactory | None = None

    def driver_for(self, host: str, labels: dict[str, str] | None = None) -> ComputeDriver | None:
        compute = self.local.get(host)
        factory = self.cluster_driver or (fake_driver if self.fake_everywhere else None)
        if compute is None and factory is not None:
            compute = self.local[host] = ComputeHost(host, factory(host, labels or {}))
        return compute.driver if compute else None

    def serving(self, host: str) -> ComputeDriver | None:
        """The driver that may hold a VM on `host`, for cleaning up. A cluster driver's VMs are
        Kubernetes objects that outlive this process, so its hosts always have one; a
        FakeDriver's VMs live in its memory, so a host it has not served holds none."""
        if host in self.local:
            return self.local[host].driver
        return self.driver_for(host) if self.cluster_driver is not None else None


CONCURRENT_DECISIONS = CLIENT_CONNECTIONS
"""As many as the client has connections for their claims (kube/connections.py)."""


@dataclass
class Conductor:
    objects: Objects
    writer: StatusWriter
    scheduler: Scheduler
    placement: Placement
    image_cache: ImageCache
    ports: Ports
    attachments: Attachments
    volumes: VolumeBackend
    quotas: Quotas
    hosts: ComputeHosts = field(default_factory=ComputeHosts)
    datapath: Datapath | None = None
    """The embedded QEMU hosts' tenant datapath (None: no embedded QEMU host, or the start
    probe found it cannot run here); the Network agent and the audit use it too."""
    scheduling: SchedulerConfig = field(default_factory=SchedulerConfig)
    start_timeout: float = 120.0
    """Seconds spawn, start and reboot wait for the VM to run (else the build fails)."""
    boot_timeout: float = 300.0
    """Seconds the Ready condition waits for a sign that the guest OS is up."""
    failed_builds: Counter[str] = field(default_factory=Counter)
    """Recent build failures per host (BuildFailureWeigher); a success there resets it."""
    hosts_down: dict[str, str] = field(default_factory=dict)
    """Hosts whose heartbeat stopped, with why (conductor/hosts.py keeps it; ComputeFilter)."""
    host_cache: HostCache = field(default_factory=lambda: HostCache(AllocationRatios()))
    """The scheduler's host state, kept from watch events (handlers/host_cache.py)."""
    decisions: asyncio.Semaphore = field(
        default_factory=lambda: asyncio.Semaphore(CONCURRENT_DECISIONS)
    )
    """Decisions under way at once, each from its host table to its claim written (the
    others wait before taking a table: 10,000 builds at once held 10,000 tables, 3 GiB)."""
    _group_locks: dict[tuple[str, str], asyncio.Lock] = field(default_factory=dict)

    async def release_tenant_resources(
        self, namespace: str, name: str, uid: str, spec: Mapping[str, Any]
    ) -> tuple[list[str], list[str]]:
        """Free the instance's ports and detach its volumes (neutron's deallocate and cinder's
        detach); idempotent. Returns the freed addresses and the detached volumes."""
        addresses = await self.ports.release(Owner(namespace, name, uid))
        detached = [
            v["volume"]
            for v in spec.get("volumes") or []
            if await self.attachments.detach(namespace, v["volume"], uid)
        ]
        return addresses, detached

    def group_lock(self, namespace: str, group: str | None) -> AbstractAsyncContextManager:
        """Serialises the decisions of one server group's members in this process."""
        if group is None:
            return contextlib.nullcontext()
        return self._group_locks.setdefault((namespace, group), asyncio.Lock())
