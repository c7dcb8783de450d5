"""ServerGroup: affinity policy across instances, as Nova's server groups."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from kubenova.models.base import (
    AGE,
    CRDInfo,
    KubeModel,
    PrinterColumn,
    Resource,
    cel,
    immutable,
    validations,
)

Policy = Literal["affinity", "anti-affinity", "soft-affinity", "soft-anti-affinity"]


class ServerGroupRules(KubeModel):
    max_server_per_host: int = Field(ge=1)
    """With anti-affinity: how many members one host may hold (Nova API 2.64)."""


class ServerGroupSpec(KubeModel):
    """The policy members are scheduled under. Immutable, as in Nova."""

    model_config = validations(
        immutable("a ServerGroup's spec"),
        cel(
            "!has(self.rules) || self.policy == 'anti-affinity'",
            "rules are only allowed with the anti-affinity policy",
            fieldPath=".rules",
        ),
    )

    policy: Policy
    rules: ServerGroupRules | None = None


class ServerGroupStatus(KubeModel):
    members: list[str] = Field(default_factory=list)
    """Instances in the group, by name."""


class ServerGroup(Resource):
    crd = CRDInfo(
        plural="servergroups",
        scope="Namespaced",
        short_names=("sg",),
        columns=(
            PrinterColumn("Policy", ".spec.policy"),
            PrinterColumn("Members", ".status.members", priority=1),
            AGE,
        ),
    )
    spec: ServerGroupSpec
    status: ServerGroupStatus | None = None
