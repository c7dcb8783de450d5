"""Every Kubernetes Event the operator posts: one reporting component, every reason declared here.

kopf's own posting is off (handlers/lifecycle.py): its events would come from a second source
and at its level, and kopf.info() events were dropped below WARNING. Here each reason has its
type (Normal or Warning) declared once, and a repeat aggregates as client-go's EventRecorder
does: the same object, reason and message is one Event whose `count` and `lastTimestamp` move,
so a loop that says the same thing again does not flood the namespace.

Best effort: an Event that cannot be posted is logged, never raised.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import socket
from collections import OrderedDict
from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

import aiohttp
from kubernetes_asyncio import client

from kubenova.kube.client import ApiException
from kubenova.timestamps import iso, now

log = logging.getLogger("kubenova.events")
COMPONENT = "kubenova"
"""The reporting component of every Event (`source.component`, `reportingComponent`)."""
MESSAGE_LIMIT = 1000
#: how many Events the recorder remembers for aggregation (the oldest are forgotten first)
REMEMBERED = 4096
#: posts of one Event name are serialised by one of these locks (by the name's hash)
LOCK_STRIPES = 64

EventType = Literal["Normal", "Warning"]


class Reason(StrEnum):
    """Every Event reason the operator emits, by the object it is about."""

    # Instance: the build (conductor/build.py), one per step that did something a user looks
    # for: a plain build posts one Normal Event, Active, which names the host (the acceptance,
    # the claim and the steps with no ports or volumes to handle write status only)
    NETWORKED = "Networked"
    BLOCK_DEVICES_MAPPED = "BlockDevicesMapped"
    ACTIVE = "Active"
    GUEST_BOOTED = "GuestBooted"
    GUEST_BOOT_TIMEOUT = "GuestBootTimeout"
    RESCHEDULING = "Rescheduling"
    BUILD_FAILED = "BuildFailed"
    # Instance: actions (conductor/actions.py) and deletion (handlers/instance.py)
    STOPPING = "Stopping"
    STOPPED = "Stopped"
    STARTING = "Starting"
    STARTED = "Started"
    REBOOTING = "Rebooting"
    REBOOTED = "Rebooted"
    ACTION_RESUMED = "ActionResumed"
    ACTION_REFUSED = "ActionRefused"
    ACTION_FAILED = "ActionFailed"
    POWER_STATE_SYNC = "PowerStateSync"
    DELETING = "Deleting"
    # Instance: host failure (conductor/hosts.py)
    HOST_DOWN = "HostDown"
    HOST_RETURNED = "HostReturned"
    GUEST_NOT_RUNNING = "GuestNotRunning"
    GUEST_RESUME_FAILED = "GuestResumeFailed"
    # Image (handlers/image.py)
    IMAGE_ACTIVE = "ImageActive"
    IMAGE_KILLED = "ImageKilled"
    # Volume (handlers/volume.py)
    VOLUME_AVAILABLE = "VolumeAvailable"
    VOLUME_ERROR = "VolumeError"
    VOLUME_DISK_MISSING = "VolumeDiskMissing"
    VOLUME_EXTENDED = "VolumeExtended"
    VOLUME_EXTEND_REFUSED = "VolumeExtendRefused"
    VOLUME_EXTEND_FAILED = "VolumeExtendFailed"
    # Network (handlers/network.py)
    NETWORK_IN_USE = "NetworkInUse"
    # Keypair (handlers/keypair.py)
    INVALID_PUBLIC_KEY = "InvalidPublicKey"
    # Lease (leader.py): a replica became the leader, as client-go's leaderelection posts
    LEADER_ELECTION = "LeaderElection"

    @property
    def type(self) -> EventType:
        return "Warning" if self in WARNINGS else "Normal"


#: the reasons that are Warnings (something failed or was refused); all others are Normal
WARNINGS: frozenset[Reason] = frozenset(
    {
        Reason.RESCHEDULING,
        Reason.BUILD_FAILED,
        Reason.GUEST_BOOT_TIMEOUT,
        Reason.ACTION_REFUSED,
        Reason.ACTION_FAILED,
        Reason.POWER_STATE_SYNC,
        Reason.HOST_DOWN,
        Reason.GUEST_NOT_RUNNING,
        Reason.GUEST_RESUME_FAILED,
        Reason.IMAGE_KILLED,
        Reason.VOLUME_ERROR,
        Reason.VOLUME_DISK_MISSING,
        Reason.VOLUME_EXTEND_REFUSED,
        Reason.VOLUME_EXTEND_FAILED,
        Reason.INVALID_PUBLIC_KEY,
        Reason.NETWORK_IN_USE,
    }
)


def event_name(obj: Mapping[str, Any], reason: Reason, message: str) -> str:
    """The Event's name: the object's name and a digest of what makes two Events the same
    (object uid, reason, message), so a repeat finds the Event it repeats."""
    meta = obj["metadata"]
    key = "\0".join((meta.get("uid") or meta["name"], reason.type, reason.value, message))
    return f"{meta['name'][:236]}.{hashlib.sha256(key.encode()).hexdigest()[:16]}"


def event_body(
    obj: Mapping[str, Any], reason: Reason, message: str, at: datetime, instance: str
) -> dict[str, Any]:
    """A core/v1 Event about `obj` (a whole object as read: apiVersion, kind, metadata)."""
    meta = obj["metadata"]
    stamp = iso(at)
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": event_name(obj, reason, message), "namespace": _namespace(obj)},
        "involvedObject": {
            "apiVersion": obj.get("apiVersion"),
            "kind": obj.get("kind"),
            "name": meta["name"],
            "namespace": meta.get("namespace"),
            "uid": meta.get("uid"),
            "resourceVersion": meta.get("resourceVersion"),
        },
        "type": reason.type,
        "reason": reason.value,
        "message": message,
        "source": {"component": COMPONENT},
        "reportingComponent": COMPONENT,
        "reportingInstance": instance,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
    }


def _namespace(obj: Mapping[str, Any]) -> str:
    return obj["metadata"].get("namespace") or "default"


class EventRecorder:
    """Posts the operator's Events, aggregating repeats (client-go's EventRecorder's role).

    `emit()` is for synchronous code in the event loop (the build's and the actions' steps):
    it schedules the post and returns; `post()` is awaited. Posts of one Event name are
    serialised, so a repeat is counted, not raced.
    """

    def __init__(self, api: client.ApiClient | None, instance: str | None = None) -> None:
        """`api` None: a recorder that only logs (tools and tests with no apiserver)."""
        self.api = api
        self.instance = instance or os.environ.get("POD_NAME") or socket.gethostname()
        self._counts: OrderedDict[tuple[str, str], int] = OrderedDict()
        self._locks = [asyncio.Lock() for _ in range(LOCK_STRIPES)]
        self._pending: set[asyncio.Task] = set()

    def emit(self, obj: Mapping[str, Any], reason: Reason, message: str) -> None:
        """Post an Event about `obj` without waiting for it (needs the running event loop)."""
        task = asyncio.get_running_loop().create_task(
            self.post(obj, reason, message, now()), name=f"event-{reason}"
        )
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    def emitter(self, obj: Mapping[str, Any]):
        """`emit` bound to one object: what the build and the actions are given."""

        def emit(reason: Reason, message: str) -> None:
            self.emit(obj, reason, message)

        return emit

    async def post(
        self, obj: Mapping[str, Any], reason: Reason, message: str, at: datetime | None = None
    ) -> None:
        """Create the Event, or count a repeat of it. Never raises for the API's failures."""
        reason = Reason(reason)  # an undeclared reason is a bug: declare it above
        message = message[:MESSAGE_LIMIT]
        at = at or now()
        body = event_body(obj, reason, message, at, self.instance)
        key = (body["metadata"]["namespace"], body["metadata"]["name"])
        if self.api is None:
            log.info("event %s %s about %s: %s", reason.type, reason, key[1], message)
            return
        try:
            async with self._locks[hash(key) % LOCK_STRIPES]:
                await self._post(key, body, at)
        except (ApiException, aiohttp.ClientError, OSError, TimeoutError) as err:
            log.info("event %s about %s/%s not posted: %r", reason, key[0], key[1], err)

    async def _post(self, key: tuple[str, str], body: dict[str, Any], at: datetime) -> None:
        core = client.CoreV1Api(self.api)
        namespace, name = key
        count = self._counts.get(key)
        if count is None:
            try:
                await core.create_namespaced_event(namespace, body)
                self._remember(key, 1)
                return
            except ApiException as err:
                if err.status != 409:  # 409: it exists (posted before a restart): count it
                    raise
            existing = await core.read_namespaced_event(name, namespace)
            count = existing.count or 1
        patch = {"count": count + 1, "lastTimestamp": iso(at)}
        try:
            await core.patch_namespaced_event(name, namespace, patch)
        except ApiException as err:
            if err.status != 404:
                raise
            self._counts.pop(key, None)  # expired (the apiserver's event TTL): post it afresh
            await core.create_namespaced_event(namespace, body)
            count = 0
        self._remember(key, count + 1)

    def _remember(self, key: tuple[str, str], count: int) -> None:
        self._counts[key] = count
        self._counts.move_to_end(key)
        while len(self._counts) > REMEMBERED:
            self._counts.popitem(last=False)

    async def flush(self, within: float = 5.0) -> None:
        """Wait up to `within` seconds for the Events `emit()` scheduled (at shutdown, before
        the client closes)."""
        if self._pending:
            await asyncio.wait(set(self._pending), timeout=within)


# -- the process's recorder -----------------------------------------------------------------------
# One per operator process, installed at start-up (handlers/lifecycle.py), so that any handler or
# background loop posts through it without being handed it (as kopf.event() is called).
_recorder = EventRecorder(None)


def install(recorder: EventRecorder) -> EventRecorder:
    """Make `recorder` the one `emit`, `emitter` and `post` use; returns it."""
    global _recorder
    _recorder = recorder
    return recorder


def recorder() -> EventRecorder:
    return _recorder


def emit(obj: Mapping[str, Any], reason: Reason, message: str) -> None:
    """Post an Event about `obj` from synchronous code, without waiting (see EventRecorder)."""
    _recorder.emit(obj, reason, message)


def emitter(obj: Mapping[str, Any]):
    """`emit` bound to `obj`: what the build and the actions are given."""
    return _recorder.emitter(obj)


async def post(obj: Mapping[str, Any], reason: Reason, message: str) -> None:
    """Post an Event about `obj`, or count a repeat of it; never raises for the API's failures."""
    await _recorder.post(obj, reason, message)
