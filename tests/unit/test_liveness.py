"""Host liveness from Lease renewals, judged on the judge's own clock (compute/liveness.py)."""

from __future__ import annotations

from dataclasses import replace

from kubenova.compute.liveness import HeartbeatTracker
from kubenova.scheduler.filters.compute_filter import ComputeFilter
from tests.unit.scheduler import host, spec


def test_a_host_is_down_once_its_lease_has_not_moved_for_down_after():
    tracker = HeartbeatTracker(down_after=60)
    tracker.observe({"a": "t1", "b": "t1"}, now=0)
    assert tracker.down(now=60) == {}  # exactly at the limit: not yet
    tracker.observe({"a": "t2", "b": "t1"}, now=50)  # a renewed, b did not
    down = tracker.down(now=61)
    assert list(down) == ["b"]
    assert "no heartbeat for 61s (down after 60s)" in down["b"]
    assert set(tracker.down(now=111)) == {"a", "b"}


def test_a_renewal_brings_it_back():
    tracker = HeartbeatTracker(down_after=10)
    tracker.observe({"a": "t1"}, now=0)
    assert "a" in tracker.down(now=11)
    tracker.observe({"a": "t2"}, now=12)
    assert tracker.down(now=12) == {}
    assert tracker.silent_for("a", 15) == 3


def test_the_stamp_itself_is_never_trusted_only_its_change():
    """A renewTime far in the past (writer's clock skewed) is still a heartbeat when it moves;
    a first sighting gets the benefit of the doubt for down_after."""
    tracker = HeartbeatTracker(down_after=10)
    tracker.observe({"a": "1999-01-01T00:00:00Z"}, now=100)
    assert tracker.down(now=105) == {}
    assert "a" in tracker.down(now=111)


def test_a_host_without_a_lease_is_not_monitored():
    tracker = HeartbeatTracker(down_after=10)
    tracker.observe({"a": "t1"}, now=0)
    tracker.observe({}, now=5)  # the Lease went away
    assert tracker.silent_for("a", 100) is None
    assert tracker.down(now=100, hosts=["a", "never-seen"]) == {}


def test_compute_filter_removes_a_host_whose_service_is_down():
    down = replace(host(), service_down="its compute service has sent no heartbeat for 75s")
    result = ComputeFilter().host_passes(down, spec())
    assert not result.passed
    assert "compute service is down: its compute service has sent no heartbeat" in result.reason
    assert ComputeFilter().host_passes(host(), spec()).passed


def test_only_a_heartbeat_seen_moving_proves_a_host_alive():
    """Right after a restart every host gets the benefit of the doubt (not judged down), but a
    host marked down earlier is taken to be back only once its Lease moves."""
    tracker = HeartbeatTracker(down_after=10)
    tracker.observe({"a": "t1"}, now=0)
    assert tracker.down(now=5) == {} and not tracker.seen_alive("a")
    tracker.observe({"a": "t2"}, now=6)
    assert tracker.seen_alive("a")
    assert tracker.seen_alive("no-lease")
