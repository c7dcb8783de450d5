"""CPUWeigher: prefer hosts with more free vcpus."""

from __future__ import annotations

from kubenova.scheduler.weighers._resource import FreeResourceWeigher


class CPUWeigher(FreeResourceWeigher):
    """Mirrors Nova's CPUWeigher: free vcpus, cpu_weight_multiplier 1.0 (spread)."""

    resource = "vcpus"
    default_multiplier = 1.0
