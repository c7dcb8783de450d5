"""HostCache (kept from events) against host_states() (rebuilt from the kopf indexes): after any
sequence of Node, ResourceProvider, Pod and Instance events, both see the same hosts with the
same capacity, use and activity, and the claims in flight count the same way."""

from __future__ import annotations

import random
from collections import defaultdict

import pytest

from kubenova.scheduler.host_cache import HostCache
from kubenova.scheduler.host_state import AllocationRatios, NodeSummary, host_states
from kubenova.scheduler.host_table import HostTable
from kubenova.scheduler.resources import Resources

RATIOS = AllocationRatios(cpu=4.0, ram=1.5, disk=1.0)
NAMES = [f"n{i}" for i in range(12)]


class World:
    """The objects as the kopf indexes hold them, and the same changes told to a HostCache."""

    def __init__(self) -> None:
        self.cache = HostCache(RATIOS, size=2)  # small: rows must grow
        self.nodes: dict[str, NodeSummary] = {}
        self.providers: dict[str, dict[str, dict]] = {}
        self.pods: dict[str, tuple[str, Resources]] = {}
        self.instances: dict[str, tuple[str, str | None]] = {}

    def step(self, rng: random.Random) -> None:
        kind = rng.choice(["node", "node", "provider", "pod", "pod", "instance", "instance"])
        name = rng.choice(NAMES)
        if kind == "node":
            if name in self.nodes and rng.random() < 0.3:
                del self.nodes[name]
                self.cache.node_changed(name, None)
            else:
                node = NodeSummary(
                    name,
                    Resources(rng.choice([2, 8]), rng.choice([1024, 4096]), 50),
                    labels={"zone": rng.choice(["a", "b"])},
                    ready=rng.random() < 0.8,
                    unschedulable=rng.random() < 0.1,
                )
                self.nodes[name] = node
                self.cache.node_changed(name, node)
        elif kind == "provider":
            uids = rng.sample(range(30), rng.randint(0, 4))
            allocations = {f"vm{u}": {"vcpus": u % 3 + 1, "ramMiB": 256 * (u % 4)} for u in uids}
            if allocations or rng.random() < 0.5:
                self.providers[name] = allocations
                self.cache.provider_changed(name, allocations)
            else:
                self.providers.pop(name, None)
                self.cache.provider_changed(name, None)
        elif kind == "pod":
            uid = f"pod{rng.randint(0, 20)}"
            if rng.random() < 0.3:
                self.pods.pop(uid, None)
                self.cache.pod_changed(uid, None, None)
            else:
                requests = Resources(rng.randint(0, 2), rng.choice([0, 128, 512]), 0)
                self.pods[uid] = (name, requests)
                self.cache.pod_changed(uid, name, requests)
        else:
            uid = f"vm{rng.randint(0, 30)}"
            if rng.random() < 0.3:
                self.instances.pop(uid, None)
                self.cache.instance_changed(uid, None, None)
            else:
                task = rng.choice([None, "SPAWNING", "POWERING_OFF", "REBOOTING"])
                self.instances[uid] = (name, task)
                self.cache.instance_changed(uid, name, task)

    def rebuilt(self, own, failed, down) -> HostTable:
        pods: dict[str, list[Resources]] = defaultdict(list)
        for node, requests in self.pods.values():
            pods[node].append(requests)
        placements: dict[tuple, list] = defaultdict(list)
        for uid, (host, task) in self.instances.items():
            placements["host", host].append((uid, task))
        hosts = host_states(
            {name: [node] for name, node in self.nodes.items()},
            {name: [allocations] for name, allocations in self.providers.items()},
            pods,
            placements,
            RATIOS,
            failed,
            own,
            down,
        )
        return HostTable.of_hosts(hosts)


def by_name(table: HostTable) -> dict[str, tuple]:
    return {
        table.name(i): (
            table.nodes[i],
            tuple(table.capacity[i]),
            tuple(table.used[i]),
            int(table.instances[i]),
            int(table.io_ops[i]),
            int(table.failed_builds[i]),
            table.service_down[i],
            bool(table.node_ok[i]),
            bool(table.down[i]),
        )
        for i in range(len(table))
    }


@pytest.mark.parametrize("seed", range(60))
def test_the_cache_kept_from_events_equals_the_state_rebuilt_from_the_indexes(seed: int) -> None:
    rng = random.Random(seed)
    world = World()
    for _ in range(rng.randint(1, 200)):
        world.step(rng)
        if rng.random() < 0.2:
            hosts = rng.sample(NAMES, 3)
            own = {hosts[0]: {"vm1": Resources(2, 256, 1), "new": Resources(1, 128, 0)}}
            failed = {hosts[1]: 2}
            down = {hosts[2]: "heartbeat stopped"}
            cached = world.cache.table(own, failed, down)
            assert by_name(cached) == by_name(world.rebuilt(own, failed, down))
            # the rows by name the tables share stay true as rows come and go
            assert all(cached.position(cached.name(i)) == i for i in range(len(cached)))
            assert all(cached.position(n) is None for n in NAMES if n not in world.nodes)
            assert len(world.cache) == len(world.nodes)
    assert by_name(world.cache.table()) == by_name(world.rebuilt({}, {}, {}))


def test_a_table_is_a_snapshot_later_events_do_not_change() -> None:
    cache = HostCache(RATIOS)
    cache.node_changed("a", NodeSummary("a", Resources(4, 1024, 10), ready=True))
    before = cache.table()
    cache.provider_changed("a", {"vm": {"vcpus": 2, "ramMiB": 512}})
    cache.node_changed("a", None)
    assert tuple(before.used[0]) == (0.0, 0.0, 0.0) and before.name(0) == "a"
    assert len(cache.table()) == 0
