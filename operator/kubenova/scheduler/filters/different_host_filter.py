"""DifferentHostFilter: the schedulerHints.differentHost hint."""

from __future__ import annotations

import numpy as np

from kubenova.scheduler.filters.base import BaseHostFilter, FilterResult
from kubenova.scheduler.host_state import HostState
from kubenova.scheduler.host_table import HostTable
from kubenova.scheduler.interface import RequestSpec


class DifferentHostFilter(BaseHostFilter):
    """Mirrors Nova's DifferentHostFilter: the host must hold none of the named instances."""

    def host_passes(self, host: HostState, spec: RequestSpec) -> FilterResult:
        if host.name not in spec.different_host:
            return FilterResult.ok()
        return FilterResult.fail("differentHost: holds a named instance")

    def mask(self, table: HostTable, spec: RequestSpec) -> np.ndarray:
        return ~table.only(spec.different_host)
