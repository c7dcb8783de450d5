"""One status write through several states (conductor/status.py `via`): each state recorded with
its own time, conditions as if written one by one, the state machine checked hop by hop, no
read before the write when the caller's copy is current."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from kubenova.conductor import actionlog, states
from kubenova.conductor.status import Hop, Seen, StatusWriter, chain
from kubenova.timestamps import iso, now

T0 = now()


class Objects:
    def __init__(self) -> None:
        self.patches: list[dict] = []
        self.reads = 0

    async def get(self, plural, name, namespace=None):
        self.reads += 1
        raise AssertionError("no read expected")

    async def patch_status_unless_changed(self, plural, obj, status):
        self.patches.append(status)
        return {**obj, "status": {**(obj.get("status") or {}), **status}}


def known() -> dict:
    meta = {"name": "vm", "namespace": "ns", "resourceVersion": "5", "generation": 1}
    return {"metadata": {**meta, "creationTimestamp": iso(T0)}, "status": {}}


def at(seconds: float):
    return T0 + timedelta(seconds=seconds)


def test_a_build_to_spawning_in_one_write_records_every_step():
    objects = Objects()
    via = [
        Hop(states.SCHEDULING, "build requested", at(0.1)),
        Hop(states.NETWORKING, "claimed resources on h1", at(0.2)),
        Hop(states.BLOCK_DEVICE_MAPPING, "no ports requested", at(0.3)),
    ]
    updated = asyncio.run(
        StatusWriter(objects).transition(
            "ns", "vm", states.NEW, states.SPAWNING, "root disk only", {"host": "h1"},
            at=at(0.4), known=known(), via=via,
        )
    )  # fmt: skip
    assert objects.reads == 0 and len(objects.patches) == 1
    status = updated["status"]
    assert (status["vmState"], status["taskState"], status["host"]) == (
        "BUILDING",
        "SPAWNING",
        "h1",
    )
    history = [(e["taskState"], e["time"]) for e in status["phaseTransitionTimestamps"]]
    assert history == [
        ("SCHEDULING", iso(at(0.1))),
        ("NETWORKING", iso(at(0.2))),
        ("BLOCK_DEVICE_MAPPING", iso(at(0.3))),
        ("SPAWNING", iso(at(0.4))),
    ]
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Scheduled"]["status"] == "True"
    assert conditions["Scheduled"]["lastTransitionTime"] == iso(at(0.2))
    assert conditions["NetworkReady"]["status"] == conditions["BlockDevicesReady"]["status"]
    assert conditions["BlockDevicesReady"]["status"] == "True"
    assert conditions["Ready"]["status"] == "False"


def test_a_move_into_active_with_the_guest_up_is_ready_at_once():
    objects = Objects()
    obj = known()
    obj["status"] = {"vmState": "BUILDING", "taskState": "SPAWNING", "host": "h1"}
    updated = asyncio.run(
        StatusWriter(objects).transition(
            "ns", "vm", states.SPAWNING, states.ACTIVE, "the VM runs; the guest OS is up",
            {"guestBootedAt": iso(at(1)), "guestBootSignal": "Hypervisor"},
            known=obj, guest_up=True,
        )
    )  # fmt: skip
    ready = next(c for c in updated["status"]["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("True", "GuestBooted")
    assert updated["status"]["guestBootSignal"] == "Hypervisor"


def test_every_hop_is_checked_against_the_state_machine():
    skipping = [Hop(states.SCHEDULING, "m", at(0)), Hop(states.BLOCK_DEVICE_MAPPING, "m", at(0))]
    writer = StatusWriter(Objects())
    with pytest.raises(states.InvalidTransition):  # SCHEDULING -> BLOCK_DEVICE_MAPPING
        asyncio.run(
            writer.transition(
                "ns", "vm", states.NEW, states.SPAWNING, "m", known=known(), via=skipping
            )
        )


def test_moves_written_together_derive_in_turn():
    """An acceptance folded into the ERROR of a NoValidHost: the create action it starts is
    finished in the same write."""
    derive = chain(
        [
            actionlog.create_started(at(0), at(0.1)),
            actionlog.create_finished(actionlog.ERROR, "No valid host was found", at(0.2)),
        ]
    )
    patch: dict = {}
    derive({}, patch)
    (create,) = patch["actions"]
    assert (create["action"], create["result"]) == ("create", actionlog.ERROR)
    assert create["finishTime"] == iso(at(0.2))


def test_a_watch_copy_at_a_version_the_actor_had_needs_no_read():
    seen = Seen(limit=2)
    for version in ("5", "6", "7"):
        seen.add({"metadata": {"resourceVersion": version}})
    assert seen.known({"metadata": {"resourceVersion": "7"}})
    assert seen.known({"metadata": {"resourceVersion": "6"}})  # behind: nothing new
    assert not seen.known({"metadata": {"resourceVersion": "5"}})  # forgotten: read
    assert not seen.known({"metadata": {"resourceVersion": "8"}})  # someone else wrote
    assert not seen.known(None) and not seen.known({"metadata": {}})
