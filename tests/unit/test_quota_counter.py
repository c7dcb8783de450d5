"""UsageCounter: per-namespace usage from the consumers' status.quotaUsage, events one at a
time, with reservations in flight counted until the consumer's status shows them."""

from __future__ import annotations

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
