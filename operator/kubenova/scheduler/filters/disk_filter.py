"""DiskFilter: enough free disk (Nova's retired DiskFilter, now placement's DISK_GB)."""

from __future__ import annotations

from kubenova.scheduler.filters._resource import ResourceFilter


class DiskFilter(ResourceFilter):
    """Mirrors Nova's DiskFilter: requested GiB <= free GiB (capacity x disk ratio - used)."""

    resource = "disk_gib"
    unit = " GiB"
    noun = "disk"
