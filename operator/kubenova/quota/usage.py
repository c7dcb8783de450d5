"""Quota arithmetic, free of I/O: usages, limits with Nova's defaults, and the over-quota test.

The names are the Quota's field names (`instances`, `cores`, `ramMiB`, `volumes`,
`gigabytes`), so a message can name the field an administrator raises.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from kubenova.models.v1alpha1.quota import UNLIMITED, QuotaSpec

#: The Quota's fields in the order Nova checks them, with their wire names.
RESOURCES: tuple[tuple[str, str], ...] = (
    ("instances", "instances"),
    ("cores", "cores"),
    ("ram_mib", "ramMiB"),
    ("volumes", "volumes"),
    ("gigabytes", "gigabytes"),
)


@dataclass(frozen=True)
class Usage:
    """An amount of each quota'd resource: a request, an allocation, a total or a limit."""

    instances: int = 0
    cores: int = 0
    ram_mib: int = 0
    volumes: int = 0
    gigabytes: int = 0

    @classmethod
    def of(cls, data: Mapping[str, Any] | None) -> Usage:
        """From the wire form (camelCase keys; anything else in the mapping is ignored)."""
        data = data or {}
        return cls(**{attr: int(data.get(wire) or 0) for attr, wire in RESOURCES})

    def to_api(self) -> dict[str, int]:
        return {wire: getattr(self, attr) for attr, wire in RESOURCES}

    def __add__(self, other: Usage) -> Usage:
        return Usage(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))

    def __sub__(self, other: Usage) -> Usage:
        return Usage(*(getattr(self, f.name) - getattr(other, f.name) for f in fields(self)))


def instance_usage(flavor: Mapping[str, Any]) -> Usage:
    """What one instance of `flavor` (its spec) counts against the quota."""
    return Usage(instances=1, cores=int(flavor["vcpus"]), ram_mib=int(flavor["ramMiB"]))


def volume_usage(size_gib: int) -> Usage:
    """What one volume of `size_gib` counts against the quota."""
    return Usage(volumes=1, gigabytes=int(size_gib))


def total(allocations: Iterable[Mapping[str, Any]]) -> Usage:
    """The sum of usages (wire form)."""
    result = Usage()
    for entry in allocations:
        result = result + Usage.of(entry)
    return result


def limits_of(spec: Mapping[str, Any] | None) -> Usage:
    """A Quota's limits with Nova's defaults for absent fields (also for an absent Quota)."""
    return Usage.of(QuotaSpec.model_validate(dict(spec or {})).to_api())


@dataclass(frozen=True)
class Overage:
    """The first resource a request would take over its limit."""

    resource: str
    """The Quota field (wire name)."""
    requested: int
    used: int
    limit: int

    def message(self) -> str:
        """Nova's wording: `Quota exceeded for cores: Requested 4, but already used 18 of 20
        cores`."""
        return (
            f"Quota exceeded for {self.resource}: Requested {self.requested}, "
            f"but already used {self.used} of {self.limit} {self.resource}"
        )


def over_quota(
    limits: Usage, used: Usage, request: Usage, previous: Usage | None = None
) -> Overage | None:
    """Would `used` + `request` exceed `limits`? `previous` is what the same consumer already
    holds (a resize): only growth is checked, so shrinking or keeping a size always fits,
    even when the limit has since been lowered below the usage (as in Nova)."""
    previous = previous or Usage()
    for attr, wire in RESOURCES:
        limit, want, had = getattr(limits, attr), getattr(request, attr), getattr(previous, attr)
        if limit == UNLIMITED or want <= had:
            continue
        others = max(0, getattr(used, attr) - had)  # 0 if the count never held `had`
        if others + want > limit:
            return Overage(wire, want, others, limit)
    return None
