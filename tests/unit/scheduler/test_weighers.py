"""Weighers' raw values, normalisation, multipliers and the resulting ranking; and the filter
pass that precedes them (run_filters, the NoValidHost message)."""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from kubenova.scheduler.filters.base import BaseHostFilter, FilterResult
from kubenova.scheduler.filters.compute_filter import ComputeFilter
from kubenova.scheduler.filters.ram_filter import RamFilter
from kubenova.scheduler.host_state import HostState
from kubenova.scheduler.interface import RequestSpec
from kubenova.scheduler.registry import load_weighers
from kubenova.scheduler.resources import Resources
from kubenova.scheduler.weighers.affinity import (
    ServerGroupSoftAffinityWeigher,
    ServerGroupSoftAntiAffinityWeigher,
)
from kubenova.scheduler.weighers.base import BaseHostWeigher, normalize
from kubenova.scheduler.weighers.build_failure import BuildFailureWeigher
from kubenova.scheduler.weighers.cpu import CPUWeigher
from kubenova.scheduler.weighers.disk import DiskWeigher
from kubenova.scheduler.weighers.io_ops import IoOpsWeigher
from kubenova.scheduler.weighers.ram import RAMWeigher
from kubenova.scheduler.weighing import WeighedHost, explain_no_valid_host, run_filters, weigh
from tests.unit.scheduler import host, spec

BUSY = host(used=Resources(3, 1024, 40), io_ops=2, failed_builds=1)

# (weigher, host, spec, raw weight)
RAW = [
    pytest.param(RAMWeigher, BUSY, spec(), 7168, id="ram-free-mib"),
    pytest.param(CPUWeigher, BUSY, spec(), 13, id="cpu-free-vcpus-with-ratio"),
    pytest.param(DiskWeigher, BUSY, spec(), 60, id="disk-free-gib"),
    pytest.param(IoOpsWeigher, BUSY, spec(), 2, id="io-ops"),
    pytest.param(BuildFailureWeigher, BUSY, spec(), 1, id="failed-builds"),
    pytest.param(
        ServerGroupSoftAffinityWeigher,
        host("n1"),
        spec(group_policy="soft-affinity", group_hosts={"n1": 3}),
        3,
        id="soft-affinity-members",
    ),
    pytest.param(
        ServerGroupSoftAffinityWeigher,
        host("n2"),
        spec(group_policy="soft-affinity", group_hosts={"n1": 3}),
        0,
        id="soft-affinity-no-members",
    ),
    pytest.param(
        ServerGroupSoftAffinityWeigher,
        host("n1"),
        spec(group_policy="soft-anti-affinity", group_hosts={"n1": 3}),
        0,
        id="soft-affinity-other-policy",
    ),
    pytest.param(
        ServerGroupSoftAntiAffinityWeigher,
        host("n1"),
        spec(group_policy="soft-anti-affinity", group_hosts={"n1": 3}),
        -3,
        id="soft-anti-affinity-members",
    ),
    pytest.param(
        ServerGroupSoftAntiAffinityWeigher,
        host("n1"),
        spec(group_policy="affinity", group_hosts={"n1": 3}),
        0,
        id="soft-anti-affinity-other-policy",
    ),
]


@pytest.mark.parametrize(("weigher_cls", "host_state", "request_spec", "raw"), RAW)
def test_raw_weight(
    weigher_cls: type[BaseHostWeigher],
    host_state: HostState,
    request_spec: RequestSpec,
    raw: float,
) -> None:
    assert weigher_cls().raw_weight(host_state, request_spec) == raw


@pytest.mark.parametrize(
    ("weigher_cls", "multiplier"),
    [
        (RAMWeigher, 1.0),
        (CPUWeigher, 1.0),
        (DiskWeigher, 1.0),
        (IoOpsWeigher, -1.0),
        (BuildFailureWeigher, -1_000_000.0),
        (ServerGroupSoftAffinityWeigher, 1.0),
        (ServerGroupSoftAntiAffinityWeigher, 1.0),
    ],
)
def test_default_multipliers_are_novas(
    weigher_cls: type[BaseHostWeigher], multiplier: float
) -> None:
    assert weigher_cls.default_multiplier == multiplier


@pytest.mark.parametrize(
    ("values", "normalized"),
    [
        ([], []),
        ([5.0], [0.0]),
        ([3.0, 3.0, 3.0], [0.0, 0.0, 0.0]),  # all equal: ranks nothing
        ([0.0, 5.0, 10.0], [0.0, 0.5, 1.0]),
        ([-3.0, 0.0, -1.0], [0.0, 1.0, 2 / 3]),
    ],
)
def test_normalize(values: list[float], normalized: list[float]) -> None:
    assert normalize(values) == pytest.approx(normalized)


def names(items: Iterable[HostState | WeighedHost]) -> list[str]:
    return [item.host.name if isinstance(item, WeighedHost) else item.name for item in items]


# 1024, 4096 and 8192 MiB free: normalised 0, 3/7 and 1
RAM_HOSTS = [
    host("a", used=Resources(0, 7168, 0)),
    host("b", used=Resources(0, 4096, 0)),
    host("c"),
]

# (weighers, multipliers, hosts, expected order, expected weights)
WEIGH = [
    pytest.param(
        [RAMWeigher()], {}, RAM_HOSTS, ["c", "b", "a"], [1.0, 3 / 7, 0.0], id="ram-spreads"
    ),
    pytest.param(
        [RAMWeigher()],
        {"RAMWeigher": -1.0},
        RAM_HOSTS,
        ["a", "b", "c"],
        [0.0, -3 / 7, -1.0],
        id="negative-multiplier-stacks",
    ),
    pytest.param(
        [RAMWeigher()],
        {"RAMWeigher": 2.5},
        RAM_HOSTS,
        ["c", "b", "a"],
        [2.5, 2.5 * 3 / 7, 0.0],
        id="configured-multiplier-overrides-default",
    ),
    pytest.param(
        [RAMWeigher()],
        {"RAMWeigher": 0.0},
        RAM_HOSTS,
        ["a", "b", "c"],
        [0.0, 0.0, 0.0],
        id="zero-multiplier-disables-ties-keep-order",
    ),
    pytest.param(
        [IoOpsWeigher()],
        {},
        [host("a", io_ops=4), host("b", io_ops=0), host("c", io_ops=2)],
        ["b", "c", "a"],
        [0.0, -0.5, -1.0],
        id="io-ops-busier-loses",
    ),
    pytest.param(
        [RAMWeigher(), CPUWeigher()],
        {},
        [
            host("a", used=Resources(16, 0, 0)),  # RAM 1.0 + CPU 0.0
            host("b", used=Resources(8, 2048, 0)),  # RAM 0.75 + CPU 0.5
            host("c", used=Resources(0, 8192, 0)),  # RAM 0.0 + CPU 1.0
        ],
        ["b", "a", "c"],
        [1.25, 1.0, 1.0],
        id="weights-sum-ties-keep-order",
    ),
    pytest.param(
        [RAMWeigher(), CPUWeigher(), DiskWeigher(), BuildFailureWeigher()],
        {},
        [
            host("roomy-but-failing", failed_builds=1),
            host("cramped", used=Resources(15, 8000, 99)),
        ],
        ["cramped", "roomy-but-failing"],
        [0.0, 3.0 - 1_000_000.0],
        id="build-failures-dominate",
    ),
    pytest.param(
        [ServerGroupSoftAntiAffinityWeigher()],
        {},
        [host("a"), host("b"), host("c")],
        ["a", "b", "c"],
        [0.0, 0.0, 0.0],
        id="soft-anti-affinity-without-group",
    ),
]


@pytest.mark.parametrize(("weighers", "multipliers", "hosts", "order", "weights"), WEIGH)
def test_weigh(
    weighers: list[BaseHostWeigher],
    multipliers: dict[str, float],
    hosts: list[HostState],
    order: list[str],
    weights: list[float],
) -> None:
    ranked = weigh(hosts, spec(), weighers, multipliers)
    assert names(ranked) == order
    assert [w.weight for w in ranked] == pytest.approx(weights)


@pytest.mark.parametrize(
    ("policy", "order"),
    [
        ("soft-affinity", ["full", "some", "empty"]),
        ("soft-anti-affinity", ["empty", "some", "full"]),
    ],
)
def test_soft_group_policies_rank(policy: str, order: list[str]) -> None:
    hosts = [host("some"), host("empty"), host("full")]
    request = spec(group_policy=policy, group_hosts={"some": 1, "full": 3})
    weighers = [ServerGroupSoftAffinityWeigher(), ServerGroupSoftAntiAffinityWeigher()]
    assert names(weigh(hosts, request, weighers, {})) == order


def test_default_weighers_rank_a_realistic_cluster() -> None:
    """Every weigher at Nova's defaults: a failed build sinks a host; I/O load and free room
    rank the rest."""
    hosts = [
        host("failing", failed_builds=2),
        host("busy", io_ops=3),
        host("full", used=Resources(12, 6144, 80)),
        host("idle"),
    ]
    weighers = load_weighers(
        [
            "RAMWeigher",
            "CPUWeigher",
            "DiskWeigher",
            "IoOpsWeigher",
            "BuildFailureWeigher",
            "ServerGroupSoftAffinityWeigher",
            "ServerGroupSoftAntiAffinityWeigher",
        ]
    )
    assert names(weigh(hosts, spec(), weighers, {})) == ["idle", "busy", "full", "failing"]


class _Rejects(BaseHostFilter):
    """Rejects the hosts it is given by name."""

    def __init__(self, *rejected: str) -> None:
        self.rejected = rejected

    def host_passes(self, host: HostState, spec: RequestSpec) -> FilterResult:
        return FilterResult.fail("no") if host.name in self.rejected else FilterResult.ok()


def test_run_filters_counts_each_filter_and_lists_survivors() -> None:
    hosts = [
        host("down", ready=False),
        host("small", allocatable=Resources(4, 256, 100)),
        host("ok1"),
        host("ok2"),
    ]
    survivors, removed, after = run_filters(hosts, spec(), [ComputeFilter(), RamFilter()])
    assert names(survivors) == ["ok1", "ok2"]
    assert removed == {"ComputeFilter": 1, "RamFilter": 1}
    assert after == {"ComputeFilter": ["small", "ok1", "ok2"], "RamFilter": ["ok1", "ok2"]}
    assert list(removed) == ["ComputeFilter", "RamFilter"]


def test_run_filters_reports_zeros_and_stops_when_nobody_is_left() -> None:
    class Exploding(BaseHostFilter):
        def host_passes(self, host: HostState, spec: RequestSpec) -> FilterResult:
            raise AssertionError("asked after every host was gone")

    hosts = [host("a"), host("b")]
    survivors, removed, after = run_filters(
        hosts, spec(), [RamFilter(), _Rejects("a", "b"), Exploding()]
    )
    assert survivors == []
    assert removed == {"RamFilter": 0, "_Rejects": 2, "Exploding": 0}
    assert after == {"RamFilter": ["a", "b"], "_Rejects": [], "Exploding": []}


@pytest.mark.parametrize(
    ("total", "removed", "message"),
    [
        (0, {}, "No valid host was found. 0 hosts"),
        (0, {"ComputeFilter": 0, "RamFilter": 0}, "No valid host was found. 0 hosts"),
        (1, {"ComputeFilter": 1}, "No valid host was found. 1 host: ComputeFilter removed 1"),
        (
            3,
            {"ComputeFilter": 1, "AvailabilityZoneFilter": 0, "RamFilter": 2, "DiskFilter": 0},
            "No valid host was found. 3 hosts: ComputeFilter removed 1, RamFilter removed 2",
        ),
    ],
)
def test_explain_no_valid_host(total: int, removed: dict[str, int], message: str) -> None:
    assert explain_no_valid_host(total, removed) == message
