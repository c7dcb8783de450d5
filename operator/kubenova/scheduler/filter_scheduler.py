"""FilterScheduler, after Nova's: filter the hosts, weigh the survivors (at most
`max_placement_results` of them), pick randomly among the best `host_subset_size`, claim it in
placement, and return it with alternates.

A decision runs on a HostTable (host_table.py): each filter answers for all hosts at once with
a mask, each weigher with an array. `explain()` is the per-host path of the same algorithm, for
`kubenova schedule --explain`; both choose alike (tests/unit/scheduler/test_fast_path.py).

A claim can lose a race to a concurrent decision; the next-best host is then tried, so a
decision fails only when no candidate can be claimed.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from kubenova import metrics
from kubenova.scheduler.config import SchedulerConfig
from kubenova.scheduler.host_state import HostState
from kubenova.scheduler.host_table import HostTable
from kubenova.scheduler.interface import NoValidHost, RequestSpec, Selection
from kubenova.scheduler.placement import ClaimConflict, Placement
from kubenova.scheduler.registry import load_filters, load_weighers
from kubenova.scheduler.weighing import (
    WeighedHost,
    explain_no_valid_host,
    filter_table,
    run_filters,
    weigh,
    weigh_table,
)

log = logging.getLogger("kubenova.scheduler")
T = TypeVar("T")


@dataclass(frozen=True)
class Explanation:
    """What `kubenova schedule --explain` prints: each filter's survivors, then the ranking."""

    total: int
    removed: dict[str, int]
    survivors_after: dict[str, list[str]]
    ranking: list[WeighedHost]


class FilterScheduler:
    def __init__(self, placement: Placement | None, config: SchedulerConfig) -> None:
        self.placement = placement
        self.config = config
        self.filters = load_filters(config.enabled_filters)
        self.weighers = load_weighers(config.weighers)
        self.start = 0
        """Where the next capped decision starts among the survivors (kube-scheduler's
        nextStartNodeIndex): over many decisions every host gets its turn to be weighed."""

    def capped(self, survivors: Sequence[T]) -> list[T]:
        """At most max_placement_results survivors, from `start` on, wrapping around. Nova
        weighs no more than placement returned (max_placement_results, 1,000 by default)."""
        limit = self.config.max_placement_results
        if len(survivors) <= limit:
            return list(survivors)
        first = self.start % len(survivors)
        rotated = [*survivors[first:], *survivors[:first]]
        return rotated[:limit]

    def explain(self, spec: RequestSpec, hosts: list[HostState]) -> Explanation:
        """The per-host path: filter and weigh without claiming, keeping every reason."""
        candidates = [h for h in hosts if h.name not in spec.ignore_hosts]
        survivors, removed, after = run_filters(candidates, spec, self.filters)
        ranking = weigh(self.capped(survivors), spec, self.weighers, self.config.weight_multipliers)
        return Explanation(len(candidates), removed, after, ranking)

    def rank(self, spec: RequestSpec, table: HostTable) -> tuple[list[int], int, dict[str, int]]:
        """The fast path: rows best first, how many hosts were candidates, and how many each
        filter removed (what a NoValidHost message says)."""
        candidates = ~table.only(spec.ignore_hosts)
        rows, removed = filter_table(table, spec, self.filters, candidates)
        for name, count in removed.items():
            if count:
                metrics.FILTER_REJECTIONS.labels(name).inc(count)
        capped = np.array(self.capped(list(rows)), dtype=np.int64)
        ranked = weigh_table(table, capped, spec, self.weighers, self.config.weight_multipliers)
        return [int(i) for i in ranked], int(candidates.sum()), removed

    def _order(self, ranked: list[T]) -> list[T]:
        """Best first, but the first pick random among the top host_subset_size (Nova)."""
        ordered = list(ranked)
        subset = min(self.config.host_subset_size, len(ordered))
        if subset > 1:
            first = random.randrange(subset)
            ordered.insert(0, ordered.pop(first))
        return ordered

    async def select_destinations(
        self, spec: RequestSpec, hosts: list[HostState] | HostTable
    ) -> Selection:
        started = time.monotonic()
        try:
            table = hosts if isinstance(hosts, HostTable) else HostTable.of_hosts(hosts)
            return await self._select(spec, table)
        finally:
            metrics.SCHEDULER_DECISION.observe(time.monotonic() - started)

    async def _select(self, spec: RequestSpec, table: HostTable) -> Selection:
        ranked, total, removed = self.rank(spec, table)
        if len(ranked) >= self.config.max_placement_results:
            self.start += self.config.max_placement_results
        if not ranked:
            metrics.NO_VALID_HOST.inc()
            raise NoValidHost(explain_no_valid_host(total, removed))
        ordered = self._order(ranked)
        assert self.placement is not None, "a dry-run scheduler cannot claim"
        for index, row in enumerate(ordered):
            host = table.host(row)
            try:
                claimed = await self.placement.claim(
                    host.name, spec.instance_uid, spec.instance, spec.resources, host.capacity
                )
            except ClaimConflict:
                log.warning("%s: %s too contended; trying the next host", spec.instance, host.name)
                continue
            if claimed:
                after = ordered[index + 1 : index + self.config.max_attempts]
                rest = [table.name(i) for i in after]
                log.debug("%s -> %s (alternates %s)", spec.instance, host.name, rest)
                return Selection(host.name, tuple(rest))
        metrics.NO_VALID_HOST.inc()
        raise NoValidHost(
            f"No valid host was found. {len(ordered)} hosts passed the filters but concurrent "
            "claims took their room first"
        )
