"""UsageCounter: per-namespace usage from the consumers' status.quotaUsage, events one at a
time, with reservations in flight counted until the consumer's status shows them."""

from __future__ import annotations

import random

from kubenova.quota.counter import UsageCounter
from kubenova.quota.usage import Usage

VM = Usage(instances=1, cores=2, ram_mib=512)
DISK = Usage(volumes=1, gigabytes=10)


def test_usage_follows_the_consumers_and_their_deletion():
    counter = UsageCounter()
    counter.consumer_changed("a", "vm-1", VM)
    counter.consumer_changed("a", "vol-1", DISK)
    counter.consumer_changed("b", "vm-2", VM)
    counter.consumer_changed("a", "vm-1", VM)  # a repeat counts once
    assert counter.used("a") == VM + DISK
    counter.consumer_changed("a", "vol-1", Usage(volumes=1, gigabytes=30))  # grown
    assert counter.used("a") == VM + Usage(volumes=1, gigabytes=30)
    counter.consumer_changed("a", "vm-1", None)
    counter.consumer_changed("a", "vol-1", None)
    assert counter.used("a") == Usage() and counter.used("b") == VM
    assert counter.namespaces() == {"b"}


def test_a_reservation_counts_at_once_and_once_its_status_shows_it():
    counter = UsageCounter()
    counter.hold("a", "vm-1", VM)
    assert counter.used("a") == VM and counter.held("vm-1", "a") == VM
    counter.consumer_changed("a", "vm-1", VM)  # the status caught up: no longer apart
    assert counter.used("a") == VM
    counter.hold("a", "vol-1", DISK)
    counter.consumer_changed("a", "vol-1", DISK)
    counter.hold("a", "vol-1", Usage(volumes=1, gigabytes=50))  # growth in flight replaces
    assert counter.used("a") == VM + Usage(volumes=1, gigabytes=50)
    counter.forget("a", "vol-1")  # released: the status still counts until it is gone
    assert counter.used("a") == VM + DISK
    counter.hold("a", "vm-9", VM)
    counter.forget("a", "vm-9")
    assert counter.used("a") == VM + DISK


def test_caught_up_once_it_has_seen_what_the_indexes_hold():
    counter = UsageCounter()
    instances = {"a": [("vm-1", {}), ("vm-2", {})]}
    volumes = {"b": [("vol-1", {})]}
    counter.consumer_changed("a", "vm-1", VM)
    assert not counter.caught_up(instances, volumes)
    counter.consumer_changed("a", "vm-2", VM)
    counter.consumer_changed("b", "vol-1", DISK)
    assert counter.caught_up(instances, volumes)
    assert counter.caught_up({}, {})  # once true, it stays: changes arrive as events


def test_random_sequences_count_what_a_fresh_sum_counts():
    rng = random.Random(4)
    counter = UsageCounter()
    statuses: dict[str, Usage] = {}
    pending: dict[str, Usage] = {}
    for _ in range(3000):
        uid = f"c{rng.randint(0, 15)}"
        usage = rng.choice([VM, DISK, Usage(instances=1, cores=4, ram_mib=64)])
        step = rng.random()
        if step < 0.35:
            counter.hold("a", uid, usage)
            pending[uid] = usage
        elif step < 0.5:
            counter.forget("a", uid)
            pending.pop(uid, None)
        elif step < 0.85:
            counter.consumer_changed("a", uid, usage)
            statuses[uid] = usage
            if pending.get(uid) == usage:
                del pending[uid]
        else:
            counter.consumer_changed("a", uid, None)
            statuses.pop(uid, None)
        fresh = sum(statuses.values(), Usage())
        for held_uid, held in pending.items():
            fresh = fresh + held - statuses.get(held_uid, Usage())
        assert counter.used("a") == fresh
