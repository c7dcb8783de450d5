"""AvailabilityZoneFilter: the host is in the requested availability zone."""

from __future__ import annotations

import numpy as np

from kubenova.scheduler.filters.base import BaseHostFilter, FilterResult
from kubenova.scheduler.host_state import ZONE_LABEL, HostState
from kubenova.scheduler.host_table import HostTable
from kubenova.scheduler.interface import RequestSpec


class AvailabilityZoneFilter(BaseHostFilter):
    """Mirrors Nova's AvailabilityZoneFilter: no requested zone passes every host; otherwise the
    Node's topology.kubernetes.io/zone label (Nova: the AZ aggregate) must equal it."""

    def host_passes(self, host: HostState, spec: RequestSpec) -> FilterResult:
        wanted = spec.availability_zone
        if wanted is None or host.zone == wanted:
            return FilterResult.ok()
        if host.zone is None:
            return FilterResult.fail(f"zone {wanted} requested, node has no {ZONE_LABEL} label")
        return FilterResult.fail(f"zone {wanted} requested, node is in {host.zone}")

    def mask(self, table: HostTable, spec: RequestSpec) -> np.ndarray:
        wanted = spec.availability_zone
        if wanted is None:
            return np.ones(len(table), dtype=bool)
        return table.label_mask(ZONE_LABEL, lambda zone: zone == wanted)
