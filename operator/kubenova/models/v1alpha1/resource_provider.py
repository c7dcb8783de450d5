"""ResourceProvider: placement's record of what is claimed on one compute host (a Node).

The scheduler writes it with a resourceVersion precondition, so two decisions made at once (by
any number of operator processes) can never both take the last room on a host: placement's
resource-provider generation, done with Kubernetes' optimistic concurrency.
"""

from __future__ import annotations

from pydantic import Field

from kubenova.models.base import AGE, CRDInfo, KubeModel, ObjectName, PrinterColumn, Resource


class Allocation(KubeModel):
    """What one consumer (an Instance, by uid) holds on the host."""

    consumer: str = Field(max_length=507)
    """namespace/name of the Instance, for people reading the object."""
    vcpus: int = Field(ge=0)
    ram_mib: int = Field(alias="ramMiB", ge=0)
    disk_gib: int = Field(alias="diskGiB", ge=0)


class ResourceProviderSpec(KubeModel):
    node: ObjectName
    """The Node this provider accounts for (the object has the same name)."""
    allocations: dict[str, Allocation] = Field(default_factory=dict)
    """Claims by consumer uid."""


class ResourceProvider(Resource):
    crd = CRDInfo(
        plural="resourceproviders",
        scope="Cluster",
        short_names=("rp",),
        columns=(PrinterColumn("Node", ".spec.node"), AGE),
    )
    spec: ResourceProviderSpec
