"""Flavor: the hardware shape of an instance, like a Nova flavor. Cluster-scoped and immutable."""

from __future__ import annotations

from pydantic import Field

from kubenova.models.base import (
    AGE,
    CRDInfo,
    KubeModel,
    LabelMap,
    PrinterColumn,
    Resource,
    immutable,
    validations,
)


class FlavorSpec(KubeModel):
    """The hardware an instance gets. Immutable, as in Nova: create a new Flavor instead."""

    model_config = validations(immutable("a Flavor's spec"))

    vcpus: int = Field(ge=1, le=1024)
    """Virtual CPUs."""
    ram_mib: int = Field(alias="ramMiB", ge=16, le=16 * 1024 * 1024)
    """Memory in MiB."""
    disk_gib: int = Field(default=0, alias="diskGiB", ge=0, le=65536)
    """Root disk in GiB; 0 means the image's own size, as in Nova."""
    extra_specs: LabelMap = Field(default_factory=dict)
    """Matched against node labels by AggregateInstanceExtraSpecsFilter."""


class Flavor(Resource):
    crd = CRDInfo(
        plural="flavors",
        scope="Cluster",
        short_names=("flv",),
        columns=(
            PrinterColumn("VCPUs", ".spec.vcpus", "integer"),
            PrinterColumn("RAM(MiB)", ".spec.ramMiB", "integer"),
            PrinterColumn("Disk(GiB)", ".spec.diskGiB", "integer"),
            AGE,
        ),
    )
    spec: FlavorSpec
