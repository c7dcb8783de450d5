"""Event reasons are declared once with their type; a repeat has the name of what it repeats."""

import ast
import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest

from kubenova.kube import events
from kubenova.kube.events import COMPONENT, Reason, event_body, event_name

OBJ = {
    "apiVersion": "compute.kubenova.io/v1alpha1",
    "kind": "Instance",
    "metadata": {"name": "web-1", "namespace": "demo", "uid": "u-1", "resourceVersion": "7"},
}
SOURCES = Path(events.__file__).resolve().parents[1]


def test_warnings_are_failures_and_the_build_steps_are_normal():
    assert Reason.BUILD_FAILED.type == Reason.HOST_DOWN.type == "Warning"
    for reason in (Reason.NETWORKED, Reason.ACTIVE, Reason.IMAGE_ACTIVE,
                   Reason.DELETING, Reason.VOLUME_AVAILABLE, Reason.VOLUME_EXTENDED):  # fmt: skip
        assert reason.type == "Normal", reason


def test_a_repeat_has_the_same_name_and_anything_else_another():
    name = event_name(OBJ, Reason.ACTIVE, "the VM runs on h1")
    assert name == event_name(OBJ, Reason.ACTIVE, "the VM runs on h1")
    assert name.startswith("web-1.")
    others = {
        event_name(OBJ, Reason.ACTIVE, "the VM runs on h2"),
        event_name(OBJ, Reason.RESCHEDULING, "the VM runs on h1"),
        event_name({**OBJ, "metadata": {**OBJ["metadata"], "uid": "u-2"}}, Reason.ACTIVE,
                   "the VM runs on h1"),
    }  # fmt: skip
    assert name not in others and len(others) == 3


def test_the_body_names_one_component_and_the_object():
    body = event_body(OBJ, Reason.BUILD_FAILED, "no host", datetime(2026, 1, 1, tzinfo=UTC), "op")
    assert (body["type"], body["reason"], body["count"]) == ("Warning", "BuildFailed", 1)
    assert body["source"] == {"component": COMPONENT}
    assert body["reportingComponent"] == COMPONENT
    assert body["involvedObject"]["uid"] == "u-1"
    assert body["metadata"]["namespace"] == "demo"


def test_an_undeclared_reason_is_refused():
    post = events.EventRecorder(None).post(OBJ, "NotDeclared", "m")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="NotDeclared"):
        asyncio.run(post)


def _calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            yield node


def test_no_event_is_posted_around_the_recorder():
    """kopf.event/info/warn and direct Event creates would be a second source."""
    offenders = []
    for path in SOURCES.rglob("*.py"):
        if path.name == "events.py" and path.parent.name == "kube":
            continue
        for call in _calls(ast.parse(path.read_text())):
            func = call.func
            owner = func.value.id if isinstance(func.value, ast.Name) else None
            if (owner == "kopf" and func.attr in ("event", "info", "warn", "exception")) or (
                func.attr in ("create_namespaced_event", "patch_namespaced_event")
            ):
                offenders.append(f"{path.relative_to(SOURCES)}:{call.lineno}")
    assert offenders == []
