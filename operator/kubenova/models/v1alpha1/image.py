"""Image: a bootable disk image, like a glance image (queued -> saving -> active, or killed)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from kubenova.models.base import (
    AGE,
    CRDInfo,
    KubeModel,
    LabelMap,
    PrinterColumn,
    Resource,
    cel,
    immutable,
    validations,
)

ImagePhase = Literal["queued", "saving", "active", "killed"]


class ImageSpec(KubeModel):
    """Where the image comes from and what it needs. Immutable: the checksum pins the bytes."""

    model_config = validations(immutable("an Image's spec"))

    source: str = Field(
        min_length=1,
        max_length=4096,
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "self.startsWith('http://') || self.startsWith('https://')"
                    " || self.startsWith('/')",
                    "source must be an http(s) URL or an absolute file path",
                )
            ]
        },
    )
    """http(s) URL or absolute path on the compute host."""
    disk_format: Literal["qcow2", "raw"] = "qcow2"
    checksum: str = Field(pattern=r"^[0-9a-f]{64}$")
    """sha256 of the image file, lowercase hex; verified when the image is fetched."""
    min_ram_mib: int = Field(default=0, alias="minRamMiB", ge=0)
    min_disk_gib: int = Field(default=0, alias="minDiskGiB", ge=0)
    properties: LabelMap = Field(default_factory=dict)
    """Glance-style properties, e.g. architecture=x86_64, matched by ImagePropertiesFilter."""


class ImageStatus(KubeModel):
    """glance's image status: `queued` (accepted, nothing read yet), `saving` (being read and
    verified, `bytesSaved` so far), then `active` (verified in the cache) or `killed` (the
    import failed, for good: `message` says why; create the Image again to retry)."""

    phase: ImagePhase | None = None
    bytes_saved: int | None = Field(default=None, ge=0)
    """Bytes read so far while saving (updated about once a second)."""
    size_bytes: int | None = Field(default=None, ge=0)
    virtual_size_bytes: int | None = Field(default=None, ge=0)
    message: str | None = None
    """Why the image is killed, when it is (or a note on how an active one is served)."""
    updated_at: datetime | None = None


class Image(Resource):
    crd = CRDInfo(
        plural="images",
        scope="Namespaced",
        short_names=("img",),
        columns=(
            PrinterColumn("Status", ".status.phase"),
            PrinterColumn("Format", ".spec.diskFormat"),
            PrinterColumn("Saved", ".status.bytesSaved", "integer"),
            PrinterColumn("Size", ".status.sizeBytes", "integer"),
            AGE,
            PrinterColumn("Message", ".status.message", priority=1),
        ),
    )
    spec: ImageSpec
    status: ImageStatus | None = None
