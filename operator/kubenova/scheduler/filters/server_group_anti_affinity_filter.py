"""ServerGroupAntiAffinityFilter: members of an anti-affinity group spread over hosts."""

from __future__ import annotations

import numpy as np

from kubenova.scheduler.filters.base import BaseHostFilter, FilterResult
from kubenova.scheduler.host_state import HostState
from kubenova.scheduler.host_table import HostTable
from kubenova.scheduler.interface import RequestSpec


class ServerGroupAntiAffinityFilter(BaseHostFilter):
    """Mirrors Nova's ServerGroupAntiAffinityFilter: under policy anti-affinity, the host must
    hold fewer than the group's max_server_per_host members (default 1: none)."""

    def host_passes(self, host: HostState, spec: RequestSpec) -> FilterResult:
        if spec.group_policy != "anti-affinity":
            return FilterResult.ok()
        members, limit = spec.group_hosts.get(host.name, 0), spec.group_max_per_host
        if members < limit:
            return FilterResult.ok()
        return FilterResult.fail(f"anti-affinity: host holds {members} of the group, max {limit}")

    def mask(self, table: HostTable, spec: RequestSpec) -> np.ndarray:
        if spec.group_policy != "anti-affinity":
            return np.ones(len(table), dtype=bool)
        return table.sparse(spec.group_hosts) < spec.group_max_per_host
