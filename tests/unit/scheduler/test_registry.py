"""Filters and weighers by name: the defaults load, and a bad name says what the good ones are."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

import pytest

from kubenova.scheduler.registry import (
    DEFAULT_FILTERS,
    DEFAULT_WEIGHERS,
    FILTERS,
    WEIGHERS,
    load_filters,
    load_weighers,
)

Loader = Callable[[Iterable[str]], list]


def test_default_filters_load_in_novas_order() -> None:
    filters = load_filters(DEFAULT_FILTERS)
    assert [f.name for f in filters] == [
        "ComputeFilter",
        "AvailabilityZoneFilter",
        "CoreFilter",
        "RamFilter",
        "DiskFilter",
        "ImagePropertiesFilter",
        "AggregateInstanceExtraSpecsFilter",
        "ServerGroupAntiAffinityFilter",
        "ServerGroupAffinityFilter",
        "SameHostFilter",
        "DifferentHostFilter",
    ]
    assert set(DEFAULT_FILTERS) == set(FILTERS)


def test_default_weighers_are_all_weighers() -> None:
    weighers = load_weighers(DEFAULT_WEIGHERS)
    assert (
        {w.name for w in weighers}
        == set(WEIGHERS)
        == {
            "RAMWeigher",
            "CPUWeigher",
            "DiskWeigher",
            "IoOpsWeigher",
            "BuildFailureWeigher",
            "ServerGroupSoftAffinityWeigher",
            "ServerGroupSoftAntiAffinityWeigher",
        }
    )


@pytest.mark.parametrize("registry", [FILTERS, WEIGHERS])
def test_registered_under_their_class_names(registry: dict[str, type]) -> None:
    assert all(name == cls.__name__ for name, cls in registry.items())


def test_configured_order_and_subset_are_kept() -> None:
    assert [f.name for f in load_filters(["RamFilter", "ComputeFilter"])] == [
        "RamFilter",
        "ComputeFilter",
    ]
    assert load_filters([]) == []
    assert [w.name for w in load_weighers(["IoOpsWeigher"])] == ["IoOpsWeigher"]


@pytest.mark.parametrize(
    ("load", "names", "message"),
    [
        (
            load_filters,
            ["ComputeFilter", "RAMFilter"],
            "unknown filter 'RAMFilter'; valid filters: ",
        ),
        (load_filters, ["AllHostsFilter"], "unknown filter 'AllHostsFilter'; valid filters: "),
        (load_weighers, ["RamWeigher"], "unknown weigher 'RamWeigher'; valid weighers: "),
        (load_filters, ["RamFilter", "RamFilter"], "filter 'RamFilter' is listed more than once"),
        (
            load_weighers,
            ["RAMWeigher", "RAMWeigher"],
            "weigher 'RAMWeigher' is listed more than once",
        ),
    ],
)
def test_bad_names_raise_clearly(load: Loader, names: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}"):
        load(names)


@pytest.mark.parametrize(("load", "registry"), [(load_filters, FILTERS), (load_weighers, WEIGHERS)])
def test_unknown_name_lists_every_valid_one(load: Loader, registry: dict[str, type]) -> None:
    with pytest.raises(ValueError) as raised:
        load(["Nope"])
    assert str(raised.value).endswith(", ".join(sorted(registry)))
