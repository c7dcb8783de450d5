"""Quota: a project's (namespace's) limits, with Nova's defaults where a field is absent."""

from __future__ import annotations

from pydantic import Field

from kubenova.models.base import AGE, CRDInfo, KubeModel, PrinterColumn, Resource, cel

UNLIMITED = -1


class QuotaSpec(KubeModel):
    """Limits; -1 means unlimited, as in Nova."""

    instances: int = Field(default=10, ge=UNLIMITED)
    cores: int = Field(default=20, ge=UNLIMITED)
    ram_mib: int = Field(default=51200, alias="ramMiB", ge=UNLIMITED)
    volumes: int = Field(default=10, ge=UNLIMITED)
    gigabytes: int = Field(default=1000, ge=UNLIMITED)
    """Total volume size in GiB."""


class QuotaUsage(KubeModel):
    instances: int = 0
    cores: int = 0
    ram_mib: int = Field(default=0, alias="ramMiB")
    volumes: int = 0
    gigabytes: int = 0


class QuotaStatus(KubeModel):
    """Written only by the operator."""

    used: QuotaUsage | None = None
    """What the namespace's Instances and Volumes count (each one's status.quotaUsage),
    published by the operator within about a second of a change; the operator decides on its
    own count, this is for people and for the admission webhook's first check."""


class Quota(Resource):
    crd = CRDInfo(
        plural="quotas",
        scope="Namespaced",
        short_names=("quota",),
        columns=(
            PrinterColumn("Instances", ".spec.instances", "integer"),
            PrinterColumn("Cores", ".spec.cores", "integer"),
            PrinterColumn("RAM(MiB)", ".spec.ramMiB", "integer"),
            PrinterColumn("Used-Instances", ".status.used.instances", "integer"),
            PrinterColumn("Used-Cores", ".status.used.cores", "integer"),
            PrinterColumn("Used-RAM(MiB)", ".status.used.ramMiB", "integer"),
            AGE,
        ),
        rules=(
            cel(
                "self.metadata.name == 'default'",
                "a namespace has one Quota and it must be named 'default'",
            ),
        ),
    )
    spec: QuotaSpec
    status: QuotaStatus | None = None
