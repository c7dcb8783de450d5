"""Prometheus metrics, named in the style of KubeVirt's `kubevirt_vmi_phase_transition_*`.

Labels are limited to a phase or state name, so cardinality stays fixed however many instances
there are.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

#: 50 ms to 10 min
BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 300, 600)

PHASE_TRANSITION_FROM_CREATION = Histogram(
    "kubenova_instance_phase_transition_time_from_creation_seconds",
    "Seconds from an Instance's creation to its reaching a vmState/taskState.",
    ["phase"],
    buckets=BUCKETS,
)
CREATE_TO_ACTIVE = Histogram(
    "kubenova_instance_create_to_active_seconds",
    "Seconds from an Instance's creation to vmState ACTIVE (the boot latency users see).",
    buckets=BUCKETS,
)
CREATE_TO_GUEST_BOOTED = Histogram(
    "kubenova_instance_create_to_guest_booted_seconds",
    "Seconds from an Instance's creation to the first sign that its guest OS is up (condition "
    "Ready: DHCP, cloud-init, guest agent, console; the build's boot only).",
    buckets=BUCKETS,
)
TASK_STATE_DURATION = Histogram(
    "kubenova_instance_task_state_duration_seconds",
    "Seconds an Instance spent in each build task state.",
    ["task_state"],
    buckets=BUCKETS,
)
BUILD_FAILURES = Counter(
    "kubenova_instance_build_failures_total",
    "Builds that failed on a host, by the step they failed in.",
    ["task_state"],
)


def seconds_between(start: datetime, end: datetime) -> float:
    return max(0.0, (end - start).total_seconds())


class VmStateCollector(Collector):
    """`kubenova_instances{vm_state}` computed at scrape time from the watch-fed cache."""

    def __init__(self, states: Callable[[], Iterable[str]]) -> None:
        self._states = states

    def collect(self):
        gauge = GaugeMetricFamily(
            "kubenova_instances", "Instances by Nova vmState.", labels=["vm_state"]
        )
        counts: dict[str, int] = {}
        for state in self._states():
            counts[state] = counts.get(state, 0) + 1
        for state, count in sorted(counts.items()):
            gauge.add_metric([state], count)
        yield gauge


_SERVING: set[tuple[str, int]] = set()


def serve(port: int, host: str = "127.0.0.1") -> None:
    """Start the metrics endpoint (a daemon thread; scrapes do not touch the event loop).
    Once per address: with leader election the endpoint is up while the replica stands by,
    and the operator's start-up asks for it again when it becomes leader."""
    if (host, port) in _SERVING:
        return
    start_http_server(port, addr=host, registry=REGISTRY)
    _SERVING.add((host, port))


SCHEDULER_DECISION = Histogram(
    "kubenova_scheduler_decision_seconds",
    "Seconds one scheduling decision took: filtering, weighing and the placement claim.",
    buckets=BUCKETS,
)
NO_VALID_HOST = Counter(
    "kubenova_scheduler_no_valid_host_total",
    "Scheduling decisions that found no valid host.",
)
FILTER_REJECTIONS = Counter(
    "kubenova_scheduler_filter_rejections_total",
    "Hosts removed by each scheduler filter.",
    ["filter"],
)
RESCHEDULES = Counter(
    "kubenova_instance_reschedules_total",
    "Builds sent back to SCHEDULING for an alternate host after failing on one.",
)

# -- host failure and the audit (conductor/hosts.py, audit/) ----------------------------------
HOSTS_DOWN = Gauge(
    "kubenova_compute_hosts_down",
    "Compute hosts whose heartbeat (their Lease) has not moved for --host-down-after seconds.",
)
AUDIT_CLEANUPS = Counter(
    "kubenova_audit_cleanups_total",
    "Orphans the periodic audit removed, by kind: vm (a VM or instance directory of no "
    "instance), port, claim (a ResourceProvider allocation), volume_attachment, quota.",
    ["kind"],
)
AUDIT_RUNS = Counter("kubenova_audit_runs_total", "Audits completed.")

# -- the image cache (audit/images.py: Nova's image cache manager) -------------------------
IMAGE_CACHE_REMOVED = Counter(
    "kubenova_image_cache_removed_total",
    "Cached base images the audit removed: unused by every instance on this operator's hosts "
    "for --remove-unused-original-minimum-age-seconds.",
)
IMAGE_CACHE_REMOVED_BYTES = Counter(
    "kubenova_image_cache_removed_bytes_total", "Bytes of the cached base images the audit removed."
)

# -- leader election (leader.py) --------------------------------------------------------------
LEADER = Gauge(
    "kubenova_leader",
    "1 while this replica holds the operator's leader Lease and runs its controllers, 0 while "
    "it stands by (serving the admission webhook only); 1 without leader election.",
)
