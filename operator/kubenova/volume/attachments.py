"""Attaching a Volume to an instance: cinder's reserve + attach, as one compare-and-swap on the
Volume's status (available -> in-use), so two instances can never both take one volume.

Every write here (phase, attachedTo, attachedToUid, host and the conditions) is one CAS on the
Volume as read (Objects.patch_status_unless_changed): a lost race re-reads and decides again.
A volume whose disk is missing is never attached: it goes to error (volume/status.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubenova.kube.client import Objects
from kubenova.kube.retry import conflict_backoff
from kubenova.volume.backend import VolumeBackend
from kubenova.volume.status import PLURAL, VolumeStatus, phase_patch

#: How long an attach waits for a Volume whose disk is still being made.
CREATING_WAIT = 600.0
POLL = 0.5
RETRIES = 20
log = logging.getLogger("kubenova.volume")


class AttachError(Exception):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Attached:
    name: str
    uid: str


def attached_to(volume: Mapping[str, Any], instance_uid: str) -> bool:
    status = volume.get("status") or {}
    return status.get("phase") == "in-use" and status.get("attachedToUid") == instance_uid


class Attachments:
    def __init__(self, objects: Objects, backend: VolumeBackend | None = None) -> None:
        self.objects = objects
        self.backend = backend
        """Where the disks are: an attach checks the volume's disk is there (None: unchecked)."""
        self.status = VolumeStatus(objects)

    async def attach(
        self, namespace: str, name: str, instance: str, instance_uid: str, host: str
    ) -> Attached:
        """Mark the volume in-use by the instance (idempotent for the same instance)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + CREATING_WAIT
        attempt = 0
        while True:
            volume = await self.objects.find(PLURAL, name, namespace)
            if volume is None:
                raise AttachError(f"Volume {name} could not be found", 404)
            uid = volume["metadata"]["uid"]
            status = volume.get("status") or {}
            phase = status.get("phase")
            if phase in ("available", "in-use") and not self._disk_present(uid):
                await self.status.lost(namespace, name, uid, str(self._disk(uid)))
                continue  # read again: now in error (or deleted meanwhile)
            if attached_to(volume, instance_uid):
                return Attached(name, uid)
            if volume["metadata"].get("deletionTimestamp"):
                raise AttachError(f"Volume {name} is being deleted", 409)
            if phase == "in-use":
                owner = status.get("attachedTo")
                raise AttachError(f"Volume {name} is in use by instance {owner}", 409)
            if phase in (None, "creating"):
                if loop.time() >= deadline:
                    raise AttachError(f"Volume {name} is still being created", 504)
                await asyncio.sleep(POLL)
                continue
            if phase != "available":
                message = status.get("message") or ""
                raise AttachError(f"Volume {name} is {phase}, not available: {message}", 400)
            in_use = phase_patch(
                volume,
                "in-use",
                f"attached to instance {instance} on {host}",
                attachedTo=instance,
                attachedToUid=instance_uid,
                host=host,
            )
            if await self.objects.patch_status_unless_changed(PLURAL, volume, in_use):
                return Attached(name, uid)
            attempt += 1
            if attempt > RETRIES:
                raise AttachError(
                    f"could not attach Volume {name}: too many concurrent writes", 409
                )
            await conflict_backoff(attempt)

    async def detach(self, namespace: str, name: str, instance_uid: str) -> bool:
        """in-use by this instance -> available; False when it was not attached to it. A
        volume in error (its disk lost while attached) only forgets the instance."""
        for attempt in range(RETRIES):
            volume = await self.objects.find(PLURAL, name, namespace)
            status = (volume or {}).get("status") or {}
            if volume is None or status.get("attachedToUid") != instance_uid:
                return False
            released = {"host": None, "attachedTo": None, "attachedToUid": None}
            if status.get("phase") == "in-use":
                patch = phase_patch(volume, "available", "detached: ready to attach", **released)
            elif status.get("phase") == "error":
                patch = released
            else:
                return False
            if await self.objects.patch_status_unless_changed(PLURAL, volume, patch):
                return True
            await conflict_backoff(attempt)
        raise AttachError(f"could not detach Volume {name}: too many concurrent updates", 409)

    def _disk(self, uid: str) -> Path:
        if self.backend is None:  # pragma: no cover - only called when a backend is set
            raise RuntimeError("no volume backend")
        return self.backend.path(uid)

    def _disk_present(self, uid: str) -> bool:
        return self.backend is None or self.backend.exists(uid)
