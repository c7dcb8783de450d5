"""Volume handlers: cinder's create (a qcow2 on the backend), the check that a usable volume's
disk is still there, extend and delete (refused while in use).

Volumes are durable or loudly lost: a volume that was once available is never made again. If its
disk is gone (a wiped state directory, a deleted file) it goes to `error` with condition Failed,
on the operator's start (resume), on the periodic disk check and on every attach.
"""

from __future__ import annotations

import kopf

from kubenova import GROUP, VERSION
from kubenova.conductor.build import Caches
from kubenova.conductor.context import Conductor
from kubenova.image.cache import ImageError
from kubenova.kube import events
from kubenova.kube.events import Reason
from kubenova.quota import QuotaExceeded, volume_usage
from kubenova.volume.backend import VolumeBackendError
from kubenova.volume.status import PLURAL, USABLE, VolumeStatus

#: Seconds between checks that a usable volume's disk still exists (a stat per volume).
DISK_CHECK_INTERVAL = 30.0


@kopf.on.resume(GROUP, VERSION, PLURAL)
@kopf.on.create(GROUP, VERSION, PLURAL)
async def create_volume(body, namespace, name, uid, spec, status, memo, images, **_):
    """creating -> available once the disk exists (filled from sourceImage when given); a
    volume that was usable and lost its disk -> error, never an empty disk in its place."""
    conductor: Conductor = memo.conductor
    phase = status.get("phase")
    if phase == "error":
        return
    if phase is not None and phase != "creating":
        await check_disk(body, namespace, name, uid, memo)
        return
    writer = VolumeStatus(conductor.objects)
    usage = volume_usage(spec["sizeGiB"])
    try:
        await conductor.quotas.reserve(namespace, uid, usage, kind="Volume", name=name)
    except QuotaExceeded as err:
        return await _error(body, writer, namespace, name, uid, str(err), "QuotaExceeded")
    await writer.record_quota(namespace, name, uid, usage.to_api())
    if phase is None:
        await writer.to_phase(
            namespace, name, "creating", "making the disk", uid=uid, from_phases=(None,)
        )
    source, source_format = None, "qcow2"
    if spec.get("sourceImage"):
        image = Caches.one(images, (namespace, spec["sourceImage"]))
        if image is None:
            message = f"Image {spec['sourceImage']} could not be found"
            return await _error(body, writer, namespace, name, uid, message, "ImageNotFound")
        image_phase = (image.get("status") or {}).get("phase")
        if image_phase == "killed":
            message = f"Image {spec['sourceImage']} is killed"
            return await _error(body, writer, namespace, name, uid, message, "ImageKilled")
        if image_phase != "active":
            raise kopf.TemporaryError(f"waiting for Image {spec['sourceImage']}", delay=2)
        try:
            source = await conductor.image_cache.fetch(
                image["spec"]["source"], image["spec"]["checksum"]
            )
        except ImageError as err:
            message = f"Image {spec['sourceImage']}: {err}"
            return await _error(body, writer, namespace, name, uid, message, "ImageFailed")
        source_format = image["spec"].get("diskFormat", "qcow2")
    try:
        # Only a volume that never was available gets a disk made: its data cannot be lost.
        await conductor.volumes.create(uid, spec["sizeGiB"], source, source_format)
    except VolumeBackendError as err:
        return await _error(body, writer, namespace, name, uid, str(err), "CreateFailed")
    ready = f"{spec['sizeGiB']} GiB disk ready"
    if await writer.to_phase(
        namespace, name, "available", ready, uid=uid, from_phases=(None, "creating")
    ):
        await events.post(body, Reason.VOLUME_AVAILABLE, ready)


@kopf.timer(
    GROUP,
    VERSION,
    PLURAL,
    interval=DISK_CHECK_INTERVAL,
    when=lambda status, **_: status.get("phase") in USABLE,
)
async def check_volume_disk(body, namespace, name, uid, memo, **_):
    """A usable volume whose disk vanished while the operator ran goes to error now, not at
    the next attach."""
    await check_disk(body, namespace, name, uid, memo)


async def check_disk(body, namespace: str, name: str, uid: str, memo) -> None:
    conductor: Conductor = memo.conductor
    if conductor.volumes.exists(uid):
        return
    path = str(conductor.volumes.path(uid))
    if await VolumeStatus(conductor.objects).lost(namespace, name, uid, path):
        await events.post(body, Reason.VOLUME_DISK_MISSING, f"disk {path} is missing: data lost")


async def _error(body, writer: VolumeStatus, namespace, name, uid, message: str, reason: str):
    if await writer.to_phase(namespace, name, "error", message, reason=reason, uid=uid):
        await events.post(body, Reason.VOLUME_ERROR, message)


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
    usage = volume_usage(new)
    try:
        await conductor.quotas.reserve(namespace, uid, usage, kind="Volume", name=name)
    except QuotaExceeded as err:
        await events.post(body, Reason.VOLUME_EXTEND_REFUSED, str(err))
        return
    await VolumeStatus(conductor.objects).record_quota(namespace, name, uid, usage.to_api())
    if status.get("phase") == "error":
        await events.post(body, Reason.VOLUME_EXTEND_REFUSED, f"Volume {name} is in error")
        return
    if status.get("phase") != "available":
        raise kopf.TemporaryError(f"Volume {name} is {status.get('phase')}; extend waits", delay=10)
    if not conductor.volumes.exists(uid):
        return await check_disk(body, namespace, name, uid, memo)
    try:
        await conductor.volumes.extend(uid, new)
    except VolumeBackendError as err:
        await events.post(body, Reason.VOLUME_EXTEND_FAILED, str(err))
        return
    await events.post(body, Reason.VOLUME_EXTENDED, f"grown from {old} to {new} GiB")


@kopf.on.event(GROUP, VERSION, PLURAL)
async def count_volume(event, namespace, uid, status, memo, **_):
    """What the quota counts for the volume: its status.quotaUsage until it is gone."""
    conductor: Conductor | None = getattr(memo, "conductor", None)
    if conductor is not None:
        usage = None if event["type"] == "DELETED" else status.get("quotaUsage")
        conductor.quotas.consumer_changed(namespace, uid, usage)
