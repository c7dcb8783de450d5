"""HostState: what the scheduler knows of one Node, built from the watch-fed caches."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kubernetes.utils.quantity import parse_quantity

from kubenova.scheduler.resources import Resources

ZONE_LABEL = "topology.kubernetes.io/zone"
MIB = 1024 * 1024
GIB = 1024 * MIB


@dataclass(frozen=True)
class AllocationRatios:
    """Nova's initial allocation ratios as of today."""

    cpu: float = 4.0
    ram: float = 1.0
    disk: float = 1.0


@dataclass(frozen=True)
class NodeSummary:
    """The parts of a Node the scheduler reads; what the node index stores."""

    name: str
    allocatable: Resources
    labels: dict[str, str] = field(default_factory=dict)
    ready: bool = False
    unschedulable: bool = False
    taints: tuple[str, ...] = ()

    @classmethod
    def of_node(cls, body: dict[str, Any]) -> NodeSummary:
        status = body.get("status") or {}
        alloc = status.get("allocatable") or status.get("capacity") or {}
        conditions = status.get("conditions") or []
        return cls(
            name=body["metadata"]["name"],
            allocatable=Resources(
                float(parse_quantity(alloc.get("cpu", "0"))),
                float(parse_quantity(alloc.get("memory", "0"))) / MIB,
                float(parse_quantity(alloc.get("ephemeral-storage", "0"))) / GIB,
            ),
            labels=dict(body["metadata"].get("labels") or {}),
            ready=any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions),
            unschedulable=bool((body.get("spec") or {}).get("unschedulable")),
            taints=tuple(
                f"{t.get('key')}:{t.get('effect')}"
                for t in (body.get("spec") or {}).get("taints") or []
            ),
        )


@dataclass(frozen=True)
class HostState:
    node: NodeSummary
    capacity: Resources  # allocatable x allocation ratios
    used: Resources

    @property
    def name(self) -> str:
        return self.node.name

    @property
    def free(self) -> Resources:
        return self.capacity - self.used

    @property
    def zone(self) -> str | None:
        return self.node.labels.get(ZONE_LABEL)

    @classmethod
    def build(cls, node: NodeSummary, used: Resources, ratios: AllocationRatios) -> HostState:
        a = node.allocatable
        capacity = Resources(a.vcpus * ratios.cpu, a.ram_mib * ratios.ram, a.disk_gib * ratios.disk)
        return cls(node, capacity, used)
