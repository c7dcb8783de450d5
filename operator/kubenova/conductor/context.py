"""Everything the build pipeline talks to, assembled once at operator start-up."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field

from kubenova.compute.registration import HostRegistration
from kubenova.conductor.status import StatusWriter
from kubenova.image.cache import ImageCache
from kubenova.kube.client import Objects
from kubenova.scheduler.config import SchedulerConfig
from kubenova.scheduler.interface import Scheduler
from kubenova.scheduler.placement import Placement
from kubenova.virt.driver import ComputeDriver
from kubenova.virt.fake import FakeDriver

#: a Node label that makes the FakeDriver fail every spawn there (failure injection)
FAKE_FAIL_LABEL = "compute.kubenova.io/fake-fail"


@dataclass
class ComputeHost:
    """A compute host served by this process: its name (the Node's) and its hypervisor."""

    name: str
    driver: ComputeDriver
    registration: HostRegistration | None = None


@dataclass
class ComputeHosts:
    """The hosts this operator can build on. With `fake_everywhere`, every compute Node is
    served by a FakeDriver (scale tests and benchmarks: thousands of Node objects, no VMs)."""

    local: dict[str, ComputeHost] = field(default_factory=dict)
    fake_everywhere: bool = False

    def driver_for(self, host: str, labels: dict[str, str] | None = None) -> ComputeDriver | None:
        compute = self.local.get(host)
        if compute is None and self.fake_everywhere:
            fail = (labels or {}).get(FAKE_FAIL_LABEL) == "spawn"
            compute = self.local[host] = ComputeHost(host, FakeDriver(host, fail_spawn=fail))
        return compute.driver if compute else None


@dataclass
class Conductor:
    objects: Objects
    writer: StatusWriter
    scheduler: Scheduler
    placement: Placement
    image_cache: ImageCache
    hosts: ComputeHosts = field(default_factory=ComputeHosts)
    scheduling: SchedulerConfig = field(default_factory=SchedulerConfig)
    boot_timeout: float = 300.0
    failed_builds: Counter[str] = field(default_factory=Counter)
    """Recent build failures per host (BuildFailureWeigher); a success there resets it."""
    _group_locks: dict[tuple[str, str], asyncio.Lock] = field(default_factory=dict)

    def group_lock(self, namespace: str, group: str | None) -> AbstractAsyncContextManager:
        """Serialises the decisions of one server group's members in this process."""
        if group is None:
            return contextlib.nullcontext()
        return self._group_locks.setdefault((namespace, group), asyncio.Lock())
