"""RamFilter: enough free memory (Nova's retired RamFilter, now placement's MEMORY_MB)."""

from __future__ import annotations

from kubenova.scheduler.filters._resource import ResourceFilter


class RamFilter(ResourceFilter):
    """Mirrors Nova's RamFilter: requested MiB <= free MiB (capacity x ram ratio - used)."""

    resource = "ram_mib"
    unit = " MiB"
    noun = "RAM"
