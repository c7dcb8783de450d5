"""HostState: what the scheduler knows of one Node, built from the watch-fed caches."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
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

    def capacity(self, allocatable: Resources) -> Resources:
        """What the scheduler may allocate on a host: allocatable x the ratios."""
        a = allocatable
        return Resources(a.vcpus * self.cpu, a.ram_mib * self.ram, a.disk_gib * self.disk)


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


def pod_requests(pod_spec: dict[str, Any]) -> Resources:
    """A pod's effective requests: the sum over containers, or its largest init container."""

    def total(containers: list[dict]) -> Resources:
        out = Resources()
        for c in containers:
            req = (c.get("resources") or {}).get("requests") or {}
            out = out + Resources(
                float(parse_quantity(req.get("cpu", "0"))),
                float(parse_quantity(req.get("memory", "0"))) / MIB,
                float(parse_quantity(req.get("ephemeral-storage", "0"))) / GIB,
            )
        return out

    regular = total(pod_spec.get("containers") or [])
    inits = [total([c]) for c in pod_spec.get("initContainers") or []]
    return Resources(
        max([regular.vcpus, *(i.vcpus for i in inits)]),
        max([regular.ram_mib, *(i.ram_mib for i in inits)]),
        max([regular.disk_gib, *(i.disk_gib for i in inits)]),
    )


@dataclass(frozen=True)
class HostState:
    node: NodeSummary
    capacity: Resources  # allocatable x allocation ratios
    used: Resources  # claims (ResourceProviders) plus requests of ordinary pods on the node
    instances: int = 0
    """Instances holding a claim here."""
    io_ops: int = 0
    """Instances here in a build or other I/O-heavy task state (IoOpsWeigher)."""
    failed_builds: int = 0
    """Recent build failures here (BuildFailureWeigher); reset by a success."""
    service_down: str | None = None
    """Why the host's compute service is judged down (its heartbeat stopped), else None
    (compute/liveness.py; ComputeFilter removes such a host)."""

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
    def build(
        cls, node: NodeSummary, used: Resources, ratios: AllocationRatios, **stats: Any
    ) -> HostState:
        return cls(node, ratios.capacity(node.allocatable), used, **stats)


#: task states that keep a host's disks and CPUs busy (Nova's io_ops: builds, reboots, ...)
BUSY_TASK_STATES = frozenset(
    {
        "NETWORKING",
        "BLOCK_DEVICE_MAPPING",
        "SPAWNING",
        "REBOOTING",
        "REBOOTING_HARD",
        "POWERING_ON",
    }
)


def host_states(
    nodes: Mapping[str, Iterable[NodeSummary]],
    providers: Mapping[str, Iterable[Mapping[str, dict]]],
    pods: Mapping[str, Iterable[Resources]],
    placements: Mapping[Any, Iterable[Any]],
    ratios: AllocationRatios,
    failed_builds: Mapping[str, int],
    own_claims: Mapping[str, Mapping[str, Resources]] | None = None,
    down: Mapping[str, str] | None = None,
) -> list[HostState]:
    """HostStates from the watch-fed caches (kopf indexes: key -> the values of every object
    with that key): claims and pods' requests used per Node, instance activity, failures.

    `own_claims` (node -> consumer uid -> resources) are the claims this process made itself;
    they count at once, before the watch brings them back, so back-to-back decisions do not all
    pick the same host (Nova's HostState.consume_from_request does this in memory).
    `down` names the hosts whose compute service is judged down, with why.
    """
    claimed: dict[str, dict[str, Resources]] = {}
    for name, store in providers.items():  # only hosts with claims have a provider
        per_uid = claimed.setdefault(name, {})
        for allocations in store:
            for uid, alloc in allocations.items():
                per_uid[uid] = Resources.of_allocation(alloc)
    for name, mine in (own_claims or {}).items():
        claimed.setdefault(name, {}).update(mine)
    pod_use: dict[str, Resources] = {}
    for name, store in pods.items():
        total = Resources()
        for pod in store:
            total = total + pod
        pod_use[name] = total

    hosts = []
    for name, store in nodes.items():
        node = next(iter(store), None)
        if node is None:
            continue
        used = pod_use.get(name, Resources())
        for request in claimed.get(name, {}).values():
            used = used + request
        placed = list(placements.get(("host", name), ()))
        busy = sum(1 for _, task in placed if task in BUSY_TASK_STATES)
        hosts.append(
            HostState.build(
                node,
                used,
                ratios,
                instances=len(placed),
                io_ops=busy,
                failed_builds=failed_builds.get(name, 0),
                service_down=(down or {}).get(name),
            )
        )
    return hosts
