"""The action log: Nova's instance actions (`openstack server event list`) in `status.actions`.

Pure functions over the status as read: each returns the new list (or condition list), bounded
to the newest MAX_ACTIONS entries, for the status writer's `derive` hook, so the log is always
computed from the status the compare-and-swap write is based on.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from kubenova.conductor import conditions as conditions_module
from kubenova.models.v1alpha1.instance import MAX_ACTIONS
from kubenova.timestamps import iso, parse_time

#: the condition the latest action sets: True done, False failed or refused, Unknown running
CONDITION = "ActionSucceeded"
SUCCESS, ERROR = "Success", "Error"


def new_request_id() -> str:
    """Nova's request id form."""
    return f"req-{uuid.uuid4()}"


def entry(
    action: str,
    request_id: str,
    requested: datetime,
    started: datetime | None = None,
    reboot_type: str | None = None,
) -> dict[str, Any]:
    record: dict[str, Any] = {
        "action": action,
        "requestId": request_id,
        "requestTime": iso(requested),
    }
    if started is not None:
        record["startTime"] = iso(started)
    if reboot_type:
        record["rebootType"] = reboot_type
    return record


def appended(actions: Iterable[Mapping[str, Any]] | None, record: Mapping[str, Any]) -> list[dict]:
    """The log with `record` added at the end, oldest dropped beyond MAX_ACTIONS."""
    return [*(dict(a) for a in actions or ()), dict(record)][-MAX_ACTIONS:]


def finished(
    actions: Iterable[Mapping[str, Any]] | None,
    request_id: str | None,
    result: str,
    message: str,
    at: datetime,
) -> list[dict]:
    """The log with the entry of `request_id` finished; unchanged if it is not there (an entry
    older than the log keeps, or an instance made before the log existed)."""
    out = [dict(a) for a in actions or ()]
    for record in reversed(out):
        if request_id is not None and record.get("requestId") == request_id:
            record.update(finishTime=iso(at), result=result, message=message[:1000])
            record.setdefault("startTime", iso(at))
            break
    return out


def in_progress(
    actions: Iterable[Mapping[str, Any]] | None, action: str | None = None
) -> dict[str, Any] | None:
    """The newest unfinished entry (of `action`, if given)."""
    for record in reversed(list(actions or ())):
        if record.get("result") is None and (action is None or record.get("action") == action):
            return dict(record)
    return None


def with_condition(
    conditions: Iterable[Mapping[str, Any]] | None,
    status: str,
    reason: str,
    message: str,
    at: datetime,
    generation: int | None = None,
) -> list[dict]:
    """The conditions with CONDITION set (its lastTransitionTime moves only when status does)."""
    return conditions_module.with_condition(
        conditions, CONDITION, status, reason, message, iso(at), generation
    )


def changed_at(metadata: Mapping[str, Any], *path: str) -> datetime | None:
    """When a field of the object (path of keys, e.g. "spec", "powerState") was last written,
    from metadata.managedFields (second precision); None if no manager owns it."""
    latest: datetime | None = None
    for managed in metadata.get("managedFields") or ():
        if managed.get("subresource"):
            continue
        fields: Any = managed.get("fieldsV1") or {}
        for key in path:
            fields = fields.get(f"f:{key}") if isinstance(fields, dict) else None
            if fields is None:
                break
        if fields is None or not managed.get("time"):
            continue
        moment = parse_time(managed["time"])
        if latest is None or moment > latest:
            latest = moment
    return latest


# -- the build is the `create` action (conductor/build.py) ------------------------------------
def create_started(requested: datetime, started: datetime):
    """A status writer `derive` hook: log the create action as the build is accepted."""
    record = entry("create", new_request_id(), requested, started)

    def derive(status: dict[str, Any], patch: dict[str, Any]) -> None:
        if in_progress(status.get("actions"), "create") is None:
            patch["actions"] = appended(status.get("actions"), record)

    return derive


def create_finished(result: str, message: str, at: datetime):
    """A status writer `derive` hook: finish the create action (ACTIVE, or ERROR)."""

    def derive(status: dict[str, Any], patch: dict[str, Any]) -> None:
        record = in_progress(status.get("actions"), "create")
        if record is not None:
            patch["actions"] = finished(
                status.get("actions"), record["requestId"], result, message, at
            )

    return derive
