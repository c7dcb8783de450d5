"""Claims on ResourceProvider objects, race-free through resourceVersion preconditions.

A claim checks that the request still fits under the host's capacity with everything already
allocated, and writes the new allocation with the resourceVersion of the copy it checked. If
another writer wrote in between, the apiserver answers 409 and the claim is re-evaluated on
fresh data, exactly as placement retries on a generation conflict.

No GET before a write (issue 13): the copy checked is the apiserver's answer to this process's
last write on the provider or the watch's last copy of it, whichever came last (a provider
neither has shown is created, and read only if that answers 409: it exists). A copy that is
behind costs the 409 and a read, never a wrong claim. This process's claims on one provider
are made one at a time, so they never conflict with each other; a claim that does not fit on
the kept copy is checked again on a fresh read before it is refused.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from typing import Any

from kubenova.kube.client import ApiException, Objects
from kubenova.kube.retry import conflict_backoff as _backoff
from kubenova.scheduler.resources import Resources

PLURAL = "resourceproviders"
_KEPT_METADATA = (
    "name",
    "resourceVersion",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
)
"""What a replace must carry of the metadata; the rest (managedFields...) is not kept."""
log = logging.getLogger("kubenova.scheduler.placement")


class ClaimConflict(Exception):
    """Too many concurrent writers kept changing the provider; the caller may retry."""


class Placement:
    def __init__(self, objects: Objects, retries: int = 30) -> None:
        self.objects = objects
        self.retries = retries
        self.own_claims: dict[str, dict[str, Resources]] = {}
        """node -> consumer uid -> resources: claims made here, known before any watch event."""
        self._last: dict[str, dict[str, Any]] = {}
        """node -> the provider as this process's last write on it or the watch last showed
        it (compact: what a replace needs)"""
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    def confirm(self, node: str, allocations: dict) -> None:
        """The watch brought `node`'s allocations: claims made here that it shows are known
        to everyone now (the claims index has them), so they no longer need counting apart;
        the record stays small instead of growing with every instance ever claimed."""
        mine = self.own_claims.get(node)
        if not mine:
            return
        for uid in [uid for uid in mine if uid in allocations]:
            del mine[uid]
        if not mine:
            del self.own_claims[node]

    def observed(self, node: str, provider: Any | None) -> None:
        """The watch's copy of `node`'s provider (None: deleted), the base of the next claim."""
        if provider is None:
            self._last.pop(node, None)
        else:
            self._last[node] = _compact(provider)

    async def _get(self, node: str) -> dict | None:
        found = await self.objects.find(PLURAL, node)
        return _compact(found) if found is not None else None

    async def claim(
        self, node: str, consumer_uid: str, consumer: str, request: Resources, capacity: Resources
    ) -> bool:
        """Allocate `request` on `node` for the consumer; False if it no longer fits.

        Idempotent: a consumer that already holds an allocation there keeps it. The claim
        counts in `own_claims` from the moment it is attempted (decisions made while its
        round-trips are in flight see the room as taken) and is withdrawn if it fails.
        """
        mine = self.own_claims.setdefault(node, {})
        mine[consumer_uid] = request
        try:
            claimed = await self._claim(node, consumer_uid, consumer, request, capacity)
        except BaseException:
            mine.pop(consumer_uid, None)
            raise
        if not claimed:
            mine.pop(consumer_uid, None)
        return claimed

    async def _claim(
        self, node: str, consumer_uid: str, consumer: str, request: Resources, capacity: Resources
    ) -> bool:
        async with self._locks[node]:
            # none kept: created without a read (one that exists answers 409, then is read)
            provider, fresh = self._last.get(node), False
            for attempt in range(self.retries):
                allocations = dict(((provider or {}).get("spec") or {}).get("allocations") or {})
                if consumer_uid in allocations:
                    return True
                used = Resources()
                for alloc in allocations.values():
                    used = used + Resources.of_allocation(alloc)
                if not request.fits_in(capacity - used):
                    if fresh:
                        return False
                    provider, fresh = await self._get(node), True  # the kept copy may be behind
                    continue
                allocations[consumer_uid] = request.as_allocation(consumer)
                try:
                    self._last[node] = _compact(await self._write(node, provider, allocations))
                    return True
                except ApiException as err:
                    self._last.pop(node, None)
                    # 409: created or updated by someone else meanwhile; 404: deleted since
                    if err.status not in (404, 409):
                        raise
                log.debug("claim on %s for %s conflicted; retrying", node, consumer)
                await _backoff(attempt)
                provider, fresh = await self._get(node), True
        raise ClaimConflict(f"could not claim on {node}: too many concurrent updates")

    async def _write(
        self, node: str, provider: dict[str, Any] | None, allocations: dict[str, Any]
    ) -> dict[str, Any]:
        """Create the provider, or replace it with the resourceVersion it was read at."""
        if provider is None:
            body = {
                "apiVersion": "compute.kubenova.io/v1alpha1",
                "kind": "ResourceProvider",
                "metadata": {"name": node},
                "spec": {"node": node, "allocations": allocations},
            }
            return await self.objects.create(PLURAL, body)
        updated = {**provider, "spec": {**provider.get("spec", {}), "allocations": allocations}}
        return await self.objects.replace(PLURAL, updated)

    async def release(self, node: str, consumer_uid: str) -> bool:
        """Drop the consumer's allocation on `node`; True if there was one.

        No compare-and-swap: removing one key of the allocations map is a merge patch the
        apiserver applies atomically, and it never needs a capacity check, so any number of
        concurrent releases (a mass delete) go through without conflicts.
        """
        self.own_claims.get(node, {}).pop(consumer_uid, None)
        provider = await self._get(node)
        allocations = ((provider or {}).get("spec") or {}).get("allocations") or {}
        if consumer_uid not in allocations:
            return False
        patch = {"spec": {"allocations": {consumer_uid: None}}}
        try:
            self._last[node] = _compact(await self.objects.patch(PLURAL, node, None, patch))
        except ApiException as err:
            self._last.pop(node, None)
            if err.status != 404:
                raise
            return False
        return True


def _compact(provider: Any) -> dict[str, Any]:
    """A plain copy of what a replace of `provider` sends (a watch body or an answer)."""
    meta = provider["metadata"]
    return {
        "apiVersion": provider.get("apiVersion", "compute.kubenova.io/v1alpha1"),
        "kind": provider.get("kind", "ResourceProvider"),
        "metadata": {key: meta[key] for key in _KEPT_METADATA if key in meta},
        "spec": dict(provider.get("spec") or {}),
    }
