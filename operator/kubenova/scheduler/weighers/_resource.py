"""What RAMWeigher, CPUWeigher and DiskWeigher share: the free amount of one resource class."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from kubenova.scheduler.host_state import HostState
from kubenova.scheduler.host_table import RESOURCE_COLUMNS, HostTable
from kubenova.scheduler.interface import RequestSpec
from kubenova.scheduler.weighers.base import BaseHostWeigher


class FreeResourceWeigher(BaseHostWeigher):
    """Raw weight = free `resource` (allocation ratios included); a positive multiplier spreads
    instances over hosts, a negative one stacks them (Nova's *_weight_multiplier)."""

    #: attribute of Resources this weigher reads
    resource: ClassVar[str]

    def raw_weight(self, host: HostState, spec: RequestSpec) -> float:
        return float(getattr(host.free, self.resource))

    def raw_weights(self, table: HostTable, spec: RequestSpec) -> np.ndarray:
        return table.free[:, RESOURCE_COLUMNS[self.resource]]
