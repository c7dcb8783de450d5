"""Image handlers: glance's queued -> saving -> active (or killed), image/importer.py."""

from __future__ import annotations

import kopf

from kubenova import GROUP, VERSION
from kubenova.image.importer import ImageImporter


@kopf.on.resume(GROUP, VERSION, "images")
@kopf.on.create(GROUP, VERSION, "images")
async def import_image(body, memo, **_):
    """Check the source against the import policy, fetch and verify it once; instances wait
    for `active` and fail on `killed`."""
    importer: ImageImporter = memo.image_importer
    outcome = await importer.run(body)
    if outcome is None:
        return
    if outcome.failed:
        kopf.warn(body, reason="ImageKilled", message=outcome.message)
    else:
        kopf.info(body, reason="ImageActive", message=outcome.message)
