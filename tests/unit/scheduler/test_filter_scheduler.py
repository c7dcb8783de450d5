"""The decision: filter, weigh, random among the best host_subset_size, claim, alternates.

Placement is replaced by an in-memory ledger with the same contract (claim returns False when
the room is gone), since the real one is covered against the apiserver in the integration tests.
"""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from kubenova.scheduler.config import SchedulerConfig
from kubenova.scheduler.filter_scheduler import FilterScheduler
from kubenova.scheduler.interface import NoValidHost
from kubenova.scheduler.resources import Resources
from tests.unit.scheduler import host, spec


class Ledger:
    def __init__(self, full: tuple[str, ...] = ()) -> None:
        self.full = set(full)
        self.claims: list[str] = []

    async def claim(self, node, consumer_uid, consumer, request, capacity) -> bool:
        if node in self.full:
            return False
        self.claims.append(node)
        return True


def decide(hosts, ledger=None, request=None, **config):
    scheduler = FilterScheduler(ledger or Ledger(), SchedulerConfig(**config))
    return asyncio.run(scheduler.select_destinations(request or spec(), hosts))


HOSTS = [
    host("small", used=Resources(0, 6144, 0)),
    host("big"),
    host("mid", used=Resources(0, 2048, 0)),
    host("down", ready=False),
]


def test_best_weighed_host_is_claimed_with_alternates_in_order():
    ledger = Ledger()
    selection = decide(HOSTS, ledger)
    assert selection.host == "big" and ledger.claims == ["big"]
    assert selection.alternates == ("mid", "small")  # max_attempts 3: two alternates


def test_a_lost_claim_falls_through_to_the_next_host():
    ledger = Ledger(full=("big",))
    assert decide(HOSTS, ledger).host == "mid"


def test_ignored_hosts_are_never_chosen():
    assert decide(HOSTS, request=spec(ignore_hosts=frozenset({"big"}))).host == "mid"


def test_no_valid_host_names_the_filters():
    with pytest.raises(NoValidHost, match=r"4 hosts: ComputeFilter removed 1, RamFilter removed 3"):
        decide(HOSTS, request=spec(resources=Resources(1, 9000, 1)))


def test_host_subset_size_spreads_the_first_choice():
    picks = Counter(decide(HOSTS, host_subset_size=3).host for _ in range(300))
    assert set(picks) == {"big", "mid", "small"}
    assert "down" not in picks
