"""Image handlers: glance's queued -> saving -> active (or killed), image/importer.py."""

from __future__ import annotations

import kopf

from kubenova import GROUP, VERSION
from kubenova.image.importer import ImageImporter
from kubenova.kube import events
from kubenova.kube.events import Reason


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
        await events.post(body, Reason.IMAGE_KILLED, outcome.message)
    else:
        await events.post(body, Reason.IMAGE_ACTIVE, outcome.message)
