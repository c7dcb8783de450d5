"""The fast path (masks and arrays over a HostTable) against the per-host path (host_passes,
raw_weight): on random clusters and requests both keep the same hosts, remove as many per
filter, and rank the survivors in the same order (same weights, same tie-break)."""

from __future__ import annotations

import random
from dataclasses import replace

import numpy as np
import pytest

from kubenova.scheduler.config import SchedulerConfig
from kubenova.scheduler.filter_scheduler import FilterScheduler
from kubenova.scheduler.filters.image_properties_filter import ARCH_LABEL, HYPERVISOR_LABEL
from kubenova.scheduler.host_state import ZONE_LABEL, AllocationRatios, HostState, NodeSummary
from kubenova.scheduler.host_table import HostTable
from kubenova.scheduler.interface import RequestSpec
from kubenova.scheduler.registry import FILTERS, WEIGHERS
from kubenova.scheduler.resources import Resources

ZONES = ["az1", "az2", "az3", None]
ARCHES = ["amd64", "arm64", None]
HYPERVISORS = ["qemu", "kvm", "kubevirt", None]


def random_host(rng: random.Random, i: int) -> HostState:
    labels = {}
    for key, values in ((ZONE_LABEL, ZONES), (ARCH_LABEL, ARCHES), (HYPERVISOR_LABEL, HYPERVISORS)):
        if (value := rng.choice(values)) is not None:
            labels[key] = value
    if rng.random() < 0.6:
        labels["disk"] = rng.choice(["ssd", "hdd"])
    if rng.random() < 0.5:
        labels["gpus"] = str(rng.randint(0, 4))
    node = NodeSummary(
        name=f"host-{i:03d}",
        allocatable=Resources(rng.choice([2, 4, 8, 16]), rng.choice([2048, 8192, 32768]), 100),
        labels=labels,
        ready=rng.random() < 0.9,
        unschedulable=rng.random() < 0.05,
        taints=("gpu:NoSchedule",) if rng.random() < 0.05 else ("x:PreferNoSchedule",),
    )
    used = Resources(rng.randint(0, 20), rng.choice([0, 512, 4096, 16384]), rng.randint(0, 90))
    return HostState.build(
        node,
        used,
        AllocationRatios(),
        instances=rng.randint(0, 10),
        io_ops=rng.randint(0, 3),
        failed_builds=rng.choice([0, 0, 0, 1, 2]),
        service_down="heartbeat stopped" if rng.random() < 0.05 else None,
    )


def random_spec(rng: random.Random, names: list[str]) -> RequestSpec:
    extra = {}
    if rng.random() < 0.3:
        extra["disk"] = rng.choice(["ssd", "hdd"])
    if rng.random() < 0.2:
        extra["aggregate_instance_extra_specs:gpus"] = rng.choice([">= 2", "<in> 1", "s== 3"])
    if rng.random() < 0.2:
        extra["hw:cpu_policy"] = "dedicated"  # another scope: ignored
    props = {}
    if rng.random() < 0.3:
        props["architecture"] = rng.choice(["x86_64", "aarch64", "i686"])
    if rng.random() < 0.3:
        props["hypervisor_type"] = rng.choice(["qemu", "kvm", "kubevirt"])
    policy = rng.choice(
        [None, None, "affinity", "anti-affinity", "soft-affinity", "soft-anti-affinity"]
    )
    group = {n: rng.randint(0, 2) for n in rng.sample(names, min(len(names), rng.randint(0, 4)))}
    same = frozenset(rng.sample(names, 2)) if rng.random() < 0.1 and len(names) > 1 else None
    different = frozenset(rng.sample(names, 1)) if rng.random() < 0.2 and names else frozenset()
    request = Resources(
        rng.choice([1, 2, 4]), rng.choice([256, 1024, 4096]), rng.choice([0, 1, 20])
    )
    return RequestSpec(
        instance_uid="uid",
        instance="ns/vm",
        resources=request,
        availability_zone=rng.choice([None, None, "az1", "az2", "nowhere"]),
        image_properties=props,
        extra_specs=extra,
        ignore_hosts=frozenset(rng.sample(names, min(len(names), rng.randint(0, 2)))),
        group_policy=policy,
        group_max_per_host=rng.randint(1, 2),
        group_hosts=group,
        same_host=same,
        different_host=different,
    )  # fmt: skip


def random_config(rng: random.Random) -> SchedulerConfig:
    multipliers = {
        name: rng.choice([-2.0, -1.0, 0.5, 1.0, 3.0]) for name in WEIGHERS if rng.random() < 0.5
    }
    return SchedulerConfig(
        weight_multipliers=multipliers,
        max_placement_results=rng.choice([1000, 1000, 3, 10]),
    )  # fmt: skip


@pytest.mark.parametrize("seed", range(300))
def test_the_fast_path_chooses_what_the_per_host_path_chooses(seed: int) -> None:
    rng = random.Random(seed)
    hosts = [random_host(rng, i) for i in range(rng.randint(0, 60))]
    spec = random_spec(rng, [h.name for h in hosts])
    scheduler = FilterScheduler(None, random_config(rng))
    scheduler.start = rng.randint(0, 100)
    slow = scheduler.explain(spec, hosts)
    table = HostTable.of_hosts(hosts)
    ranked, total, removed = scheduler.rank(spec, table)
    assert (total, removed) == (slow.total, slow.removed)
    assert [table.name(i) for i in ranked] == [w.host.name for w in slow.ranking]


@pytest.mark.parametrize("seed", range(50))
def test_every_mask_and_raw_weight_matches_its_per_host_answer(seed: int) -> None:
    rng = random.Random(1000 + seed)
    hosts = [random_host(rng, i) for i in range(40)]
    spec = random_spec(rng, [h.name for h in hosts])
    table = HostTable.of_hosts(hosts)
    for name, cls in FILTERS.items():
        expected = [cls().host_passes(h, spec).passed for h in hosts]
        assert cls().mask(table, spec).tolist() == expected, name
    for name, cls in WEIGHERS.items():
        expected = [cls().raw_weight(h, spec) for h in hosts]
        assert np.asarray(cls().raw_weights(table, spec)).tolist() == expected, name


def test_a_table_row_is_the_host_it_was_made_from() -> None:
    rng = random.Random(7)
    hosts = [random_host(rng, i) for i in range(10)]
    table = HostTable.of_hosts(hosts)
    assert table.hosts() == hosts
    assert table.position("host-004") == 4 and table.position("nope") is None


def test_only_max_placement_results_survivors_are_weighed_and_the_start_moves_on() -> None:
    hosts = [
        HostState.build(
            NodeSummary(f"h{i}", Resources(8, 8192, 100), ready=True),
            Resources(),
            AllocationRatios(),
        )
        for i in range(10)
    ]
    scheduler = FilterScheduler(None, SchedulerConfig(max_placement_results=4))
    spec = RequestSpec("uid", "ns/vm", Resources(1, 256, 1))
    ranked, total, _ = scheduler.rank(spec, HostTable.of_hosts(hosts))
    assert total == 10 and [hosts[i].name for i in ranked] == ["h0", "h1", "h2", "h3"]
    scheduler.start = 8
    ranked, _, _ = scheduler.rank(spec, HostTable.of_hosts(hosts))
    assert [hosts[i].name for i in ranked] == ["h8", "h9", "h0", "h1"]  # wraps around


@pytest.mark.parametrize("seed", range(100))
def test_long_rankings_match_weight_for_weight(seed: int) -> None:
    """Requests most hosts can take, so the order of many survivors (ties included: hosts
    built alike) is what is compared."""
    rng = random.Random(5000 + seed)
    hosts = [random_host(rng, i) for i in range(rng.randint(20, 80))]
    twins = [replace(h, node=replace(h.node, name=f"twin-{h.name}")) for h in hosts[:5]]
    hosts += twins  # equal weights: the tie-break decides
    spec = RequestSpec("uid", "ns/vm", Resources(1, 128, 0), group_policy=rng.choice(
        [None, "soft-affinity", "soft-anti-affinity"]), group_hosts={hosts[0].name: 2})  # fmt: skip
    scheduler = FilterScheduler(None, random_config(rng))
    slow = scheduler.explain(spec, hosts)
    table = HostTable.of_hosts(hosts)
    ranked, _, _ = scheduler.rank(spec, table)
    assert len(ranked) >= 3
    assert [table.name(i) for i in ranked] == [w.host.name for w in slow.ranking]
