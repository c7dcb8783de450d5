"""DiskWeigher: prefer hosts with more free disk."""

from __future__ import annotations

from kubenova.scheduler.weighers._resource import FreeResourceWeigher


class DiskWeigher(FreeResourceWeigher):
    """Mirrors Nova's DiskWeigher: free GiB, disk_weight_multiplier 1.0 (spread)."""

    resource = "disk_gib"
    default_multiplier = 1.0
