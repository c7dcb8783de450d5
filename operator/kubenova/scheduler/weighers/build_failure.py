"""BuildFailureWeigher: keep away from hosts where builds keep failing."""

from __future__ import annotations

import numpy as np

from kubenova.scheduler.host_state import HostState
from kubenova.scheduler.host_table import HostTable
from kubenova.scheduler.interface import RequestSpec
from kubenova.scheduler.weighers.base import BaseHostWeigher


class BuildFailureWeigher(BaseHostWeigher):
    """Mirrors Nova's BuildFailureWeigher: recent failed builds, weighted by -1000000 so that
    any failure outweighs every other weigher (Nova negates the raw value and keeps the
    multiplier positive; the product is the same)."""

    default_multiplier = -1_000_000.0

    def raw_weight(self, host: HostState, spec: RequestSpec) -> float:
        return float(host.failed_builds)

    def raw_weights(self, table: HostTable, spec: RequestSpec) -> np.ndarray:
        return table.failed_builds.astype(float)
