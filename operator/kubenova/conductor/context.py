"""Everything the build pipeline talks to, assembled once at operator start-up."""

from __future__ import annotations

from dataclasses import dataclass, field

from kubenova.compute.registration import HostRegistration
from kubenova.conductor.status import StatusWriter
from kubenova.image.cache import ImageCache
from kubenova.kube.client import Objects
from kubenova.scheduler.host_state import AllocationRatios
from kubenova.scheduler.interface import Scheduler
from kubenova.scheduler.placement import Placement
from kubenova.virt.driver import ComputeDriver


@dataclass
class ComputeHost:
    """A compute host served by this process: its name (the Node's) and its hypervisor."""

    name: str
    driver: ComputeDriver
    registration: HostRegistration | None = None


@dataclass
class Conductor:
    objects: Objects
    writer: StatusWriter
    scheduler: Scheduler
    placement: Placement
    image_cache: ImageCache
    hosts: dict[str, ComputeHost] = field(default_factory=dict)
    ratios: AllocationRatios = field(default_factory=AllocationRatios)
    max_attempts: int = 3
    boot_timeout: float = 300.0
