"""Instance handlers: a daemon per instance walks the build, then takes up its actions (stop,
start, reboot: conductor/actions.py); deletion frees everything."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import kopf

from kubenova import GROUP, VERSION
from kubenova.conductor.actions import Lifecycle, Timing, record_delete
from kubenova.conductor.build import Build, Caches
from kubenova.conductor.context import Conductor
from kubenova.kube import events
from kubenova.kube.events import Reason
from kubenova.timestamps import parse_time

log = logging.getLogger("kubenova.handlers")
FINALIZER = f"{GROUP}/finalizer"
"""kopf's finalizer (handlers/lifecycle.py sets settings.persistence.finalizer to it)"""
#: how long a build waits for kopf to add the finalizer before it starts anyway: after a start
#: with 10,000 instances kopf takes tens of seconds to patch them all, and a build that starts
#: before its patch loses its first status write to it (a 409, a GET and the write again)
FINALIZER_WAIT_SECONDS = 120.0
VM_STATES: dict[str, str] = {}
"""vmState by instance uid, for the `kubenova_instances` gauge."""
WAKE: dict[str, asyncio.Event] = {}
"""Set on every change of an instance (spec, annotations, status): its daemon looks again."""


@kopf.daemon(GROUP, VERSION, "instances", cancellation_timeout=60, backoff=5)
async def build_instance(body, memo, stopped, **indexes):
    """Drive the instance to ACTIVE or ERROR, then take up its actions until it is deleted
    (kopf cancels the daemon then, after cancellation_timeout). When the operator exits or
    hands over its Lease, the daemon stops at once: the task state in status lets the next
    daemon (here or in the new leader) finish an interrupted action."""
    work = asyncio.create_task(_build_and_follow(body, memo, indexes), name="instance")
    exiting = asyncio.create_task(_operator_exiting(stopped), name="exiting")
    try:
        await asyncio.wait({work, exiting}, return_when=asyncio.FIRST_COMPLETED)
        if work.done():
            work.result()
            await stopped.wait()
    finally:
        for task in (work, exiting):
            task.cancel()
        await asyncio.gather(work, exiting, return_exceptions=True)


async def _build_and_follow(body, memo, indexes) -> None:
    conductor: Conductor = memo.conductor
    uid = body["metadata"]["uid"]
    wake = WAKE.setdefault(uid, asyncio.Event())
    await finalizer_added(body, wake)
    caches = Caches.of_indexes(indexes)
    build = Build(conductor, body, caches, events.emitter(body))
    await build.drive()
    config = memo.config
    timing = Timing(
        shutdown_timeout=config.shutdown_timeout,
        start_timeout=conductor.start_timeout,
        sync_interval=config.sync_power_state_interval,
    )
    # from the object as the build left it (its last write's answer): no read to start with,
    # nor for the events of the build's own writes
    lifecycle = Lifecycle(
        conductor, build.obj, build.driver_on, build.emit, wake, timing, live=body, seen=build.seen
    )
    await lifecycle.run()


EXITING = kopf.DaemonStoppingReason.OPERATOR_EXITING | kopf.DaemonStoppingReason.OPERATOR_PAUSING


async def _operator_exiting(stopped) -> None:
    """Returns when the daemon is stopped because the operator exits (not for a deletion: the
    build's own cancellation cleans up then, when kopf cancels it)."""
    await stopped.wait()
    if stopped.reason is not None and stopped.reason & EXITING:
        return
    await asyncio.Event().wait()  # a deletion: kopf cancels the daemon


async def finalizer_added(body, wake: asyncio.Event) -> None:
    """Wait until kopf's finalizer is on the instance (the daemon's `body` is kopf's live view
    of it, renewed by every watch event; `wake` is set by each). Nothing is claimed or made
    for an instance whose deletion would not wait for the cleanup, and the first status
    write starts from the resourceVersion after kopf's patch instead of losing its
    compare-and-swap to it (a 409, a GET and a write again)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + FINALIZER_WAIT_SECONDS
    while loop.time() < deadline:
        wake.clear()
        if FINALIZER in (body["metadata"].get("finalizers") or ()):
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), max(0.0, deadline - loop.time()))
    name = body["metadata"].get("name")
    log.warning("%s: no finalizer after %.0fs; building anyway", name, FINALIZER_WAIT_SECONDS)


def being_deleted(meta, **_) -> bool:
    return bool(meta.get("deletionTimestamp"))


@kopf.on.event(GROUP, VERSION, "instances")
async def track_instance(event, namespace, uid, status, memo, **_):
    """The vmState gauge, the daemon's wake-up, where the scheduler's host cache has the
    instance and what the quota counts for it (async: on the event loop with the decisions
    that read them)."""
    deleted = event["type"] == "DELETED"
    if deleted:
        VM_STATES.pop(uid, None)
        WAKE.pop(uid, None)
    else:
        VM_STATES[uid] = status.get("vmState") or "NEW"
    conductor: Conductor | None = getattr(memo, "conductor", None)
    if conductor is not None:
        host = None if deleted else status.get("host")
        conductor.host_cache.instance_changed(uid, host, status.get("taskState"))
        usage = None if deleted else status.get("quotaUsage")
        conductor.quotas.consumer_changed(namespace, uid, usage)
    wake = WAKE.get(uid)
    if wake is not None:
        wake.set()


# Filtered to instances being deleted: for the others kopf then has no handler to run and, by
# its own rule, stores no state (its diff-base annotation was one more PATCH per instance,
# read by nothing: no create, update or resume handler watches instances). The finalizer
# still comes at once, for the daemon, and the deletion waits on it as before.
@kopf.on.delete(GROUP, VERSION, "instances", when=being_deleted)
async def delete_instance(body, name, namespace, uid, spec, status, memo, claims, logger, **_):
    """Destroy the VM and free the claim on every host the instance was placed on.

    A VM exists only on a host holding the instance's claim (spawn runs after the claim, and a
    failed host is cleaned up before the next is tried), so those are the hosts to visit.
    """
    conductor: Conductor = memo.conductor
    await events.post(body, Reason.DELETING, "destroying the VM and freeing its resources")
    deleting = body["metadata"].get("deletionTimestamp")
    await record_delete(conductor, namespace, name, parse_time(deleting) if deleting else None)
    holders = {status.get("host"), *claims.get(uid, ())}
    holders |= {node for node, mine in conductor.placement.own_claims.items() if uid in mine}
    placed = sorted(h for h in holders if h)
    # Hosts served here, and any host of a cluster driver (its VMs outlive this process).
    drivers = [d for h in placed if (d := conductor.hosts.serving(h)) is not None]
    await asyncio.gather(*(driver.destroy(uid) for driver in drivers))
    for node in placed:
        await conductor.placement.release(node, uid)
    addresses, volumes = await conductor.release_tenant_resources(namespace, name, uid, spec)
    await conductor.quotas.release(namespace, uid)  # last: nothing of it is in use now
    logger.info(
        "deleted: VM destroyed, claims on %s released, addresses %s freed, volumes %s detached",
        placed,
        addresses,
        volumes,
    )
