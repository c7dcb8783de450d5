"""`kubenova events NAME`: the instance's action log (as `openstack server event list`) and its
Kubernetes Events, read with the caller's kubeconfig, as kubectl reads them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from kubernetes import client

from kubenova import GROUP, VERSION

ACTION_COLUMNS = ("Action", "Request ID", "Start Time", "Finish Time", "Result", "Message")
EVENT_COLUMNS = ("Last Seen", "Type", "Reason", "Count", "Message")


def table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """Columns padded to their widest cell, as kubectl prints them (the last is not padded)."""
    rows = [list(header), *(list(r) for r in rows)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
    lines = []
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    return "\n".join(lines)


def _time(value: Any) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    text = str(value)
    return text.split(".")[0].rstrip("Z") + "Z" if "T" in text else text


def action_rows(actions: Iterable[Mapping[str, Any]]) -> list[list[str]]:
    rows = []
    for action in actions:
        name = action.get("action", "?")
        if action.get("rebootType"):
            name = f"{name} ({action['rebootType']})"
        rows.append(
            [
                name,
                action.get("requestId", "-"),
                _time(action.get("startTime")),
                _time(action.get("finishTime")),
                action.get("result") or "InProgress",
                (action.get("message") or "").replace("\n", " "),
            ]
        )
    return rows


def event_rows(events: Iterable[Any]) -> list[list[str]]:
    def when(event: Any) -> datetime | None:
        return event.last_timestamp or event.event_time or event.first_timestamp

    def written(event: Any) -> int:
        """Timestamps have second precision: events of one second keep the order they were
        written in (etcd's resourceVersion grows with each write)."""
        version = getattr(event.metadata, "resource_version", None) or ""
        return int(version) if version.isdigit() else 0

    ordered = sorted(events, key=lambda e: (when(e) is None, when(e) or datetime.min, written(e)))
    return [
        [
            _time(when(e)),
            e.type or "",
            e.reason or "",
            str(e.count or 1),
            (e.message or "").replace("\n", " "),
        ]
        for e in ordered
    ]


def render(instance: Mapping[str, Any], events: Iterable[Any]) -> str:
    meta = instance["metadata"]
    status = instance.get("status") or {}
    state = status.get("vmState") or "NEW"
    if status.get("taskState"):
        state += f"/{status['taskState']}"
    lines = [
        f"Instance {meta['name']} in namespace {meta['namespace']}: {state}, power "
        f"{status.get('powerState') or '-'}, host {status.get('host') or '-'}",
        "",
        "Actions:",
        table(ACTION_COLUMNS, action_rows(status.get("actions") or [])),
        "",
        "Events:",
    ]
    rows = event_rows(events)
    lines.append(table(EVENT_COLUMNS, rows) if rows else "<none>")
    return "\n".join(lines)


def show(api: client.ApiClient, namespace: str, name: str) -> str:
    instance = client.CustomObjectsApi(api).get_namespaced_custom_object(
        GROUP, VERSION, namespace, "instances", name
    )
    uid = instance["metadata"]["uid"]
    events = client.CoreV1Api(api).list_namespaced_event(
        namespace, field_selector=f"involvedObject.uid={uid}"
    )
    return render(instance, events.items)
