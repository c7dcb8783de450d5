"""The quota ledger: what each Instance and Volume counts, kept in the namespace's Quota status.

Nova counts usage in its database and rechecks after the API accepted a request, so that
concurrent creates cannot all slip under the limit. Here the count is a ledger in
`Quota default`'s status (`allocations` by consumer uid, `used` their sum), changed by a
compare-and-swap on the Quota's resourceVersion exactly as placement claims are: re-read,
check against the limits, write with the version read; a 409 means another writer won, so
retry on fresh data after a jittered pause. Keyed by uid, a reservation is idempotent, so an
operator restarted between the reservation and the next status write simply finds it.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from typing import Any, Literal

from kubenova import API_VERSION
from kubenova.kube.client import ApiException, Objects
from kubenova.kube.retry import conflict_backoff
from kubenova.quota.usage import Usage, limits_of, over_quota, total

PLURAL = "quotas"
NAME = "default"
#: On a Quota the operator created because the namespace had none.
CREATED_BY_LABEL = {"app.kubernetes.io/managed-by": "kubenova"}
#: Consumers released lately: a reservation arriving after the release is not recorded.
_TOMBSTONES = 10_000
log = logging.getLogger("kubenova.quota")

ConsumerKind = Literal["Instance", "Volume"]


class QuotaExceeded(Exception):
    """The request does not fit; the message names the quota and the numbers, as Nova's."""


class LedgerConflict(Exception):
    """Too many concurrent writers kept changing the Quota; the caller may retry later."""


def exceeded_message(namespace: str, nova_message: str, resource: str) -> str:
    """Nova's sentence plus what the user can do about it."""
    return (
        f"{nova_message}. Delete some of namespace {namespace}'s instances or volumes, "
        f"or ask an administrator to raise spec.{resource} of Quota {NAME} in {namespace}"
    )


class Quotas:
    """Reserve and release quota for consumers (instances, volumes) in their namespace."""

    def __init__(self, objects: Objects, retries: int = 30) -> None:
        self.objects = objects
        self.retries = retries
        self._locks: dict[str, asyncio.Lock] = {}
        """One writer per namespace in this process: the CAS then only races other processes."""
        self._released: OrderedDict[str, None] = OrderedDict()

    async def reserve(
        self,
        namespace: str,
        uid: str,
        usage: Usage,
        kind: ConsumerKind = "Instance",
        name: str | None = None,
    ) -> None:
        """Count `usage` for consumer `uid`, or raise QuotaExceeded.

        Idempotent: a consumer already holding exactly `usage` keeps it. A consumer holding a
        different amount (a volume grown) has its entry replaced if the growth fits. A consumer
        released earlier (it is being deleted) is not recorded again.
        """
        if uid in self._released:
            log.info("%s/%s: released already (being deleted); not reserving", namespace, uid)
            return
        async with self._lock(namespace):
            for attempt in range(self.retries):
                quota = await self._get_or_create(namespace)
                status = quota.get("status") or {}
                allocations: dict[str, Any] = dict(status.get("allocations") or {})
                held = allocations.get(uid)
                previous = Usage.of(held) if held is not None else None
                if previous == usage:
                    return
                used = total(allocations.values())
                over = over_quota(limits_of(quota.get("spec")), used, usage, previous)
                if over is not None:
                    raise QuotaExceeded(exceeded_message(namespace, over.message(), over.resource))
                entry: dict[str, Any] = {"kind": kind, **usage.to_api()}
                if name:
                    entry["name"] = name
                allocations[uid] = entry
                if await self._write(quota, {uid: entry}, total(allocations.values())):
                    log.info("%s: reserved %s for %s %s", namespace, usage, kind, name or uid)
                    return
                await conflict_backoff(attempt)
        raise LedgerConflict(f"could not reserve quota in {namespace}: too many concurrent updates")

    async def release(self, namespace: str, uid: str) -> bool:
        """Drop consumer `uid` from the ledger; True if it held a reservation. Idempotent."""
        self._released[uid] = None
        while len(self._released) > _TOMBSTONES:
            self._released.popitem(last=False)
        async with self._lock(namespace):
            for attempt in range(self.retries):
                quota = await self._get(namespace)
                allocations = dict(((quota or {}).get("status") or {}).get("allocations") or {})
                if quota is None or uid not in allocations:
                    return False
                del allocations[uid]
                if await self._write(quota, {uid: None}, total(allocations.values())):
                    return True
                await conflict_backoff(attempt)
        raise LedgerConflict(f"could not release quota in {namespace}: too many concurrent updates")

    # -- the Quota object ------------------------------------------------------------------
    def _lock(self, namespace: str) -> asyncio.Lock:
        return self._locks.setdefault(namespace, asyncio.Lock())

    async def _get(self, namespace: str) -> dict[str, Any] | None:
        return await self.objects.find(PLURAL, NAME, namespace)

    async def _get_or_create(self, namespace: str) -> dict[str, Any]:
        """The namespace's Quota; one with Nova's defaults (from the schema) if it has none."""
        while True:
            quota = await self._get(namespace)
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

    async def _write(self, quota: dict[str, Any], changes: dict[str, Any], used: Usage) -> bool:
        """Merge `changes` (uid -> entry, or None to drop) into the ledger, if nobody wrote
        since `quota` was read. False on a lost race, or when the Quota was deleted under us
        (the next round reads, or makes, it anew)."""
        status = {"allocations": changes, "used": used.to_api()}
        return await self.objects.patch_status_unless_changed(PLURAL, quota, status) is not None
