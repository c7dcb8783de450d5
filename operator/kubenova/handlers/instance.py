"""Instance handlers: a daemon per instance walks the build; deletion frees everything."""

from __future__ import annotations

import asyncio
import logging

import kopf

from kubenova import GROUP, VERSION
from kubenova.conductor.build import Build, Caches, event_emitter
from kubenova.conductor.context import Conductor

log = logging.getLogger("kubenova.handlers")
VM_STATES: dict[str, str] = {}
"""vmState by instance uid, for the `kubenova_instances` gauge."""


@kopf.daemon(GROUP, VERSION, "instances", cancellation_timeout=60, backoff=5)
async def build_instance(
    body, memo, nodes, providers, flavors, images, placements, pods, stopped, **_
):
    """Drive the instance to ACTIVE or ERROR, then rest until it is deleted."""
    conductor: Conductor = memo.conductor
    caches = Caches(
        nodes=nodes,
        providers=providers,
        flavors=flavors,
        images=images,
        placements=placements,
        pods=pods,
    )
    await Build(conductor, body, caches, event_emitter(body)).drive()
    await stopped.wait()


@kopf.on.event(GROUP, VERSION, "instances")
def track_vm_state(event, uid, status, **_):
    if event["type"] == "DELETED":
        VM_STATES.pop(uid, None)
    else:
        VM_STATES[uid] = status.get("vmState") or "NEW"


@kopf.on.delete(GROUP, VERSION, "instances")
async def delete_instance(body, uid, status, memo, providers, logger, **_):
    """Destroy the VM wherever it may be on this operator's hosts, then free every claim."""
    conductor: Conductor = memo.conductor
    kopf.info(body, reason="Deleting", message="destroying the VM and freeing its resources")
    await asyncio.gather(*(driver.destroy(uid) for driver in conductor.hosts.drivers()))
    holders = {status.get("host")} | {
        node for node, store in providers.items() for allocs in store if uid in allocs
    }
    for node in sorted(h for h in holders if h):
        await conductor.placement.release(node, uid)
    logger.info("deleted: VM destroyed, claims on %s released", sorted(h for h in holders if h))
