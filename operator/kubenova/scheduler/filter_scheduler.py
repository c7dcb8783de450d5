"""FilterScheduler, after Nova's: filter the hosts, weigh the survivors, pick randomly among the
best `host_subset_size`, claim it in placement, and return it with alternates.

A claim can lose a race to a concurrent decision; the next-best host is then tried, so a
decision fails only when no candidate can be claimed.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass

from kubenova import metrics
from kubenova.scheduler.config import SchedulerConfig
from kubenova.scheduler.host_state import HostState
from kubenova.scheduler.interface import NoValidHost, RequestSpec, Selection
from kubenova.scheduler.placement import ClaimConflict, Placement
from kubenova.scheduler.registry import load_filters, load_weighers
from kubenova.scheduler.weighing import WeighedHost, explain_no_valid_host, run_filters, weigh

log = logging.getLogger("kubenova.scheduler")


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

    def explain(self, spec: RequestSpec, hosts: list[HostState]) -> Explanation:
        """Filter and weigh without claiming anything (also the first half of a decision)."""
        candidates = [h for h in hosts if h.name not in spec.ignore_hosts]
        survivors, removed, after = run_filters(candidates, spec, self.filters)
        for name, count in removed.items():
            if count:
                metrics.FILTER_REJECTIONS.labels(name).inc(count)
        ranking = weigh(survivors, spec, self.weighers, self.config.weight_multipliers)
        return Explanation(len(candidates), removed, after, ranking)

    def _order(self, ranking: list[WeighedHost]) -> list[HostState]:
        """Best first, but the first pick random among the top host_subset_size (Nova)."""
        hosts = [w.host for w in ranking]
        subset = min(self.config.host_subset_size, len(hosts))
        if subset > 1:
            first = random.randrange(subset)
            hosts.insert(0, hosts.pop(first))
        return hosts

    async def select_destinations(self, spec: RequestSpec, hosts: list[HostState]) -> Selection:
        started = time.monotonic()
        try:
            return await self._select(spec, hosts)
        finally:
            metrics.SCHEDULER_DECISION.observe(time.monotonic() - started)

    async def _select(self, spec: RequestSpec, hosts: list[HostState]) -> Selection:
        explanation = self.explain(spec, hosts)
        if not explanation.ranking:
            metrics.NO_VALID_HOST.inc()
            raise NoValidHost(explain_no_valid_host(explanation.total, explanation.removed))
        ordered = self._order(explanation.ranking)
        assert self.placement is not None, "a dry-run scheduler cannot claim"
        for index, host in enumerate(ordered):
            try:
                claimed = await self.placement.claim(
                    host.name, spec.instance_uid, spec.instance, spec.resources, host.capacity
                )
            except ClaimConflict:
                log.warning("%s: %s too contended; trying the next host", spec.instance, host.name)
                continue
            if claimed:
                rest = [h.name for h in ordered[index + 1 :]]
                alternates = tuple(rest[: self.config.max_attempts - 1])
                log.debug("%s -> %s (alternates %s)", spec.instance, host.name, alternates)
                return Selection(host.name, alternates)
        metrics.NO_VALID_HOST.inc()
        raise NoValidHost(
            f"No valid host was found. {len(ordered)} hosts passed the filters but concurrent "
            "claims took their room first"
        )
