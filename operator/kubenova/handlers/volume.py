"""Volume handlers: cinder's create (a qcow2 on the backend) and delete (refused while in use)."""

from __future__ import annotations

import kopf

from kubenova import GROUP, VERSION
from kubenova.conductor.build import Caches
from kubenova.conductor.context import Conductor
from kubenova.image.cache import ImageError
from kubenova.quota import QuotaExceeded, volume_usage
from kubenova.volume.backend import VolumeBackendError

PLURAL = "volumes"


@kopf.on.resume(GROUP, VERSION, PLURAL)
@kopf.on.create(GROUP, VERSION, PLURAL)
async def create_volume(body, namespace, name, uid, spec, status, patch, memo, images, **_):
    """creating -> available once the disk exists (filled from sourceImage when given)."""
    conductor: Conductor = memo.conductor
    phase = status.get("phase")
    if phase in ("available", "in-use") and conductor.volumes.exists(uid):
        return
    if phase == "error":
        return
    try:
        await conductor.quotas.reserve(
            namespace, uid, volume_usage(spec["sizeGiB"]), kind="Volume", name=name
        )
    except QuotaExceeded as err:
        return _error(body, patch, str(err))
    if phase is None:
        await conductor.objects.patch_status(
            PLURAL, name, namespace, {"status": {"phase": "creating"}}
        )
    source, source_format = None, "qcow2"
    if spec.get("sourceImage"):
        image = Caches.one(images, (namespace, spec["sourceImage"]))
        if image is None:
            return _error(body, patch, f"Image {spec['sourceImage']} could not be found")
        image_phase = (image.get("status") or {}).get("phase")
        if image_phase == "killed":
            return _error(body, patch, f"Image {spec['sourceImage']} is killed")
        if image_phase != "active":
            raise kopf.TemporaryError(f"waiting for Image {spec['sourceImage']}", delay=2)
        try:
            source = await conductor.image_cache.fetch(
                image["spec"]["source"], image["spec"]["checksum"]
            )
        except ImageError as err:
            return _error(body, patch, f"Image {spec['sourceImage']}: {err}")
        source_format = image["spec"].get("diskFormat", "qcow2")
    try:
        await conductor.volumes.create(uid, spec["sizeGiB"], source, source_format)
    except VolumeBackendError as err:
        return _error(body, patch, str(err))
    patch.status.update(phase="available", message=None)
    kopf.info(body, reason="VolumeAvailable", message=f"{spec['sizeGiB']} GiB disk ready")


def _error(body, patch, message: str) -> None:
    patch.status.update(phase="error", message=message)
    kopf.warn(body, reason="VolumeError", message=message)


@kopf.on.delete(GROUP, VERSION, PLURAL)
async def delete_volume(namespace, name, uid, status, memo, **_):
    """Wait while an existing instance uses the volume (the admission webhook refuses such a
    delete up front); then remove the disk."""
    conductor: Conductor = memo.conductor
    user = status.get("attachedTo")
    if status.get("phase") == "in-use" and user:
        instance = await conductor.objects.find("instances", user, namespace)
        if instance is not None and instance["metadata"]["uid"] == status.get("attachedToUid"):
            raise kopf.TemporaryError(
                f"Volume {name} is attached to instance {user}; delete the instance first",
                delay=5,
            )
    await conductor.volumes.delete(uid)
    await conductor.quotas.release(namespace, uid)


@kopf.on.update(GROUP, VERSION, PLURAL, field="spec.sizeGiB")
async def extend_volume(body, namespace, name, uid, old, new, status, memo, **_):
    """Grow the disk (cinder's extend): counted against the quota first, applied while the
    volume is available (an attached disk is grown once it is detached)."""
    conductor: Conductor = memo.conductor
    if not old or not new or new <= old:
        return
    try:
        await conductor.quotas.reserve(namespace, uid, volume_usage(new), kind="Volume", name=name)
    except QuotaExceeded as err:
        kopf.warn(body, reason="VolumeExtendRefused", message=str(err))
        return
    if status.get("phase") != "available":
        raise kopf.TemporaryError(f"Volume {name} is {status.get('phase')}; extend waits", delay=10)
    try:
        await conductor.volumes.extend(uid, new)
    except VolumeBackendError as err:
        kopf.warn(body, reason="VolumeExtendFailed", message=str(err))
        return
    kopf.info(body, reason="VolumeExtended", message=f"grown from {old} to {new} GiB")
