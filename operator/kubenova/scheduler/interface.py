"""What the conductor asks the scheduler, and what it gets back."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from kubenova.scheduler.host_state import HostState
from kubenova.scheduler.resources import Resources


@dataclass(frozen=True)
class RequestSpec:
    """Nova's RequestSpec, reduced to what the filters read."""

    instance_uid: str
    instance: str  # namespace/name
    resources: Resources
    availability_zone: str | None = None
    image_properties: dict[str, str] = field(default_factory=dict)
    extra_specs: dict[str, str] = field(default_factory=dict)
    ignore_hosts: frozenset[str] = frozenset()
    """Hosts already tried (reschedule): never chosen again."""
    group_policy: str | None = None
    """The server group's policy: affinity, anti-affinity, soft-affinity, soft-anti-affinity."""
    group_max_per_host: int = 1
    """anti-affinity's rules.maxServerPerHost."""
    group_hosts: Mapping[str, int] = field(default_factory=dict)
    """Host -> how many other members of the group it already holds."""
    same_host: frozenset[str] | None = None
    """Hosts of the instances in schedulerHints.sameHost (None: no such hint)."""
    different_host: frozenset[str] = frozenset()
    """Hosts of the instances in schedulerHints.differentHost."""


@dataclass(frozen=True)
class Selection:
    """The claimed host and the alternates to try if the build fails there."""

    host: str
    alternates: tuple[str, ...] = ()


class NoValidHost(Exception):
    """No host passed the filters or every claim failed; the message says why."""


class Scheduler(Protocol):
    async def select_destinations(self, spec: RequestSpec, hosts: list[HostState]) -> Selection: ...
