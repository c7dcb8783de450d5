"""ComputeFilter: only hosts whose compute service is up and enabled."""

from __future__ import annotations

from kubenova.scheduler.filters.base import BaseHostFilter, FilterResult
from kubenova.scheduler.host_state import HostState
from kubenova.scheduler.interface import RequestSpec

#: taint effects that keep new work off a node (PreferNoSchedule is only a preference)
BLOCKING_EFFECTS = frozenset({"NoSchedule", "NoExecute"})


class ComputeFilter(BaseHostFilter):
    """Mirrors Nova's ComputeFilter (service up and not disabled): the host's heartbeat is
    alive (compute/liveness.py), the Node is Ready, not cordoned, and carries no
    NoSchedule/NoExecute taint."""

    def host_passes(self, host: HostState, spec: RequestSpec) -> FilterResult:
        node = host.node
        if host.service_down:
            return FilterResult.fail(f"compute service is down: {host.service_down}")
        if not node.ready:
            return FilterResult.fail("node is not Ready")
        if node.unschedulable:
            return FilterResult.fail("node is cordoned")
        for taint in node.taints:
            if taint.rpartition(":")[2] in BLOCKING_EFFECTS:
                return FilterResult.fail(f"node has taint {taint}")
        return FilterResult.ok()
