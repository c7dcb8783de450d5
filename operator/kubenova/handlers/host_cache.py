"""The scheduler's HostCache fed from watch events: Nodes, ResourceProviders and Pods here,
Instances in handlers/instance.py (the handler that already follows them). Async handlers: they
run on the event loop, as the decisions reading the cache do, never beside them in a thread."""

from __future__ import annotations

import kopf

from kubenova import GROUP, VERSION
from kubenova.compute.registration import HOST_LABEL
from kubenova.conductor.context import Conductor
from kubenova.scheduler.host_state import NodeSummary, pod_requests
from kubenova.virt.cluster import INSTANCE_UID_LABEL

TERMINAL_POD_PHASES = ("Succeeded", "Failed")


def _conductor(memo: kopf.Memo) -> Conductor | None:
    return getattr(memo, "conductor", None)


@kopf.on.event("nodes")
async def node_event(event, name, body, labels, memo, **_):
    """Every Node, so one that loses the compute label leaves the cache too."""
    conductor = _conductor(memo)
    if conductor is None:
        return
    compute = event["type"] != "DELETED" and labels.get(HOST_LABEL) == "true"
    conductor.host_cache.node_changed(name, NodeSummary.of_node(body) if compute else None)


@kopf.on.event(GROUP, VERSION, "resourceproviders")
async def provider_event(event, name, body, spec, memo, **_):
    """Also the base of the next claim on it (no read before the write, placement.py)."""
    conductor = _conductor(memo)
    if conductor is None:
        return
    if event["type"] == "DELETED":
        conductor.host_cache.provider_changed(name, None)
        conductor.placement.observed(name, None)
        return
    allocations = dict(spec.get("allocations") or {})
    conductor.host_cache.provider_changed(name, allocations)
    conductor.placement.confirm(name, allocations)
    conductor.placement.observed(name, body)


@kopf.on.event("pods")
async def pod_event(event, uid, spec, status, labels, memo, **_):
    """An ordinary pod's requests use its node's room; a VM pod of the pod driver does not
    count twice (its instance's claim already does), nor does a pod that is over."""
    conductor = _conductor(memo)
    if conductor is None:
        return
    over = event["type"] == "DELETED" or status.get("phase") in TERMINAL_POD_PHASES
    node = None if over or INSTANCE_UID_LABEL in labels else spec.get("nodeName")
    conductor.host_cache.pod_changed(uid, node, pod_requests(spec) if node else None)
