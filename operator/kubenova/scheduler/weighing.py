"""Running the filters and the weighers over the candidate hosts, as Nova's filter scheduler
does; and the NoValidHost message that says which filter removed how many hosts."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from kubenova.scheduler.filters.base import BaseHostFilter
from kubenova.scheduler.host_state import HostState
from kubenova.scheduler.host_table import HostTable
from kubenova.scheduler.interface import RequestSpec
from kubenova.scheduler.weighers.base import BaseHostWeigher, normalize, normalize_array

log = logging.getLogger("kubenova.scheduler")


@dataclass
class WeighedHost:
    host: HostState
    weight: float


def run_filters(
    hosts: Sequence[HostState], spec: RequestSpec, filters: Sequence[BaseHostFilter]
) -> tuple[list[HostState], dict[str, int], dict[str, list[str]]]:
    """Survivors, hosts removed per filter (every filter, in order, 0s included) and the
    survivors' names after each filter. Once no host is left the rest are not asked."""
    survivors = list(hosts)
    removed: dict[str, int] = {}
    after: dict[str, list[str]] = {}
    for host_filter in filters:
        kept = []
        for host in survivors:
            result = host_filter.host_passes(host, spec)
            if result.passed:
                kept.append(host)
            else:
                log.debug(
                    "%s: %s rejects %s: %s",
                    spec.instance,
                    host_filter.name,
                    host.name,
                    result.reason,
                )
        removed[host_filter.name] = len(survivors) - len(kept)
        survivors = kept
        after[host_filter.name] = [h.name for h in survivors]
    return survivors, removed, after


def weigh(
    hosts: Sequence[HostState],
    spec: RequestSpec,
    weighers: Sequence[BaseHostWeigher],
    multipliers: Mapping[str, float],
) -> list[WeighedHost]:
    """Best first: per weigher, raw values normalised to 0..1 over these hosts, times the
    configured multiplier (else the weigher's default), summed. Ties keep the input order."""
    totals = [0.0] * len(hosts)
    for weigher in weighers:
        multiplier = multipliers.get(weigher.name, weigher.default_multiplier)
        raws = [weigher.raw_weight(host, spec) for host in hosts]
        for i, value in enumerate(normalize(raws)):
            totals[i] += multiplier * value
    ranked = [WeighedHost(host, total) for host, total in zip(hosts, totals, strict=True)]
    ranked.sort(key=lambda w: w.weight, reverse=True)
    return ranked


def filter_table(
    table: HostTable,
    spec: RequestSpec,
    filters: Sequence[BaseHostFilter],
    candidates: np.ndarray,
) -> tuple[np.ndarray, dict[str, int]]:
    """run_filters over a table: the rows among `candidates` (a mask) passing every filter,
    in table order, and the hosts each filter removed (0s included; once none is left, the
    rest are not asked)."""
    passing = candidates.copy()
    removed: dict[str, int] = {}
    for host_filter in filters:
        before = int(passing.sum())
        if before:
            passing &= host_filter.mask(table, spec)
        removed[host_filter.name] = before - int(passing.sum())
    return np.flatnonzero(passing), removed


def weigh_table(
    table: HostTable,
    rows: np.ndarray,
    spec: RequestSpec,
    weighers: Sequence[BaseHostWeigher],
    multipliers: Mapping[str, float],
) -> np.ndarray:
    """weigh() over a table: `rows` best first, with the same arithmetic (so the same floats)
    and the same tie-break (input order)."""
    totals = np.zeros(len(rows), dtype=float)
    for weigher in weighers:
        multiplier = multipliers.get(weigher.name, weigher.default_multiplier)
        totals += multiplier * normalize_array(weigher.raw_weights(table, spec)[rows])
    return rows[np.argsort(-totals, kind="stable")]


def explain_no_valid_host(total: int, removed: Mapping[str, int]) -> str:
    """e.g. "No valid host was found. 3 hosts: ComputeFilter removed 1, RamFilter removed 2"."""
    hosts = f"{total} host" if total == 1 else f"{total} hosts"
    steps = [f"{name} removed {count}" for name, count in removed.items() if count]
    detail = f"{hosts}: {', '.join(steps)}" if steps else hosts
    return f"No valid host was found. {detail}"
