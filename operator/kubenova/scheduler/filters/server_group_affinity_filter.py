"""ServerGroupAffinityFilter: members of an affinity group share one host."""

from __future__ import annotations

import numpy as np

from kubenova.scheduler.filters.base import BaseHostFilter, FilterResult
from kubenova.scheduler.host_state import HostState
from kubenova.scheduler.host_table import HostTable
from kubenova.scheduler.interface import RequestSpec


class ServerGroupAffinityFilter(BaseHostFilter):
    """Mirrors Nova's ServerGroupAffinityFilter: under policy affinity, once any member is
    placed the host must already hold one; the first member may go anywhere."""

    def host_passes(self, host: HostState, spec: RequestSpec) -> FilterResult:
        if spec.group_policy != "affinity":
            return FilterResult.ok()
        group_hosts = sorted(h for h, count in spec.group_hosts.items() if count > 0)
        if not group_hosts or host.name in group_hosts:
            return FilterResult.ok()
        return FilterResult.fail(f"affinity: the group is on {', '.join(group_hosts)}")

    def mask(self, table: HostTable, spec: RequestSpec) -> np.ndarray:
        group_hosts = [h for h, count in spec.group_hosts.items() if count > 0]
        if spec.group_policy != "affinity" or not group_hosts:
            return np.ones(len(table), dtype=bool)
        return table.only(group_hosts)
