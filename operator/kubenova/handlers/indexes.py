"""Watch-fed caches (kopf indexes) the hot paths read instead of listing objects.

Async, though they await nothing: kopf runs a sync handler in its thread pool, a thread hop
for every event of every indexed object (a tenth of the operator's CPU in a 1,000-instance
run); these are pure and short, so on the event loop they cost less than the hop."""

from __future__ import annotations

import kopf

from kubenova import GROUP, VERSION
from kubenova.compute.registration import HOST_LABEL
from kubenova.scheduler.host_state import NodeSummary, pod_requests
from kubenova.virt.cluster import INSTANCE_UID_LABEL


@kopf.index("nodes", labels={HOST_LABEL: "true"})
async def nodes(name, body, **_):
    return {name: NodeSummary.of_node(body)}


@kopf.index(GROUP, VERSION, "resourceproviders")
async def providers(name, spec, **_):
    return {name: dict(spec.get("allocations") or {})}


@kopf.index(GROUP, VERSION, "resourceproviders")
async def claims(name, spec, **_):
    """Which hosts hold a claim of each consumer (instance uid), without scanning them all."""
    return {uid: name for uid in spec.get("allocations") or {}}


@kopf.index(GROUP, VERSION, "flavors")
async def flavors(name, spec, **_):
    return {name: dict(spec)}


@kopf.index(GROUP, VERSION, "images")
async def images(namespace, name, spec, status, **_):
    return {(namespace, name): {"spec": dict(spec), "status": dict(status)}}


@kopf.index(GROUP, VERSION, "instances")
async def placements(namespace, name, uid, spec, status, **_):
    """Where placed instances are: by host (activity), by name (same/different host hints) and
    by server group (affinity)."""
    host = status.get("host")
    if not host:
        return {}
    keys = {("host", host): (uid, status.get("taskState")), ("name", namespace, name): host}
    group = (spec.get("schedulerHints") or {}).get("group")
    if group:
        keys[("group", namespace, group)] = (uid, host)
    return keys


def _not_terminal(status, labels, **_):
    # Nor a VM pod of kubenova's pod driver: its instance's claim already counts on the host.
    return status.get("phase") not in ("Succeeded", "Failed") and INSTANCE_UID_LABEL not in labels


@kopf.index("pods", when=_not_terminal)
async def pods(spec, **_):
    """Requests of the pods bound to each node: they use a host's room as claims do."""
    node = spec.get("nodeName")
    if not node:
        return {}
    return {node: pod_requests(spec)}


@kopf.index(GROUP, VERSION, "networks")
async def network_specs(namespace, name, uid, spec, **_):
    return {(namespace, name): {"metadata": {"name": name, "uid": uid}, "spec": dict(spec)}}


@kopf.index(GROUP, VERSION, "ports")
async def port_addresses(namespace, spec, **_):
    """Addresses held on each network: where an allocation starts looking for a free one."""
    return {(namespace, spec["network"]): spec["ipAddress"]}


@kopf.index(GROUP, VERSION, "quotas")
async def quota_limits(namespace, spec, **_):
    """Each namespace's Quota spec: the limits a reservation is checked against."""
    return {namespace: dict(spec)}


@kopf.index(GROUP, VERSION, "instances")
async def instance_quota(namespace, uid, status, **_):
    """Instances that count against their namespace's quota, and what (status.quotaUsage):
    what the quota counter is checked against until its events have caught up."""
    usage = status.get("quotaUsage")
    return {namespace: (uid, dict(usage))} if usage else {}


@kopf.index(GROUP, VERSION, "volumes")
async def volume_quota(namespace, uid, status, **_):
    usage = status.get("quotaUsage")
    return {namespace: (uid, dict(usage))} if usage else {}
