"""Leader election on a coordination.k8s.io/v1 Lease, as client-go's leaderelection package does.

One replica of the operator holds the Lease and runs the controllers; the others stand by. The
rules are client-go's (k8s.io/client-go/tools/leaderelection), so the same reasoning holds:

- A candidate takes the Lease when nobody holds it (no Lease, or `holderIdentity` empty: a
  leader that stopped cleanly gave it up) or when its holder has not renewed it for
  `leaseDurationSeconds`, measured on the candidate's own monotonic clock from the moment it
  *observed* the record last change (never from the timestamps in it, so clock skew between
  machines does not matter).
- Every write is a whole-object replace guarded by the resourceVersion read: of two candidates
  racing for an expired Lease one wins, the other gets 409 and stays a candidate.
- The leader renews every `retry_period`. If it has not renewed for `renew_deadline` (shorter
  than the lease duration) it stops leading by exiting the process at once, non-zero (client-go's
  OnStoppedLeading: klog.Fatal): the kubelet restarts it as a candidate, and nothing it started
  can go on writing after another replica may have taken over. A watchdog thread makes that
  exit happen even when the event loop is stuck.
- A leader that stops cleanly (SIGTERM) releases the Lease once its controllers have stopped:
  `holderIdentity` cleared and `leaseDurationSeconds` 1, so a standby takes over at its next
  retry instead of waiting for the lease to expire.

The decisions are pure functions (`observe`, `held_by_another`, `next_record`, `deadline_passed`)
for the unit tests; `LeaderElector` does the API calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import random
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
from kubernetes_asyncio import client

from kubenova import metrics
from kubenova.kube.client import ApiException
from kubenova.kube.events import EventRecorder, Reason
from kubenova.timestamps import iso, now

log = logging.getLogger("kubenova.leader")

#: client-go's JitterFactor: a candidate waits retry_period * (1 + up to this) between tries
JITTER_FACTOR = 1.2
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


class LeaderElectionError(RuntimeError):
    """The Lease cannot be used at all (e.g. the permission to read or write it is missing)."""


@dataclass(frozen=True)
class Timing:
    """client-go's LeaderElectionConfig durations, in seconds (its defaults)."""

    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0

    def __post_init__(self) -> None:  # client-go's NewLeaderElector checks
        if self.retry_period <= 0:
            raise ValueError("the retry period must be greater than zero")
        if self.lease_duration <= self.renew_deadline:
            raise ValueError("the lease duration must be greater than the renew deadline")
        if self.renew_deadline <= JITTER_FACTOR * self.retry_period:
            raise ValueError(
                f"the renew deadline must be greater than {JITTER_FACTOR} x the retry period"
            )


@dataclass(frozen=True)
class LeaseRecord:
    """What a Lease's spec says about its holder (client-go's LeaderElectionRecord)."""

    holder: str = ""
    """holderIdentity; empty when nobody holds it."""
    lease_seconds: int = 0
    acquire_time: datetime | None = None
    renew_time: datetime | None = None
    transitions: int = 0

    @classmethod
    def of_spec(cls, spec: Any) -> LeaseRecord:
        """From a V1LeaseSpec (kubernetes_asyncio's model) or None."""
        if spec is None:
            return cls()
        return cls(
            holder=spec.holder_identity or "",
            lease_seconds=spec.lease_duration_seconds or 0,
            acquire_time=spec.acquire_time,
            renew_time=spec.renew_time,
            transitions=spec.lease_transitions or 0,
        )

    def spec(self) -> dict[str, Any]:
        """The Lease's spec for a write."""
        return {
            "holderIdentity": self.holder,
            "leaseDurationSeconds": self.lease_seconds,
            "acquireTime": iso(self.acquire_time) if self.acquire_time else None,
            "renewTime": iso(self.renew_time) if self.renew_time else None,
            "leaseTransitions": self.transitions,
        }


# -- the decisions (pure) ------------------------------------------------------------------------
@dataclass(frozen=True)
class Observation:
    """The record last read and when (monotonic seconds) it was first seen as it is."""

    record: LeaseRecord
    at: float


def observe(previous: Observation | None, record: LeaseRecord, at: float) -> Observation:
    """The observation after reading `record` at `at`: its clock restarts only when the record
    changed (a holder that renews changes renewTime; one that stopped changes nothing)."""
    if previous is not None and previous.record == record:
        return previous
    return Observation(record, at)


def held_by_another(seen: Observation, identity: str, at: float, default_seconds: float) -> bool:
    """Whether another holds the Lease and may still be acting: it has a holder that is not us,
    and that holder's record has not been standing unchanged for its lease duration."""
    holder = seen.record.holder
    if not holder or holder == identity:
        return False
    seconds = seen.record.lease_seconds or default_seconds
    return seen.at + seconds > at


def next_record(
    current: LeaseRecord | None, identity: str, wall: datetime, lease_seconds: int
) -> LeaseRecord:
    """The record to write to acquire or renew (client-go's tryAcquireOrRenew): a renewal
    keeps the acquire time and the transition count; taking it over from anyone (or from
    nobody) starts a new term and counts a transition."""
    if current is not None and current.holder == identity:
        return replace(current, lease_seconds=lease_seconds, renew_time=wall)
    transitions = current.transitions + 1 if current is not None else 0
    return LeaseRecord(identity, lease_seconds, wall, wall, transitions)


def released(current: LeaseRecord, wall: datetime) -> LeaseRecord:
    """The record a leader leaves when it stops cleanly: nobody holds it, and a 1 s lease, so
    a candidate that still reads the old holder's name gives up waiting at once."""
    return LeaseRecord("", 1, wall, wall, current.transitions)


def deadline_passed(renewed_at: float, at: float, renew_deadline: float) -> bool:
    """Whether a leader whose last successful renewal was *sent* at `renewed_at` has gone
    `renew_deadline` without renewing: it must stop leading."""
    return at - renewed_at > renew_deadline


# -- where the Lease lives and who we are --------------------------------------------------------
def default_namespace(
    env: dict[str, str] | None = None, sa_file: Path = SERVICE_ACCOUNT_NAMESPACE
) -> str:
    """The pod's namespace: $POD_NAMESPACE (the downward API), else the service account's
    namespace file (in-cluster), else `default` (a process outside a cluster)."""
    env = os.environ if env is None else env
    if env.get("POD_NAMESPACE"):
        return env["POD_NAMESPACE"]
    with contextlib.suppress(OSError):
        if text := sa_file.read_text().strip():
            return text
    return "default"


def default_identity(env: dict[str, str] | None = None) -> str:
    """$POD_NAME (else the host name) and a random suffix: a restarted container is a new
    candidate, never mistaken for the one that held the Lease before it."""
    env = os.environ if env is None else env
    return f"{env.get('POD_NAME') or socket.gethostname()}_{uuid.uuid4().hex[:12]}"


def exit_now(reason: str) -> None:
    """Stop leading the only safe way: end the process at once (no cleanup handler runs; the
    kubelet restarts the container as a new candidate)."""
    log.critical("leader election lost: %s; exiting", reason)
    for handler in logging.getLogger().handlers:
        with contextlib.suppress(Exception):
            handler.flush()
    with contextlib.suppress(Exception):
        sys.stderr.flush()
    os._exit(1)


class LeaderElector:
    """Acquires, renews and releases one Lease for `identity`.

    `on_started_leading` is called (in the event loop) once the Lease is ours; `on_lost` when
    leadership is lost (default: `exit_now`). Only `run()`'s task makes requests while it runs;
    `release()` is for after it was cancelled.
    """

    def __init__(
        self,
        api: client.ApiClient,
        namespace: str,
        name: str,
        identity: str,
        timing: Timing = Timing(),
        on_started_leading: Callable[[], None] | None = None,
        on_lost: Callable[[str], None] = exit_now,
        clock: Callable[[], float] = time.monotonic,
        watchdog: bool = True,
    ) -> None:
        self.coordination = client.CoordinationV1Api(api)
        self.recorder = EventRecorder(api, instance=identity)
        self.namespace, self.name, self.identity = namespace, name, identity
        self.timing = timing
        self.on_started_leading = on_started_leading
        self.on_lost = on_lost
        self.clock = clock
        self._watchdog = watchdog
        self._watchdog_thread: threading.Thread | None = None
        self._leading = False
        self._renewed_at = 0.0
        """Monotonic time at which the last successful acquire or renewal was sent."""
        self._seen: Observation | None = None
        self._resource_version: str | None = None
        self._uid: str | None = None
        self._last_error = ""
        self._standing_by_for = ""

    @property
    def leading(self) -> bool:
        return self._leading

    @property
    def where(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def holder(self) -> str:
        """The holder last read ("" when none or not read yet)."""
        return self._seen.record.holder if self._seen else ""

    # -- one try -------------------------------------------------------------------------------
    async def try_acquire_or_renew(self) -> bool:
        """One read and (when the Lease is free, expired or ours) one write; True while the
        Lease is ours. LeaderElectionError when the API refuses us the Lease (403)."""
        sent = self.clock()
        wall = now()
        # whole seconds in the Lease, rounded up: candidates wait at least as long as we assume
        lease_seconds = max(1, math.ceil(self.timing.lease_duration))
        try:
            try:
                lease = await self.coordination.read_namespaced_lease(self.name, self.namespace)
            except ApiException as err:
                if err.status != 404:
                    raise
                record = next_record(None, self.identity, wall, lease_seconds)
                body = self._lease_body(record, resource_version=None)
                try:
                    created = await self.coordination.create_namespaced_lease(self.namespace, body)
                except ApiException as err:
                    if err.status == 409:  # another candidate created it first
                        return False
                    raise
                self._wrote(created, record, sent)
                return True
            self._last_error = ""  # the API answers again
            current = LeaseRecord.of_spec(lease.spec)
            self._seen = observe(self._seen, current, self.clock())
            self._resource_version = lease.metadata.resource_version
            self._uid = lease.metadata.uid
            if held_by_another(self._seen, self.identity, self.clock(), self.timing.lease_duration):
                if self._leading:  # it went to another while we held it: we have lost it
                    self._lose(f"Lease {self.where} is held by {current.holder}")
                elif current.holder != self._standing_by_for:
                    log.info(
                        "standing by: Lease %s is held by %s (I am %s)",
                        self.where,
                        current.holder,
                        self.identity,
                    )
                    self._standing_by_for = current.holder
                return False
            record = next_record(current, self.identity, wall, lease_seconds)
            body = self._lease_body(record, lease.metadata.resource_version)
            try:
                written = await self.coordination.replace_namespaced_lease(
                    self.name, self.namespace, body
                )
            except ApiException as err:
                if err.status == 409:  # someone wrote it since we read it: lost the race
                    return False
                raise
            self._wrote(written, record, sent)
            return True
        except ApiException as err:
            if err.status == 403:
                raise LeaderElectionError(
                    f"the API refuses Lease {self.where} ({err.status} {err.reason}): "
                    "get, create and update on leases (coordination.k8s.io) are needed there"
                ) from None
            self._failed(f"{err.status} {err.reason}")
            return False
        except (aiohttp.ClientError, OSError, TimeoutError) as err:
            self._failed(repr(err))
            return False

    def _wrote(self, lease: Any, record: LeaseRecord, sent: float) -> None:
        self._seen = Observation(record, self.clock())
        self._resource_version = lease.metadata.resource_version
        self._uid = lease.metadata.uid
        self._renewed_at = sent
        self._last_error = ""

    def _failed(self, what: str) -> None:
        if what != self._last_error:  # once per distinct failure, not every retry
            log.warning("Lease %s: %s", self.where, what)
        self._last_error = what

    # -- the loop ------------------------------------------------------------------------------
    async def run(self) -> None:
        """Try until the Lease is ours, then keep renewing it; returns only when cancelled
        (or when `on_lost` returns instead of exiting, in tests)."""
        while not self._leading:
            if await self._attempt(self.timing.renew_deadline):
                await self._started()
                break
            await asyncio.sleep(self.timing.retry_period * (1 + random.random() * JITTER_FACTOR))
        while True:
            await asyncio.sleep(self.timing.retry_period)
            if not await self._renew():
                return

    async def acquire_once(self) -> bool:
        """A first try before anything else runs (a free Lease is taken at once)."""
        if await self._attempt(self.timing.renew_deadline):
            await self._started()
        return self._leading

    async def _renew(self) -> bool:
        """Retry the renewal every retry period until it succeeds or the deadline passes."""
        while True:
            remaining = self._renewed_at + self.timing.renew_deadline - self.clock()
            if remaining <= 0:
                break
            if await self._attempt(remaining):
                return True
            if not self._leading:  # on_lost ran (and returned: a test)
                return False
            remaining = self._renewed_at + self.timing.renew_deadline - self.clock()
            await asyncio.sleep(max(0.0, min(self.timing.retry_period, remaining)))
        self._lose(f"not renewed within the renew deadline ({self.timing.renew_deadline:g}s)")
        return False

    async def _attempt(self, within: float) -> bool:
        """One try, cut off after `within` seconds. Runs in this task (no task of its own:
        kopf cancels the tasks that appeared while it ran when it stops)."""
        task = asyncio.current_task()
        try:
            async with asyncio.timeout(max(0.01, within)):
                return await self.try_acquire_or_renew()
        except TimeoutError:
            self._failed(f"no answer within {within:.1f}s")
            return False
        except asyncio.CancelledError:
            # Not ours to swallow if this task is being cancelled; else a helper task of the
            # HTTP client was (kopf's clean-up of the tasks it finds): a failed try.
            if task is None or task.cancelling():
                raise
            self._failed("request cancelled")
            return False

    async def _started(self) -> None:
        self._leading = True
        metrics.LEADER.set(1)
        record = self._seen.record if self._seen else None
        log.info(
            "became leader: %s holds Lease %s (term %s)",
            self.identity,
            self.where,
            record.transitions if record else 0,
        )
        if self._watchdog and self._watchdog_thread is None:
            self._watchdog_thread = threading.Thread(
                target=self._watch, name="leader-watchdog", daemon=True
            )
            self._watchdog_thread.start()
        if self.on_started_leading is not None:
            self.on_started_leading()
        await self._post_event(f"{self.identity} became leader")

    def _lose(self, reason: str) -> None:
        self._leading = False
        metrics.LEADER.set(0)
        self.on_lost(reason)

    def _watch(self) -> None:
        """The backstop: a stuck event loop cannot renew, and must not go on leading."""
        interval = min(0.5, self.timing.retry_period / 4)
        while True:
            time.sleep(interval)
            if self._leading and deadline_passed(
                self._renewed_at, self.clock(), self.timing.renew_deadline
            ):
                self.on_lost(
                    f"not renewed within the renew deadline ({self.timing.renew_deadline:g}s; "
                    "watchdog)"
                )
                return

    def _lease_body(self, record: LeaseRecord, resource_version: str | None) -> dict[str, Any]:
        """The Lease as written: a create (no resourceVersion) or a guarded replace."""
        metadata: dict[str, Any] = {"name": self.name, "namespace": self.namespace}
        if resource_version is not None:
            metadata["resourceVersion"] = resource_version
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": metadata,
            "spec": record.spec(),
        }

    # -- the end -------------------------------------------------------------------------------
    async def release(self) -> None:
        """Give the Lease up (when ours), so a standby takes over at its next retry; after the
        controllers stopped and `run()`'s task was cancelled. Best effort."""
        if not self._leading or self._seen is None:
            return
        self._leading = False
        metrics.LEADER.set(0)
        wall = now()
        body = self._lease_body(released(self._seen.record, wall), self._resource_version)
        try:
            async with asyncio.timeout(self.timing.renew_deadline):
                await self.coordination.replace_namespaced_lease(self.name, self.namespace, body)
        except (ApiException, aiohttp.ClientError, OSError, TimeoutError) as err:
            log.warning("Lease %s not released (it expires instead): %r", self.where, err)
            return
        log.info("released Lease %s", self.where)

    async def _post_event(self, message: str) -> None:
        """client-go's Event on the Lease: Normal LeaderElection "<identity> became leader",
        through the operator's one Event recorder (kube/events.py)."""
        lease = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "uid": self._uid,
                "resourceVersion": self._resource_version,
            },
        }
        try:
            async with asyncio.timeout(self.timing.retry_period):
                await self.recorder.post(lease, Reason.LEADER_ELECTION, message)
        except TimeoutError:
            log.info("event %s on Lease %s not posted in time", Reason.LEADER_ELECTION, self.where)
