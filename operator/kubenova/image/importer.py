"""An Image's import, glance's phases: `queued -> saving -> active`, or `killed`.

Every way the import can fail ends in `killed` with a message, once: a missing tool, a refused
source, a checksum mismatch are not made better by retrying, and a build waiting on the Image
fails at once with that message (conductor/build.py). Only failures to write the Image's own
status propagate (kopf retries the handler; a resumed import starts again from `queued`).

While saving, `status.bytesSaved` is written about once per `progress_interval`, not per
chunk. With a cluster driver only (pod, KubeVirt) the operator downloads nothing: the source
is checked against the policy and the Image goes `queued -> active` (glance's image with an
external location); the VM's node fetches and verifies it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from kubenova.image.cache import ImageCache
from kubenova.image.errors import ImageError
from kubenova.kube.client import ApiException, Objects
from kubenova.timestamps import iso, now
from kubenova.tools import ToolNotFound

log = logging.getLogger("kubenova.image")
PLURAL = "images"
PROGRESS_INTERVAL = 1.0
"""Seconds between bytesSaved updates while saving."""
STATUS_WRITE_ERRORS = (ApiException, aiohttp.ClientError)
"""Failures of the Image's own status writes (the fetch wraps its own into ImageError)."""


@dataclass(frozen=True)
class Outcome:
    """How an import ended, for the handler's Event."""

    phase: str
    message: str

    @property
    def failed(self) -> bool:
        return self.phase == "killed"


class ImageImporter:
    def __init__(
        self,
        objects: Objects,
        cache: ImageCache,
        *,
        download: bool = True,
        progress_interval: float = PROGRESS_INTERVAL,
    ) -> None:
        self.objects, self.cache = objects, cache
        self.download = download
        self.progress_interval = progress_interval

    async def run(self, body: Mapping[str, Any]) -> Outcome | None:
        """Import the Image `body` unless it already ended (active or killed): None then."""
        meta, spec = body["metadata"], body["spec"]
        phase = (body.get("status") or {}).get("phase")
        if phase in ("active", "killed"):
            return None  # an active image's cache entry is fetched again when a build needs it
        ref = (meta["namespace"], meta["name"])
        await self._write(ref, phase="queued", bytesSaved=None, message=None)
        try:
            await self.cache.check(spec["source"])
            if not self.download:
                message = "source allowed; fetched and verified on the compute node"
                await self._write(ref, phase="active", message=message)
                return Outcome("active", message)
            await self._write(ref, phase="saving", bytesSaved=0)
            size, virtual = await self._save(ref, spec)
        except STATUS_WRITE_ERRORS:
            raise  # our own status could not be written: kopf retries the handler
        except (ImageError, ToolNotFound, OSError) as err:
            return await self._kill(ref, str(err))
        except Exception as err:  # a bug: still an end, not a retry loop
            log.exception("image %s/%s: unexpected import failure", *ref)
            return await self._kill(ref, f"unexpected import failure: {err!r}")
        await self._write(
            ref,
            phase="active",
            bytesSaved=size,
            sizeBytes=size,
            virtualSizeBytes=virtual,
            message=None,
        )
        return Outcome("active", f"verified sha256, {size} bytes")

    async def _save(self, ref: tuple[str, str], spec: Mapping[str, Any]) -> tuple[int, int]:
        """Fetch and verify, reporting bytesSaved meanwhile; (size, virtual size). The
        reporter is stopped before this returns or raises, so no progress write can land
        after the final status."""
        saved = _Counter()
        reporter = asyncio.create_task(self._report(ref, saved), name=f"image-{ref[1]}")
        try:
            path = await self.cache.fetch(spec["source"], spec["checksum"], progress=saved.set)
            # The declared format, never probed: a raw image could pose as qcow2.
            virtual = await self.cache.virtual_size(path, spec.get("diskFormat", "qcow2"))
            return path.stat().st_size, virtual
        finally:
            reporter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reporter

    async def _kill(self, ref: tuple[str, str], message: str) -> Outcome:
        log.warning("image %s/%s killed: %s", *ref, message)
        await self._write(ref, phase="killed", bytesSaved=None, message=message[:4000])
        return Outcome("killed", message)

    async def _report(self, ref: tuple[str, str], saved: _Counter) -> None:
        """bytesSaved every progress_interval while it changes; best effort."""
        reported = 0
        while True:
            await asyncio.sleep(self.progress_interval)
            if saved.value != reported:
                reported = saved.value
                try:
                    await self._write(ref, bytesSaved=reported)
                except Exception as err:  # progress is a nicety; the import goes on
                    log.info("image %s/%s: progress not written: %r", *ref, err)

    async def _write(self, ref: tuple[str, str], **status: Any) -> None:
        namespace, name = ref
        await self.objects.patch_status(
            PLURAL, name, namespace, {"status": {**status, "updatedAt": iso(now())}}
        )


class _Counter:
    """The bytes read so far; set from the fetch (possibly a worker thread), read by the
    reporter."""

    def __init__(self) -> None:
        self.value = 0

    def set(self, value: int) -> None:
        self.value = value
