"""RAMWeigher: prefer hosts with more free RAM."""

from __future__ import annotations

from kubenova.scheduler.weighers._resource import FreeResourceWeigher


class RAMWeigher(FreeResourceWeigher):
    """Mirrors Nova's RAMWeigher: free MiB, ram_weight_multiplier 1.0 (spread)."""

    resource = "ram_mib"
    default_multiplier = 1.0
