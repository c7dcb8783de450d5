"""HostCache: the scheduler's view of every host, kept up to date from watch events.

Rebuilding a HostState for every Node from the caches at each decision costs time in the number
of Nodes; Nova's HostManager instead keeps host state and updates it from the compute nodes'
reports and from its own decisions (`consume_from_request`). Here the state is kept in rows
(numpy arrays) changed only by the event that changed something: a Node (capacity, labels,
readiness), a ResourceProvider (the claims on it), a Pod (its requests on a Node), an Instance
(where it is placed, whether a build or reboot keeps its host busy). A decision then takes a
HostTable view of the rows (array copies, no per-host Python work) with what only this
process knows laid over it: claims in flight, recent build failures, hosts judged down.

The rows hold what host_state.host_states() computes from the kopf indexes;
tests/unit/scheduler/test_host_cache.py checks the two agree after any sequence of events.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from kubenova.scheduler.host_state import (
    BUSY_TASK_STATES,
    AllocationRatios,
    NodeSummary,
)
from kubenova.scheduler.host_table import HostTable, as_row, node_blocks
from kubenova.scheduler.resources import Resources


class HostCache:
    """Rows 0..n-1 are the compute Nodes, in the order they were first seen (a deleted one's
    row is taken by the last row)."""

    def __init__(self, ratios: AllocationRatios, size: int = 64) -> None:
        self.ratios = ratios
        self._rows: dict[str, int] = {}
        self._rows_shared: dict[str, int] | None = None
        """A copy of _rows the tables share until a row is added or removed (not one copy
        of 5,000 names per decision)."""
        self._nodes: list[NodeSummary] = []
        self._capacity = np.zeros((size, 3))
        self._claimed = np.zeros((size, 3))
        self._pods_used = np.zeros((size, 3))
        self._instances = np.zeros(size, dtype=np.int64)
        self._busy = np.zeros(size, dtype=np.int64)
        self._node_ok = np.zeros(size, dtype=bool)
        # What is known per host name, whether or not its Node is here (yet).
        self._claims: dict[str, dict[str, Resources]] = {}
        self._pods_by_node: dict[str, dict[str, tuple[float, float, float]]] = {}
        self._placed_count: dict[str, tuple[int, int]] = {}
        # What each object contributed last time, to take it back when it changes or goes.
        self._pods: dict[str, tuple[str, tuple[float, float, float]]] = {}
        self._placed: dict[str, tuple[str, bool]] = {}
        self._codes: dict[str, Any] = {}
        """Label columns of the current Nodes, shared by the tables until a label changes."""
        self._providers: set[str] = set()
        self.warm = False
        """Once it has seen as many objects as the indexes hold (caught_up)."""

    def __len__(self) -> int:
        return len(self._nodes)

    # -- events ------------------------------------------------------------------------------
    def node_changed(self, name: str, node: NodeSummary | None) -> None:
        """A compute Node's latest summary; None when it is gone (or no longer a compute
        host)."""
        row = self._rows.get(name)
        if node is None:
            if row is not None:
                self._remove(name, row)
            return
        if row is None:
            row = self._append(name)
        elif self._nodes[row].labels != node.labels:
            self._codes = {}
        self._nodes[row] = node
        a = node.allocatable
        ratios = self.ratios
        self._capacity[row] = (
            a.vcpus * ratios.cpu,
            a.ram_mib * ratios.ram,
            a.disk_gib * ratios.disk,
        )
        self._node_ok[row] = node_blocks(node) is None

    def provider_changed(self, name: str, allocations: Mapping[str, dict] | None) -> None:
        """A ResourceProvider's allocations (consumer uid -> allocation); None when deleted."""
        claims = {uid: Resources.of_allocation(a) for uid, a in (allocations or {}).items()}
        if allocations is None:
            self._providers.discard(name)
        else:
            self._providers.add(name)
        if claims:
            self._claims[name] = claims
        else:
            self._claims.pop(name, None)
        row = self._rows.get(name)
        if row is not None:
            self._claimed[row] = _sum_rows(as_row(r) for r in claims.values())

    def pod_changed(self, uid: str, node: str | None, requests: Resources | None) -> None:
        """An ordinary pod's node and requests; node None when it is not bound, is over
        (Succeeded, Failed) or was deleted."""
        old = self._pods.pop(uid, None)
        if old is not None:
            on_node = self._pods_by_node.get(old[0], {})
            on_node.pop(uid, None)
            if not on_node:
                self._pods_by_node.pop(old[0], None)
            self._pod_use_changed(old[0])
        if node and requests is not None:
            row = as_row(requests)
            self._pods[uid] = (node, row)
            self._pods_by_node.setdefault(node, {})[uid] = row
            self._pod_use_changed(node)

    def instance_changed(self, uid: str, host: str | None, task_state: str | None) -> None:
        """Where an instance is placed and its task state; host None when it is not (or the
        instance is gone)."""
        old = self._placed.pop(uid, None)
        if old is not None:
            self._count(old[0], -1, -int(old[1]))
        if host:
            busy = task_state in BUSY_TASK_STATES
            self._placed[uid] = (host, busy)
            self._count(host, 1, int(busy))

    def caught_up(
        self,
        nodes: Mapping[str, Any],
        providers: Mapping[str, Any],
        pods: Mapping[str, Any],
        placements: Mapping[Any, Any],
    ) -> bool:
        """Whether the events seen so far cover what the kopf indexes hold. kopf fills its
        indexes before any handler runs, but delivers the start-up listing to the event
        handlers that feed this cache while the first builds may already be deciding: until
        the counts match, decisions read the indexes (host_states). Checked until true once;
        from then on every change arrives as an event."""
        if self.warm:
            return True
        bound = sum(len(store) for store in pods.values())
        placed = sum(len(store) for key, store in placements.items() if key[0] == "host")
        self.warm = (
            len(self._nodes) == len(nodes)
            and len(self._providers) == len(providers)
            and len(self._pods) == bound
            and len(self._placed) == placed
        )
        return self.warm

    # -- the decision's view -----------------------------------------------------------------
    def table(
        self,
        own_claims: Mapping[str, Mapping[str, Resources]] | None = None,
        failed_builds: Mapping[str, int] | None = None,
        down: Mapping[str, str] | None = None,
    ) -> HostTable:
        """The hosts as a HostTable, with this process's claims not yet seen in a
        ResourceProvider counted (a claim seen replaces the one made here), its recent build
        failures and the hosts judged down."""
        n = len(self._nodes)
        used = self._claimed[:n] + self._pods_used[:n]
        for name, mine in (own_claims or {}).items():
            row = self._rows.get(name)
            if row is None or not mine:
                continue
            seen = self._claims.get(name, {})
            for uid, request in mine.items():
                used[row] += as_row(request)
                if uid in seen:
                    used[row] -= as_row(seen[uid])
        failures = np.zeros(n, dtype=np.int64)
        for name, count in (failed_builds or {}).items():
            if (row := self._rows.get(name)) is not None:
                failures[row] = count
        service_down: list[str | None] = [None] * n
        down_mask = np.zeros(n, dtype=bool)
        for name, why in (down or {}).items():
            if (row := self._rows.get(name)) is not None:
                service_down[row], down_mask[row] = why, True
        return HostTable(
            nodes=self._nodes[:n],
            capacity=self._capacity[:n].copy(),
            used=used,
            instances=self._instances[:n].copy(),
            io_ops=self._busy[:n].copy(),
            failed_builds=failures,
            service_down=service_down,
            node_ok=self._node_ok[:n].copy(),
            down=down_mask,
            _index=self._shared_rows(),
            _codes=self._codes,
        )

    # -- rows --------------------------------------------------------------------------------
    def _shared_rows(self) -> dict[str, int]:
        if self._rows_shared is None:
            self._rows_shared = dict(self._rows)
        return self._rows_shared

    def _append(self, name: str) -> int:
        row = len(self._nodes)
        if row == len(self._capacity):
            self._grow()
        self._rows[name] = row
        self._rows_shared = None
        self._nodes.append(NodeSummary(name, Resources()))
        self._codes = {}
        self._claimed[row] = _sum_rows(as_row(r) for r in self._claims.get(name, {}).values())
        self._pods_used[row] = _sum_rows(self._pods_by_node.get(name, {}).values())
        self._instances[row], self._busy[row] = self._placed_count.get(name, (0, 0))
        return row

    def _remove(self, name: str, row: int) -> None:
        last = len(self._nodes) - 1
        del self._rows[name]
        self._rows_shared = None
        if row != last:  # the last row moves into the hole
            moved = self._nodes[last]
            self._nodes[row] = moved
            self._rows[moved.name] = row
            for column in self._columns():
                column[row] = column[last]
        self._nodes.pop()
        self._codes = {}

    def _columns(self) -> tuple[np.ndarray, ...]:
        return (
            self._capacity,
            self._claimed,
            self._pods_used,
            self._instances,
            self._busy,
            self._node_ok,
        )

    def _grow(self) -> None:
        (
            self._capacity,
            self._claimed,
            self._pods_used,
            self._instances,
            self._busy,
            self._node_ok,
        ) = (np.concatenate([c, np.zeros_like(c)]) for c in self._columns())

    def _pod_use_changed(self, node: str) -> None:
        """Summed afresh from the node's pods (at most its pod capacity): exact, no drift."""
        if (row := self._rows.get(node)) is not None:
            self._pods_used[row] = _sum_rows(self._pods_by_node.get(node, {}).values())

    def _count(self, host: str, instances: int, busy: int) -> None:
        count, working = self._placed_count.get(host, (0, 0))
        count, working = count + instances, working + busy
        if count:
            self._placed_count[host] = (count, working)
        else:
            self._placed_count.pop(host, None)
        if (row := self._rows.get(host)) is not None:
            self._instances[row], self._busy[row] = count, working


def _sum_rows(rows: Any) -> tuple[float, float, float]:
    vcpus = ram = disk = 0.0
    for a, b, c in rows:
        vcpus, ram, disk = vcpus + a, ram + b, disk + c
    return (vcpus, ram, disk)
