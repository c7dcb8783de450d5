"""HostTable: the hosts of one decision as columns (numpy arrays), for the fast path.

The per-host path (HostState, `host_passes`, `raw_weight`) stays for `kubenova schedule
--explain` and for the reasons in a NoValidHost message; the fast path asks each filter for a
boolean mask and each weigher for an array of raw weights over the whole table at once, so a
decision over thousands of hosts costs a few array operations instead of a Python loop per
host and filter. tests/unit/scheduler/test_fast_path.py checks that both choose alike.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from kubenova.scheduler.host_state import HostState, NodeSummary
from kubenova.scheduler.resources import Resources

#: the columns of `capacity`, `used` and `free`, by Resources attribute
RESOURCE_COLUMNS = {"vcpus": 0, "ram_mib": 1, "disk_gib": 2}

#: taint effects that keep new work off a node (PreferNoSchedule is only a preference)
BLOCKING_EFFECTS = frozenset({"NoSchedule", "NoExecute"})


def node_blocks(node: NodeSummary) -> str | None:
    """Why the Node itself takes no new work (not Ready, cordoned, a blocking taint), else
    None: ComputeFilter's host-side half, computed once per Node change for the table."""
    if not node.ready:
        return "node is not Ready"
    if node.unschedulable:
        return "node is cordoned"
    for taint in node.taints:
        if taint.rpartition(":")[2] in BLOCKING_EFFECTS:
            return f"node has taint {taint}"
    return None


def as_row(resources: Resources) -> tuple[float, float, float]:
    return (float(resources.vcpus), float(resources.ram_mib), float(resources.disk_gib))


@dataclass
class HostTable:
    """Row i is one host: its Node, capacity and use (vcpus, MiB, GiB), activity."""

    nodes: list[NodeSummary]
    capacity: np.ndarray
    """(n, 3) float: allocatable x allocation ratios."""
    used: np.ndarray
    """(n, 3) float: claims plus ordinary pods' requests."""
    instances: np.ndarray
    io_ops: np.ndarray
    failed_builds: np.ndarray
    service_down: list[str | None]
    node_ok: np.ndarray
    """bool: node_blocks() is None."""
    down: np.ndarray
    """bool: service_down is set."""
    _index: dict[str, int] | None = field(default=None, repr=False)
    _codes: dict[str, tuple[np.ndarray, list[str]]] = field(default_factory=dict, repr=False)

    @classmethod
    def of_hosts(cls, hosts: Sequence[HostState]) -> HostTable:
        """From HostStates (the per-host path's input): the same hosts, the same order."""
        return cls(
            nodes=[h.node for h in hosts],
            capacity=np.array([as_row(h.capacity) for h in hosts], dtype=float).reshape(-1, 3),
            used=np.array([as_row(h.used) for h in hosts], dtype=float).reshape(-1, 3),
            instances=np.array([h.instances for h in hosts], dtype=np.int64),
            io_ops=np.array([h.io_ops for h in hosts], dtype=np.int64),
            failed_builds=np.array([h.failed_builds for h in hosts], dtype=np.int64),
            service_down=[h.service_down for h in hosts],
            node_ok=np.array([node_blocks(h.node) is None for h in hosts], dtype=bool),
            down=np.array([h.service_down is not None for h in hosts], dtype=bool),
        )

    def __len__(self) -> int:
        return len(self.nodes)

    @property
    def free(self) -> np.ndarray:
        return self.capacity - self.used

    def name(self, i: int) -> str:
        return self.nodes[i].name

    def position(self, name: str) -> int | None:
        if self._index is None:
            self._index = {node.name: i for i, node in enumerate(self.nodes)}
        return self._index.get(name)

    def positions(self, names: Any) -> list[int]:
        """Rows of the hosts named (unknown names skipped)."""
        return [i for name in names if (i := self.position(name)) is not None]

    def host(self, i: int) -> HostState:
        """Row i as a HostState (the per-host path's view of the same host)."""
        cap, used = self.capacity[i], self.used[i]
        return HostState(
            node=self.nodes[i],
            capacity=Resources(*(float(v) for v in cap)),
            used=Resources(*(float(v) for v in used)),
            instances=int(self.instances[i]),
            io_ops=int(self.io_ops[i]),
            failed_builds=int(self.failed_builds[i]),
            service_down=self.service_down[i],
        )

    def capacity_of(self, name: str) -> Resources | None:
        """A host's capacity (what a claim is checked against), None if it is not here."""
        i = self.position(name)
        return None if i is None else Resources(*(float(v) for v in self.capacity[i]))

    def hosts(self) -> list[HostState]:
        return [self.host(i) for i in range(len(self))]

    def label_mask(self, key: str, passes: Callable[[str | None], bool]) -> np.ndarray:
        """Rows whose label `key` passes `passes` (None: the Node lacks it). The predicate is
        asked once per distinct value, not once per host."""
        codes, values = self._label_codes(key)
        verdicts = np.array([passes(v) for v in values] + [passes(None)], dtype=bool)
        return verdicts[codes]  # code -1 (missing) picks the last verdict

    def _label_codes(self, key: str) -> tuple[np.ndarray, list[str]]:
        cached = self._codes.get(key)
        if cached is None:
            seen: dict[str, int] = {}
            codes = np.fromiter(
                (
                    -1 if (v := node.labels.get(key)) is None else seen.setdefault(v, len(seen))
                    for node in self.nodes
                ),
                dtype=np.int64,
                count=len(self.nodes),
            )
            cached = self._codes[key] = (codes, list(seen))
        return cached

    def sparse(self, counts: Any) -> np.ndarray:
        """A float column from a small host -> number mapping (0 elsewhere)."""
        column = np.zeros(len(self), dtype=float)
        for name, count in counts.items():
            i = self.position(name)
            if i is not None:
                column[i] = count
        return column

    def only(self, names: Any) -> np.ndarray:
        """A mask of the named hosts."""
        mask = np.zeros(len(self), dtype=bool)
        mask[self.positions(names)] = True
        return mask
