"""What CoreFilter, RamFilter and DiskFilter share: one resource class against `host.free`.

In Nova this is placement's job (the old Core/Ram/DiskFilter did it before placement existed);
`host.free` already includes the allocation ratios, so the check is a plain comparison.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from kubenova.scheduler.filters.base import BaseHostFilter, FilterResult
from kubenova.scheduler.host_state import HostState
from kubenova.scheduler.host_table import RESOURCE_COLUMNS, HostTable
from kubenova.scheduler.interface import RequestSpec


def fmt(value: float) -> str:
    """2048.0 -> "2048", 0.5 -> "0.5": readable amounts in failure reasons."""
    return f"{value:.2f}".rstrip("0").rstrip(".")


class ResourceFilter(BaseHostFilter):
    """Passes when the request's amount of `resource` fits into what the host has free."""

    #: attribute of Resources this filter checks
    resource: ClassVar[str]
    #: how a reason reads: "needs 2048 MiB RAM, 512 MiB free" has unit " MiB" and noun "RAM"
    unit: ClassVar[str] = ""
    noun: ClassVar[str]

    def host_passes(self, host: HostState, spec: RequestSpec) -> FilterResult:
        wanted = getattr(spec.resources, self.resource)
        free = getattr(host.free, self.resource)
        if wanted <= free:
            return FilterResult.ok()
        unit = self.unit
        return FilterResult.fail(f"needs {fmt(wanted)}{unit} {self.noun}, {fmt(free)}{unit} free")

    def mask(self, table: HostTable, spec: RequestSpec) -> np.ndarray:
        wanted = float(getattr(spec.resources, self.resource))
        return table.free[:, RESOURCE_COLUMNS[self.resource]] >= wanted
