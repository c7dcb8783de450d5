"""ComputeFilter: only hosts whose compute service is up and enabled."""

from __future__ import annotations

import numpy as np

from kubenova.scheduler.filters.base import BaseHostFilter, FilterResult
from kubenova.scheduler.host_state import HostState
from kubenova.scheduler.host_table import HostTable, node_blocks
from kubenova.scheduler.interface import RequestSpec


class ComputeFilter(BaseHostFilter):
    """Mirrors Nova's ComputeFilter (service up and not disabled): the host's heartbeat is
    alive (compute/liveness.py), the Node is Ready, not cordoned, and carries no
    NoSchedule/NoExecute taint."""

    def host_passes(self, host: HostState, spec: RequestSpec) -> FilterResult:
        if host.service_down:
            return FilterResult.fail(f"compute service is down: {host.service_down}")
        blocked = node_blocks(host.node)
        return FilterResult.ok() if blocked is None else FilterResult.fail(blocked)

    def mask(self, table: HostTable, spec: RequestSpec) -> np.ndarray:
        return table.node_ok & ~table.down
