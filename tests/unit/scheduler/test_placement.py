"""Claims on ResourceProviders (scheduler/placement.py): no GET before a write once a write's
answer is known, no conflict between this process's own claims, a 409 or a stale refusal
checked again on a fresh read. The apiserver is an in-memory store with resourceVersions."""

from __future__ import annotations

import asyncio
import copy

from kubenova.kube.client import ApiException
from kubenova.scheduler.placement import Placement
from kubenova.scheduler.resources import Resources

SMALL = Resources(vcpus=1, ram_mib=512, disk_gib=1)
ROOM_FOR_TWO = Resources(vcpus=2, ram_mib=1024, disk_gib=2)


class Store:
    """resourceproviders with resourceVersion preconditions, counting each call."""

    def __init__(self) -> None:
        self.objects: dict[str, dict] = {}
        self.version = 0
        self.calls: list[str] = []

    def _stored(self, body: dict) -> dict:
        self.version += 1
        body = copy.deepcopy(body)
        body["metadata"]["resourceVersion"] = str(self.version)
        self.objects[body["metadata"]["name"]] = body
        return copy.deepcopy(body)

    async def find(self, plural, name, namespace=None):
        self.calls.append("GET")
        await asyncio.sleep(0)
        found = self.objects.get(name)
        return copy.deepcopy(found) if found else None

    async def create(self, plural, body):
        self.calls.append("POST")
        await asyncio.sleep(0)
        if body["metadata"]["name"] in self.objects:
            raise ApiException(status=409)
        return self._stored(body)

    async def replace(self, plural, body):
        self.calls.append("PUT")
        await asyncio.sleep(0)
        current = self.objects.get(body["metadata"]["name"])
        if current is None:
            raise ApiException(status=404)
        if current["metadata"]["resourceVersion"] != body["metadata"]["resourceVersion"]:
            raise ApiException(status=409)
        return self._stored(body)

    async def patch(self, plural, name, namespace, patch):
        self.calls.append("PATCH")
        current = copy.deepcopy(self.objects[name])
        for uid, value in patch["spec"]["allocations"].items():
            if value is None:
                current["spec"]["allocations"].pop(uid, None)
        return self._stored(current)

    def someone_else_claims(self, name: str, uid: str) -> None:
        current = copy.deepcopy(self.objects[name])
        current["spec"]["allocations"][uid] = SMALL.as_allocation("other/vm")
        self._stored(current)


def test_claims_need_no_read_and_never_conflict_with_each_other():
    store = Store()
    placement = Placement(store)

    async def run():
        return await asyncio.gather(
            *(placement.claim("h1", f"u{i}", f"ns/vm{i}", SMALL, Resources(8, 8192, 80))
              for i in range(5))
        )  # fmt: skip

    assert asyncio.run(run()) == [True] * 5
    # a provider neither written here nor seen is created without a read
    assert store.calls == ["POST", "PUT", "PUT", "PUT", "PUT"]
    assert set(store.objects["h1"]["spec"]["allocations"]) == {f"u{i}" for i in range(5)}


def test_a_conflict_reads_afresh_and_counts_the_other_writers_claim():
    store = Store()
    placement = Placement(store)
    assert asyncio.run(placement.claim("h1", "u1", "ns/a", SMALL, ROOM_FOR_TWO))
    store.someone_else_claims("h1", "other")
    store.calls.clear()
    # the kept copy shows room for one more; the write conflicts; the fresh read shows none
    assert not asyncio.run(placement.claim("h1", "u2", "ns/b", SMALL, ROOM_FOR_TWO))
    assert store.calls == ["PUT", "GET"]
    assert set(store.objects["h1"]["spec"]["allocations"]) == {"u1", "other"}


def test_a_refusal_on_the_kept_copy_is_checked_on_a_fresh_read():
    store = Store()
    placement = Placement(store)
    assert asyncio.run(placement.claim("h1", "u1", "ns/a", SMALL, ROOM_FOR_TWO))
    assert asyncio.run(placement.claim("h1", "u2", "ns/b", SMALL, ROOM_FOR_TWO))
    # released behind this process's back (the kept copy still shows both)
    current = copy.deepcopy(store.objects["h1"])
    del current["spec"]["allocations"]["u1"]
    store._stored(current)
    store.calls.clear()
    assert asyncio.run(placement.claim("h1", "u3", "ns/c", SMALL, ROOM_FOR_TWO))
    assert store.calls == ["GET", "PUT"]
    assert set(store.objects["h1"]["spec"]["allocations"]) == {"u2", "u3"}


def test_a_release_keeps_its_answer_for_the_next_claim():
    store = Store()
    placement = Placement(store)
    assert asyncio.run(placement.claim("h1", "u1", "ns/a", SMALL, ROOM_FOR_TWO))
    assert asyncio.run(placement.claim("h1", "u2", "ns/b", SMALL, ROOM_FOR_TWO))
    assert asyncio.run(placement.release("h1", "u1"))
    store.calls.clear()
    assert asyncio.run(placement.claim("h1", "u3", "ns/c", SMALL, ROOM_FOR_TWO))
    assert store.calls == ["PUT"]


def test_a_provider_that_exists_unseen_is_read_after_its_create_conflicts():
    store = Store()
    other = Placement(store)
    assert asyncio.run(other.claim("h1", "u1", "ns/a", SMALL, ROOM_FOR_TWO))
    placement = Placement(store)  # another process: never wrote nor saw h1
    store.calls.clear()
    assert asyncio.run(placement.claim("h1", "u2", "ns/b", SMALL, ROOM_FOR_TWO))
    assert store.calls == ["POST", "GET", "PUT"]
    assert set(store.objects["h1"]["spec"]["allocations"]) == {"u1", "u2"}
    # and a full one refused on that fresh read
    store.calls.clear()
    assert not asyncio.run(Placement(store).claim("h1", "u3", "ns/c", SMALL, ROOM_FOR_TWO))
    assert store.calls == ["POST", "GET"]


def test_the_watchs_copy_is_the_base_of_the_next_claim():
    store = Store()
    other = Placement(store)
    assert asyncio.run(other.claim("h1", "u1", "ns/a", SMALL, ROOM_FOR_TWO))
    placement = Placement(store)
    watched = copy.deepcopy(store.objects["h1"])
    watched["metadata"]["managedFields"] = [{"manager": "kube-apiserver"}]
    placement.observed("h1", watched)
    store.calls.clear()
    assert asyncio.run(placement.claim("h1", "u2", "ns/b", SMALL, ROOM_FOR_TWO))
    assert store.calls == ["PUT"]  # no read: the watch showed it
    assert "managedFields" not in placement._last["h1"]["metadata"]  # kept compact
    # a copy that is behind costs a 409 and a read, never a wrong claim
    placement.observed("h1", watched)
    store.calls.clear()
    assert not asyncio.run(placement.claim("h1", "u3", "ns/c", SMALL, ROOM_FOR_TWO))
    assert store.calls == ["PUT", "GET"]
    placement.observed("h1", None)  # deleted
    assert "h1" not in placement._last
