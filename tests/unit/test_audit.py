"""The audit's decisions (audit/decide.py): what is an orphan, and when it is old enough."""

from __future__ import annotations

from kubenova.audit.decide import DatapathView, InstanceView, OrphanTracker, Snapshot, suspects

A, B, GONE = "uid-a", "uid-b", "uid-gone"


def view(host: str | None, vm: str = "ACTIVE", task: str | None = None, deleting=False):
    obj = {
        "metadata": {"namespace": "p", "name": f"vm-{host}", "uid": "x"},
        "status": {"vmState": vm, "taskState": task, "host": host},
    }
    if deleting:
        obj["metadata"]["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    return InstanceView.of(obj)


def found(snap: Snapshot) -> set[tuple[str, ...]]:
    return {(s.kind, *s.key) for s in suspects(snap)}


def test_things_of_an_instance_that_no_longer_exists_are_suspects():
    snap = Snapshot(
        instances={A: view("h1")},
        vms=[("h1", A), ("h1", GONE)],
        ports=[("p", "net-10-0-0-2", "port-1", A), ("p", "net-10-0-0-3", "port-2", GONE)],
        claims=[("h1", A), ("h2", GONE)],
        attachments=[("p", "data", A), ("p", "old", GONE)],
    )
    assert found(snap) == {
        ("vm", "h1", GONE),
        ("port", "p", "net-10-0-0-3"),
        ("claim", "h2", GONE),
        ("volume_attachment", "p", "old"),
    }
    port = next(s for s in suspects(snap) if s.kind == "port")
    assert port.object_uid == "port-2" and port.owner == GONE
    assert "no longer exists" in port.why


def test_a_resting_instance_owns_only_what_is_on_its_host():
    snap = Snapshot(
        instances={A: view("h1"), B: view(None, vm="ERROR")},
        vms=[("h1", A), ("h2", A), ("h2", B)],
        ports=[("p", "net-10-0-0-9", "port-9", B)],
        claims=[("h1", A), ("h2", A), ("h2", B)],
        attachments=[("p", "data", B)],
    )
    assert found(snap) == {
        ("vm", "h2", A),
        ("vm", "h2", B),
        ("port", "p", "net-10-0-0-9"),
        ("claim", "h2", A),
        ("claim", "h2", B),
        ("volume_attachment", "p", "data"),
    }


def test_an_instance_that_is_building_acting_or_being_deleted_is_left_alone():
    """A build step, an action or a deletion is changing what it holds (a claim taken before the
    status names the host, ports before the addresses): nothing of it is a suspect."""
    for inst in (
        view(None, vm="BUILDING", task="SCHEDULING"),
        view("h1", vm="BUILDING", task="SPAWNING"),
        view("h1", task="POWERING_OFF"),
        view(None, vm="ERROR", deleting=True),
    ):
        snap = Snapshot(
            instances={A: inst},
            vms=[("h2", A)],
            ports=[("p", "n", "port", A)],
            claims=[("h2", A)],
            attachments=[("p", "d", A)],
        )
        assert found(snap) == set(), inst


def test_an_orphan_is_removed_only_once_it_has_been_one_for_the_grace_period():
    tracker = OrphanTracker()
    young = suspects(Snapshot(instances={}, vms=[("h1", GONE)], claims=[("h1", GONE)]))
    assert tracker.ripe(young, now=0, grace=30) == []
    assert tracker.ripe(young, now=29, grace=30) == []
    ripe = tracker.ripe(young, now=30, grace=30)
    assert {s.kind for s in ripe} == {"vm", "claim"}
    # one that stops being a suspect is forgotten: seen again later, it starts over
    only_vm = [s for s in young if s.kind == "vm"]
    tracker.ripe(only_vm, now=31, grace=30)
    assert tracker.ripe(young, now=40, grace=30) == only_vm
    # the claim was forgotten at 31 and seen again at 40; a removed one is forgotten too
    tracker.forget(only_vm[0])
    assert tracker.ripe(young, now=41, grace=30) == []
    assert tracker.ripe(young, now=70, grace=30) == [s for s in young if s.kind == "claim"]


def test_grace_zero_removes_at_first_sight():
    tracker = OrphanTracker()
    young = suspects(Snapshot(instances={}, claims=[("h1", GONE)]))
    assert tracker.ripe(young, now=0, grace=0) == young


def test_datapath_leftovers_of_gone_networks_and_ports_are_suspects():
    datapath = DatapathView(
        namespaces=[("ns-live", "net-live"), ("ns-gone", "net-gone"), ("ns-lost", None)],
        taps=[
            ("ns-live", "tap-port", False),  # its Port exists
            ("ns-live", "tap-old", False),  # its Port is gone, no qemu holds it
            ("ns-live", "tap-held", True),  # Port gone, but a qemu holds it: the VM goes first
            ("ns-gone", "tap-x", False),  # goes with its namespace
        ],
        strays=[("dnsmasq", "4242"), ("datapath_dir", "/run/kubenova/s/ns-old")],
        networks=frozenset({"net-live"}),
        port_taps=frozenset({"tap-port"}),
    )
    assert found(Snapshot(instances={}, datapath=datapath)) == {
        ("netns", "ns-gone"),
        ("netns", "ns-lost"),
        ("tap", "ns-live", "tap-old"),
        ("dnsmasq", "4242"),
        ("datapath_dir", "/run/kubenova/s/ns-old"),
    }


def test_no_datapath_no_datapath_suspects():
    assert found(Snapshot(instances={})) == set()
