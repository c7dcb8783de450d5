"""CoreFilter: enough free vcpus (Nova's retired CoreFilter, now placement's VCPU)."""

from __future__ import annotations

from kubenova.scheduler.filters._resource import ResourceFilter


class CoreFilter(ResourceFilter):
    """Mirrors Nova's CoreFilter: requested vcpus <= free vcpus (capacity x cpu ratio - used)."""

    resource = "vcpus"
    noun = "vcpus"
