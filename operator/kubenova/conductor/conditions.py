"""Kubernetes-style conditions on Instance status: one way to set one, used by every writer
(the build's state conditions, Ready, Failed, the action log's ActionSucceeded)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

MESSAGE_LIMIT = 1000


def set_condition(
    conditions: list[dict[str, Any]],
    ctype: str,
    status: str,
    reason: str,
    message: str,
    at: str,
    generation: int | None = None,
) -> None:
    """Set `ctype` in place; its lastTransitionTime moves only when its status does."""
    message = message[:MESSAGE_LIMIT]
    for cond in conditions:
        if cond.get("type") == ctype:
            if cond.get("status") != status:
                cond["lastTransitionTime"] = at
            cond.update(status=status, reason=reason, message=message)
            if generation is not None:
                cond["observedGeneration"] = generation
            return
    entry: dict[str, Any] = {
        "type": ctype,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": at,
    }
    if generation is not None:
        entry["observedGeneration"] = generation
    conditions.append(entry)


def with_condition(
    conditions: Iterable[Mapping[str, Any]] | None,
    ctype: str,
    status: str,
    reason: str,
    message: str,
    at: str,
    generation: int | None = None,
) -> list[dict[str, Any]]:
    """A copy of `conditions` with `ctype` set."""
    out = [dict(c) for c in conditions or ()]
    set_condition(out, ctype, status, reason, message, at, generation)
    return out


def find(conditions: Iterable[Mapping[str, Any]] | None, ctype: str) -> Mapping[str, Any] | None:
    return next((c for c in conditions or () if c.get("type") == ctype), None)
