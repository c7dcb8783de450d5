"""Unit tests of the filter scheduler's pure parts, and the hosts and requests they share."""

from __future__ import annotations

from dataclasses import replace

from kubenova.scheduler.host_state import AllocationRatios, HostState, NodeSummary
from kubenova.scheduler.interface import RequestSpec
from kubenova.scheduler.resources import Resources

NODE_SIZE = Resources(4, 8192, 100)
NOTHING = Resources()
BASE_SPEC = RequestSpec("uid-1", "ns/vm", Resources(1, 512, 10))


def host(
    name: str = "n1",
    allocatable: Resources = NODE_SIZE,
    used: Resources = NOTHING,
    labels: dict[str, str] | None = None,
    ready: bool = True,
    unschedulable: bool = False,
    taints: tuple[str, ...] = (),
    io_ops: int = 0,
    failed_builds: int = 0,
) -> HostState:
    """A host with Nova's initial ratios (cpu 4.0): 4 vcpus allocatable are 16 schedulable."""
    node = NodeSummary(name, allocatable, labels or {}, ready, unschedulable, taints)
    return HostState.build(
        node, used, AllocationRatios(), io_ops=io_ops, failed_builds=failed_builds
    )


def spec(**changes: object) -> RequestSpec:
    """A 1 vcpu / 512 MiB / 10 GiB request with the given fields changed."""
    return replace(BASE_SPEC, **changes)
