"""Base-image housekeeping, Nova's image cache manager (`remove_unused_base_images`,
`remove_unused_original_minimum_age_seconds`).

Each audit finds the checksums the instances on this operator's hosts use (and those an
instance still being scheduled or a volume being created may need in a moment), touches their
cached files, and removes the cached images nobody used for the configured age: the age is the
file's mtime, the time it was fetched or last found in use, so it survives a restart. A removed
image's Image stays `active`: a build that needs it fetches it again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection, Iterable, Mapping
from typing import Any

from kubenova import metrics
from kubenova.image.cache import ImageCache, RemovedImage
from kubenova.kube.client import Objects

log = logging.getLogger("kubenova.audit")
RESTING_VM_STATES = frozenset({"ACTIVE", "STOPPED", "ERROR"})


def used_checksums(
    instances: Iterable[Mapping[str, Any]],
    images: Iterable[Mapping[str, Any]],
    volumes: Iterable[Mapping[str, Any]],
    hosts: Collection[str],
) -> set[str]:
    """Checksums of the Images that instances on `hosts` boot from, that instances without
    a host that are not resting (being scheduled: they may land here) will need, and that
    volumes being created copy."""
    checksum_of = {
        (i["metadata"]["namespace"], i["metadata"]["name"]): i["spec"]["checksum"] for i in images
    }
    used = set()
    for inst in instances:
        status = inst.get("status") or {}
        host = status.get("host")
        building = host is None and not (
            status.get("vmState") in RESTING_VM_STATES and status.get("taskState") is None
        )
        if host in hosts or building:
            key = (inst["metadata"]["namespace"], inst["spec"].get("image"))
            if key in checksum_of:
                used.add(checksum_of[key])
    for vol in volumes:
        if (vol.get("status") or {}).get("phase") in (None, "creating"):
            key = (vol["metadata"]["namespace"], (vol.get("spec") or {}).get("sourceImage"))
            if key in checksum_of:
                used.add(checksum_of[key])
    return used


class BaseImageJanitor:
    """Removes this operator's unused cached base images, once per audit."""

    def __init__(
        self, objects: Objects, cache: ImageCache, hosts: Collection[str], min_age: float
    ) -> None:
        self.objects, self.cache = objects, cache
        self.hosts = hosts
        """This operator's hosts (a live view: the cluster drivers add theirs as they go)."""
        self.min_age = min_age

    async def run_once(self) -> list[RemovedImage]:
        images = await self.objects.list("images")
        volumes = await self.objects.list("volumes")
        instances = await self.objects.list("instances")
        used = used_checksums(instances, images, volumes, set(self.hosts))
        await asyncio.to_thread(self.cache.touch, used)
        removed = await asyncio.to_thread(self.cache.remove_unused, used, self.min_age)
        images_removed = [r for r in removed if r.path.name.isalnum()]  # not locks or parts
        for r in images_removed:
            metrics.IMAGE_CACHE_REMOVED.inc()
            metrics.IMAGE_CACHE_REMOVED_BYTES.inc(r.size)
            log.warning(
                "audit: removed base image %s (%d bytes), unused for %gs",
                r.path.name,
                r.size,
                self.min_age,
            )
        return images_removed
