"""What a request refers to, looked up before the checks run, so the checks stay pure."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from kubenova.quota.usage import Usage, limits_of


@dataclass(frozen=True)
class Problem:
    """One reason to refuse a request: a message saying what to fix, and the HTTP code."""

    message: str
    code: int = 400


@dataclass(frozen=True)
class QuotaView:
    """A namespace's limits (Nova's defaults if it has no Quota) and its published usage."""

    limits: Usage = field(default_factory=lambda: limits_of(None))
    used: Usage = field(default_factory=Usage)


@dataclass(frozen=True)
class InstanceRefs:
    """The objects an Instance create names; None where the object does not exist."""

    flavor: Mapping[str, Any] | None
    """The Flavor's spec."""
    image: Mapping[str, Any] | None
    """The Image as {"spec", "status"}."""
    networks: Mapping[str, Mapping[str, Any] | None] = field(default_factory=dict)
    """Network name -> its spec."""
    held_ips: Mapping[str, Collection[str]] = field(default_factory=dict)
    """Network name -> the requested fixed IPs on it that a Port already holds."""
    keypair: bool | None = None
    """Whether spec.keyName exists (None: no keyName)."""
    volumes: Mapping[str, Mapping[str, Any] | None] = field(default_factory=dict)
    """Volume name -> the Volume as {"spec", "status"}."""
    quota: QuotaView = field(default_factory=QuotaView)
