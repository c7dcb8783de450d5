"""A Volume's status: its phase, message and conditions, always written together by
compare-and-swap, so a phase and the conditions `kubectl wait` reads never disagree and a writer
racing an attach cannot undo it.

Conditions (standard Kubernetes ones, so `kubectl wait --for=condition=... volume/NAME` works):

- `Ready`: True while the disk exists and can be used (phase `available` or `in-use`);
- `Failed`: True once the volume is in `error` (cinder's status): its disk could not be made,
  or it was lost. A lost disk is never re-created empty; the volume stays in error until it is
  deleted.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from kubenova.kube.client import Objects
from kubenova.kube.retry import conflict_backoff
from kubenova.timestamps import iso, now

PLURAL = "volumes"
READY, FAILED = "Ready", "Failed"
RETRIES = 20
USABLE = ("available", "in-use")

#: phase -> (Ready, its reason)
_READY = {
    "creating": ("False", "Creating"),
    "available": ("True", "Available"),
    "attaching": ("False", "Attaching"),
    "in-use": ("True", "InUse"),
    "detaching": ("False", "Detaching"),
    "deleting": ("False", "Deleting"),
    "error": ("False", "Error"),
}


def conditions_for(
    current: Iterable[Mapping[str, Any]] | None,
    phase: str,
    message: str,
    reason: str | None = None,
) -> list[dict[str, Any]]:
    """The Ready and Failed conditions for `phase` (an error's `reason` names its cause);
    lastTransitionTime moves only when a condition's status does."""
    ready, ready_reason = _READY[phase]
    failed = "True" if phase == "error" else "False"
    wanted = {
        READY: (ready, reason if phase == "error" and reason else ready_reason),
        FAILED: (failed, (reason or "Error") if failed == "True" else "NoError"),
    }
    stamp = iso(now())
    out = [dict(c) for c in current or () if c.get("type") not in wanted]
    before = {c.get("type"): c for c in current or ()}
    for ctype, (status, why) in wanted.items():
        old = before.get(ctype) or {}
        moved = old.get("status") != status
        out.append(
            {
                "type": ctype,
                "status": status,
                "reason": why,
                "message": message[:1000],
                "lastTransitionTime": stamp if moved else old.get("lastTransitionTime", stamp),
            }
        )
    return out


def phase_patch(
    volume: Mapping[str, Any],
    phase: str,
    message: str,
    reason: str | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """The status merge patch that moves `volume` to `phase` (plus `fields`, e.g. the
    attachment's), computed on the status as read."""
    status = volume.get("status") or {}
    return {
        "phase": phase,
        "message": message if phase == "error" else None,
        "conditions": conditions_for(status.get("conditions"), phase, message, reason),
        **fields,
    }


class VolumeStatus:
    """Phase moves of one Volume, each a CAS re-tried on a fresh read."""

    def __init__(self, objects: Objects) -> None:
        self.objects = objects

    async def record_quota(
        self, namespace: str, name: str, uid: str, usage: dict[str, int]
    ) -> dict[str, Any] | None:
        """Write what the volume counts against the quota (status.quotaUsage), unless it
        says so already."""

        def differs(volume: Mapping[str, Any]) -> bool:
            status = volume.get("status") or {}
            return volume["metadata"]["uid"] == uid and status.get("quotaUsage") != usage

        return await self.move(namespace, name, differs, lambda _: {"quotaUsage": usage})

    async def move(
        self,
        namespace: str,
        name: str,
        allowed: Callable[[Mapping[str, Any]], bool],
        patch: Callable[[Mapping[str, Any]], dict[str, Any]],
    ) -> dict[str, Any] | None:
        """Write patch(volume) while allowed(volume) holds on the volume as read: the updated
        object, or None when the volume is gone or no longer allowed the move."""
        for attempt in range(RETRIES):
            volume = await self.objects.find(PLURAL, name, namespace)
            if volume is None or not allowed(volume):
                return None
            updated = await self.objects.patch_status_unless_changed(PLURAL, volume, patch(volume))
            if updated is not None:
                return updated
            await conflict_backoff(attempt)
        raise RuntimeError(f"Volume {namespace}/{name}: too many concurrent status writes")

    async def to_phase(
        self,
        namespace: str,
        name: str,
        phase: str,
        message: str,
        *,
        reason: str | None = None,
        uid: str | None = None,
        from_phases: Iterable[str | None] | None = None,
    ) -> dict[str, Any] | None:
        """Move the volume (the one with `uid`, when given) to `phase` if it is in one of
        `from_phases` (any when None)."""
        sources = None if from_phases is None else set(from_phases)

        def allowed(volume: Mapping[str, Any]) -> bool:
            if uid is not None and volume["metadata"]["uid"] != uid:
                return False
            return sources is None or (volume.get("status") or {}).get("phase") in sources

        return await self.move(
            namespace, name, allowed, lambda v: phase_patch(v, phase, message, reason)
        )

    async def lost(self, namespace: str, name: str, uid: str, path: str) -> dict[str, Any] | None:
        """The disk of a usable volume is gone: error, never an empty disk in its place. An
        attachment stays recorded (the instance still names the volume) until it detaches."""
        message = lost_message(path)
        return await self.to_phase(
            namespace,
            name,
            "error",
            message,
            reason="DiskMissing",
            uid=uid,
            from_phases=("available", "attaching", "in-use", "detaching"),
        )


def lost_message(path: str) -> str:
    return (
        f"the volume's disk {path} is missing from the backend: its data is lost and the disk "
        "is not re-created empty; delete this Volume and restore it from a backup"
    )
