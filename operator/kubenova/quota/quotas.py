"""Nova's quota check, counted (Nova since Pike): a reservation is accepted when the namespace's
usage, counted from its Instances and Volumes (counter.py), plus the request fits the limits of
its `Quota default`; the consumer then records what it counts in its own status.

Race-free within the operator: checks of one namespace run one at a time and an accepted
reservation counts at once, so 50 concurrent creates where 10 fit build exactly 10. Nova's own
recheck is the same count taken again after the request was recorded; here the operator that
decides is the only one (leader election keeps it one). The Quota's `status.used` is published
from the count within about a second of a change, for `kubectl get quota` and the admission
webhook's first check; no object grows with the namespace.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, Literal

from kubenova import API_VERSION
from kubenova.kube.client import ApiException, Objects
from kubenova.quota.counter import UsageCounter
from kubenova.quota.usage import Usage, limits_of, over_quota

PLURAL = "quotas"
NAME = "default"
#: On a Quota the operator created because the namespace had none.
CREATED_BY_LABEL = {"app.kubernetes.io/managed-by": "kubenova"}
#: Consumers released lately: a reservation arriving after the release is not recorded.
_TOMBSTONES = 10_000
#: Seconds between a change of a namespace's usage and its publication in the Quota's status.
PUBLISH_DELAY = 1.0
log = logging.getLogger("kubenova.quota")

ConsumerKind = Literal["Instance", "Volume"]


class QuotaExceeded(Exception):
    """The request does not fit; the message names the quota and the numbers, as Nova's."""


def exceeded_message(namespace: str, nova_message: str, resource: str) -> str:
    """Nova's sentence plus what the user can do about it."""
    return (
        f"{nova_message}. Delete some of namespace {namespace}'s instances or volumes, "
        f"or ask an administrator to raise spec.{resource} of Quota {NAME} in {namespace}"
    )


class Quotas:
    """Reserve and release quota for consumers (instances, volumes) in their namespace."""

    def __init__(self, objects: Objects, publish_delay: float = PUBLISH_DELAY) -> None:
        self.objects = objects
        self.counter = UsageCounter()
        self.publish_delay = publish_delay
        self.indexes: tuple[Mapping[str, Any], ...] = ()
        """The kopf indexes of consumers with a quotaUsage (namespace -> their usages), read
        while the counter has not caught up with them (the operator's first moments)."""
        self.limits: Mapping[str, Any] | None = None
        """A kopf index of Quota specs by namespace, if the operator keeps one."""
        self._locks: dict[str, asyncio.Lock] = {}
        self._released: OrderedDict[str, None] = OrderedDict()
        self._publishing: dict[str, asyncio.Task] = {}

    async def reserve(
        self,
        namespace: str,
        uid: str,
        usage: Usage,
        kind: ConsumerKind = "Instance",
        name: str | None = None,
    ) -> None:
        """Count `usage` for consumer `uid`, or raise QuotaExceeded; the caller then writes
        `usage` into the consumer's status.quotaUsage.

        Idempotent: a consumer already counting exactly `usage` keeps it. One counting a
        different amount (a volume grown) is checked for the growth only. A consumer released
        earlier (it is being deleted) is not counted again.
        """
        if uid in self._released:
            log.info("%s/%s: released already (being deleted); not reserving", namespace, uid)
            return
        async with self._lock(namespace):
            previous = self.counter.held(uid, namespace)
            if previous == usage:
                return
            used = self.used(namespace)
            over = over_quota(await self._limits(namespace), used, usage, previous)
            if over is not None:
                raise QuotaExceeded(exceeded_message(namespace, over.message(), over.resource))
            self.counter.hold(namespace, uid, usage)
            log.info("%s: reserved %s for %s %s", namespace, usage, kind, name or uid)
        self.publish_soon(namespace)

    async def release(self, namespace: str, uid: str) -> bool:
        """The consumer is being deleted: nothing more is counted for it once it is gone;
        True if it counted something. Idempotent."""
        self._released[uid] = None
        while len(self._released) > _TOMBSTONES:
            self._released.popitem(last=False)
        held = self.counter.held(uid, namespace) is not None
        self.counter.forget(namespace, uid)
        self.publish_soon(namespace)
        return held

    def consumer_changed(self, namespace: str, uid: str, usage: Mapping[str, Any] | None) -> None:
        """A consumer's status.quotaUsage from the watch (None: none, or the consumer is gone)."""
        before = self.counter.used(namespace)
        self.counter.consumer_changed(namespace, uid, Usage.of(usage) if usage else None)
        if self.counter.used(namespace) != before:
            self.publish_soon(namespace)

    def used(self, namespace: str) -> Usage:
        """The namespace's usage: from the counter once it has caught up with the indexes,
        else summed from them (plus this process's pending reservations)."""
        if not self.indexes or self.counter.caught_up(*self.indexes):
            return self.counter.used(namespace)
        total = Usage()
        for index in self.indexes:
            for uid, usage in index.get(namespace, ()):
                held = self.counter.held(uid, namespace)
                total = total + (held if held is not None else Usage.of(usage))
        return total

    # -- publishing ------------------------------------------------------------------------
    def publish_soon(self, namespace: str) -> None:
        """Write the namespace's usage into its Quota's status after `publish_delay`: one
        write for any number of changes meanwhile."""
        task = self._publishing.get(namespace)
        if task is not None and not task.done():
            return
        with contextlib.suppress(RuntimeError):  # no running loop (a unit test): nothing to do
            self._publishing[namespace] = asyncio.get_running_loop().create_task(
                self._publish_later(namespace), name=f"quota-publish-{namespace}"
            )

    async def _publish_later(self, namespace: str) -> None:
        await asyncio.sleep(self.publish_delay)
        try:
            await self.publish(namespace)
        except Exception as err:  # the next change publishes again
            log.warning("%s: could not publish quota usage: %s", namespace, err)

    async def publish(self, namespace: str) -> None:
        used = self.used(namespace)
        try:
            await self.objects.patch_status(
                PLURAL, NAME, namespace, {"status": {"used": used.to_api()}}
            )
        except ApiException as err:
            if err.status != 404:  # no Quota (yet): its limits are Nova's defaults
                raise

    async def close(self) -> None:
        for task in self._publishing.values():
            task.cancel()
        await asyncio.gather(*self._publishing.values(), return_exceptions=True)

    # -- the Quota object ------------------------------------------------------------------
    def _lock(self, namespace: str) -> asyncio.Lock:
        return self._locks.setdefault(namespace, asyncio.Lock())

    async def _limits(self, namespace: str) -> Usage:
        """The namespace's limits: from the Quota index when it holds the namespace, else
        read (or the Quota made, with Nova's defaults, when the namespace has none)."""
        if self.limits is not None and (store := self.limits.get(namespace)):
            return limits_of(next(iter(store)))
        return limits_of((await self._get_or_create(namespace)).get("spec"))

    async def _get_or_create(self, namespace: str) -> dict[str, Any]:
        while True:
            quota = await self.objects.find(PLURAL, NAME, namespace)
            if quota is not None:
                return quota
            body = {
                "apiVersion": API_VERSION,
                "kind": "Quota",
                "metadata": {"name": NAME, "namespace": namespace, "labels": CREATED_BY_LABEL},
                "spec": {},
            }
            try:
                created = await self.objects.create(PLURAL, body)
            except ApiException as err:
                if err.status != 409:  # 409: someone created it meanwhile; read theirs
                    raise
                continue
            log.info("%s: created Quota %s with Nova's defaults", namespace, NAME)
            return created
