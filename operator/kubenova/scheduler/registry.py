"""Filters and weighers by name, as Nova's enabled_filters and weight_classes name them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TypeVar

from kubenova.scheduler.filters.aggregate_instance_extra_specs_filter import (
    AggregateInstanceExtraSpecsFilter,
)
from kubenova.scheduler.filters.availability_zone_filter import AvailabilityZoneFilter
from kubenova.scheduler.filters.base import BaseHostFilter
from kubenova.scheduler.filters.compute_filter import ComputeFilter
from kubenova.scheduler.filters.core_filter import CoreFilter
from kubenova.scheduler.filters.different_host_filter import DifferentHostFilter
from kubenova.scheduler.filters.disk_filter import DiskFilter
from kubenova.scheduler.filters.image_properties_filter import ImagePropertiesFilter
from kubenova.scheduler.filters.ram_filter import RamFilter
from kubenova.scheduler.filters.same_host_filter import SameHostFilter
from kubenova.scheduler.filters.server_group_affinity_filter import ServerGroupAffinityFilter
from kubenova.scheduler.filters.server_group_anti_affinity_filter import (
    ServerGroupAntiAffinityFilter,
)
from kubenova.scheduler.weighers.affinity import (
    ServerGroupSoftAffinityWeigher,
    ServerGroupSoftAntiAffinityWeigher,
)
from kubenova.scheduler.weighers.base import BaseHostWeigher
from kubenova.scheduler.weighers.build_failure import BuildFailureWeigher
from kubenova.scheduler.weighers.cpu import CPUWeigher
from kubenova.scheduler.weighers.disk import DiskWeigher
from kubenova.scheduler.weighers.io_ops import IoOpsWeigher
from kubenova.scheduler.weighers.ram import RAMWeigher

#: every filter, in the order Nova's defaults run them: cheap host-state checks first, then
#: resources, then hints
FILTERS: dict[str, type[BaseHostFilter]] = {
    cls.name: cls
    for cls in (
        ComputeFilter,
        AvailabilityZoneFilter,
        CoreFilter,
        RamFilter,
        DiskFilter,
        ImagePropertiesFilter,
        AggregateInstanceExtraSpecsFilter,
        ServerGroupAntiAffinityFilter,
        ServerGroupAffinityFilter,
        SameHostFilter,
        DifferentHostFilter,
    )
}

DEFAULT_FILTERS: tuple[str, ...] = tuple(FILTERS)

WEIGHERS: dict[str, type[BaseHostWeigher]] = {
    cls.name: cls
    for cls in (
        RAMWeigher,
        CPUWeigher,
        DiskWeigher,
        ServerGroupSoftAffinityWeigher,
        ServerGroupSoftAntiAffinityWeigher,
        BuildFailureWeigher,
        IoOpsWeigher,
    )
}

#: Nova's weight_classes default is all weighers
DEFAULT_WEIGHERS: tuple[str, ...] = tuple(WEIGHERS)

_T = TypeVar("_T")


def _load(kind: str, names: Iterable[str], known: Mapping[str, type[_T]]) -> list[_T]:
    """Instances in the configured order; a typo or a repeat is a configuration error, caught
    at start-up rather than silently skipping (or double-counting) a check."""
    names = list(names)
    for name in names:
        if name not in known:
            raise ValueError(f"unknown {kind} {name!r}; valid {kind}s: {', '.join(sorted(known))}")
        if names.count(name) > 1:
            raise ValueError(f"{kind} {name!r} is listed more than once")
    return [known[name]() for name in names]


def load_filters(names: Iterable[str]) -> list[BaseHostFilter]:
    return _load("filter", names, FILTERS)


def load_weighers(names: Iterable[str]) -> list[BaseHostWeigher]:
    return _load("weigher", names, WEIGHERS)
