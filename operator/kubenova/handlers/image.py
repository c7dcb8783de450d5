"""Image handlers: glance's queued -> saving -> active (or killed) on this host's cache."""

from __future__ import annotations

import kopf

from kubenova import GROUP, VERSION
from kubenova.conductor.context import Conductor
from kubenova.image.cache import ImageError
from kubenova.timestamps import iso, now


@kopf.on.resume(GROUP, VERSION, "images")
@kopf.on.create(GROUP, VERSION, "images")
async def import_image(body, spec, status, patch, memo, **_):
    """Fetch and verify the image once; instances wait for `active`."""
    conductor: Conductor = memo.conductor
    if status.get("phase") == "active" and conductor.image_cache.cached_path(spec["checksum"]):
        return
    try:
        path = await conductor.image_cache.fetch(spec["source"], spec["checksum"])
        # The declared format, never probed: a raw image could pose as qcow2.
        virtual = await conductor.image_cache.virtual_size(path, spec.get("diskFormat", "qcow2"))
    except ImageError as err:
        patch.status.update(phase="killed", message=str(err), updatedAt=iso(now()))
        kopf.warn(body, reason="ImageKilled", message=str(err))
        return
    size = path.stat().st_size
    patch.status.update(
        phase="active",
        sizeBytes=size,
        virtualSizeBytes=virtual,
        message=None,
        updatedAt=iso(now()),
    )
    kopf.info(body, reason="ImageActive", message=f"verified sha256, {size} bytes")
