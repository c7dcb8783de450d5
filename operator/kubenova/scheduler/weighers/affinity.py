"""Soft server-group policies: preferences among hosts rather than filters."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from kubenova.scheduler.host_state import HostState
from kubenova.scheduler.host_table import HostTable
from kubenova.scheduler.interface import RequestSpec
from kubenova.scheduler.weighers.base import BaseHostWeigher


class _GroupMembersWeigher(BaseHostWeigher):
    """Raw = the group's members already on the host, signed; 0 under any other policy."""

    policy: ClassVar[str]
    sign: ClassVar[float]

    def raw_weight(self, host: HostState, spec: RequestSpec) -> float:
        if spec.group_policy != self.policy:
            return 0.0
        return self.sign * spec.group_hosts.get(host.name, 0)

    def raw_weights(self, table: HostTable, spec: RequestSpec) -> np.ndarray:
        if spec.group_policy != self.policy:
            return np.zeros(len(table), dtype=float)
        return self.sign * table.sparse(spec.group_hosts)


class ServerGroupSoftAffinityWeigher(_GroupMembersWeigher):
    """Mirrors Nova's: under soft-affinity, more members on the host is better
    (soft_affinity_weight_multiplier 1.0)."""

    policy = "soft-affinity"
    sign = 1.0
    default_multiplier = 1.0


class ServerGroupSoftAntiAffinityWeigher(_GroupMembersWeigher):
    """Mirrors Nova's: under soft-anti-affinity, fewer members on the host is better
    (soft_anti_affinity_weight_multiplier 1.0)."""

    policy = "soft-anti-affinity"
    sign = -1.0
    default_multiplier = 1.0
