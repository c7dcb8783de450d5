"""Volume: a cinder-style block device that outlives the instances it is attached to."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from kubenova.models.base import (
    AGE,
    Conditions,
    CRDInfo,
    KubeModel,
    ObjectName,
    PrinterColumn,
    Resource,
    cel,
    validations,
)
from kubenova.models.v1alpha1.quota import QuotaUsage

VolumePhase = Literal[
    "creating", "available", "attaching", "in-use", "detaching", "error", "deleting"
]


class VolumeSpec(KubeModel):
    """Size and optional source image. Volumes can grow but never shrink, as in cinder."""

    model_config = validations(
        cel(
            "self.sizeGiB >= oldSelf.sizeGiB",
            "sizeGiB can only grow (volumes are not shrunk)",
            fieldPath=".sizeGiB",
        ),
        cel(
            "has(self.sourceImage) == has(oldSelf.sourceImage) && "
            "(!has(self.sourceImage) || self.sourceImage == oldSelf.sourceImage)",
            "sourceImage is immutable",
            fieldPath=".sourceImage",
        ),
    )

    size_gib: int = Field(alias="sizeGiB", ge=1, le=65536)
    source_image: ObjectName | None = None
    """An Image in the same namespace to fill the volume from."""


class VolumeStatus(KubeModel):
    """Written by the operator alone, each change one compare-and-swap (volume/status.py)."""

    phase: VolumePhase | None = None
    """cinder's status; error: the disk could not be made, or was lost (never made again)."""
    attached_to: str | None = None
    """The Instance using the volume (its name)."""
    attached_to_uid: str | None = None
    """That Instance's uid: an instance re-created under the same name is another one."""
    host: str | None = None
    message: str | None = None
    """Why the volume is in error."""
    conditions: Conditions = Field(default_factory=list)
    """Ready (the disk exists and can be used) and Failed (phase error), for `kubectl wait`."""
    quota_usage: QuotaUsage | None = None
    """What the volume counts against its namespace's Quota (volumes, gigabytes), written
    when its creation (or growth) was accepted."""


class Volume(Resource):
    crd = CRDInfo(
        plural="volumes",
        scope="Namespaced",
        short_names=("vol",),
        columns=(
            PrinterColumn("Status", ".status.phase"),
            PrinterColumn("Size(GiB)", ".spec.sizeGiB", "integer"),
            PrinterColumn("Attached-To", ".status.attachedTo"),
            AGE,
        ),
    )
    spec: VolumeSpec
    status: VolumeStatus | None = None
