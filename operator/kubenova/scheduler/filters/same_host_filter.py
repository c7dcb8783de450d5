"""SameHostFilter: the schedulerHints.sameHost hint."""

from __future__ import annotations

import numpy as np

from kubenova.scheduler.filters.base import BaseHostFilter, FilterResult
from kubenova.scheduler.host_state import HostState
from kubenova.scheduler.host_table import HostTable
from kubenova.scheduler.interface import RequestSpec


class SameHostFilter(BaseHostFilter):
    """Mirrors Nova's SameHostFilter: the host must hold one of the named instances. No hint
    constrains nothing; nor, unlike Nova (which then rejects every host), does a hint whose
    instances are not placed anywhere."""

    def host_passes(self, host: HostState, spec: RequestSpec) -> FilterResult:
        if not spec.same_host or host.name in spec.same_host:
            return FilterResult.ok()
        return FilterResult.fail(f"sameHost: instances are on {', '.join(sorted(spec.same_host))}")

    def mask(self, table: HostTable, spec: RequestSpec) -> np.ndarray:
        if not spec.same_host:
            return np.ones(len(table), dtype=bool)
        return table.only(spec.same_host)
