"""IoOpsWeigher: prefer hosts with fewer builds and other I/O-heavy tasks under way."""

from __future__ import annotations

import numpy as np

from kubenova.scheduler.host_state import HostState
from kubenova.scheduler.host_table import HostTable
from kubenova.scheduler.interface import RequestSpec
from kubenova.scheduler.weighers.base import BaseHostWeigher


class IoOpsWeigher(BaseHostWeigher):
    """Mirrors Nova's IoOpsWeigher: raw = host.io_ops, io_ops_weight_multiplier -1.0 so the
    busier host loses."""

    default_multiplier = -1.0

    def raw_weight(self, host: HostState, spec: RequestSpec) -> float:
        return float(host.io_ops)

    def raw_weights(self, table: HostTable, spec: RequestSpec) -> np.ndarray:
        return table.io_ops.astype(float)
