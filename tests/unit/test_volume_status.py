"""A Volume's conditions follow its phase: Ready while usable, Failed in error."""

from __future__ import annotations

import pytest

from kubenova.volume.status import conditions_for, lost_message, phase_patch


def by_type(conditions: list[dict]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in conditions}


@pytest.mark.parametrize(
    ("phase", "ready", "failed"),
    [
        ("creating", ("False", "Creating"), ("False", "NoError")),
        ("available", ("True", "Available"), ("False", "NoError")),
        ("in-use", ("True", "InUse"), ("False", "NoError")),
        ("error", ("False", "DiskMissing"), ("True", "DiskMissing")),
    ],
)
def test_conditions_by_phase(phase, ready, failed):
    conditions = conditions_for([], phase, "why", reason="DiskMissing")
    assert by_type(conditions) == {"Ready": ready, "Failed": failed}
    assert all(c["message"] == "why" for c in conditions)


def test_transition_time_moves_only_when_a_status_does():
    first = conditions_for([], "available", "ready")
    for cond in first:
        cond["lastTransitionTime"] = "2020-01-01T00:00:00Z"
    same = conditions_for(first, "in-use", "attached")  # Ready stays True, Failed False
    assert {c["lastTransitionTime"] for c in same} == {"2020-01-01T00:00:00Z"}
    lost = conditions_for(same, "error", "gone", reason="DiskMissing")
    assert all(c["lastTransitionTime"] != "2020-01-01T00:00:00Z" for c in lost)


def test_other_conditions_are_kept_and_the_message_is_for_errors_only():
    volume = {"status": {"conditions": [{"type": "Custom", "status": "True"}]}}
    patch = phase_patch(volume, "available", "ready", attachedTo=None)
    assert patch["message"] is None and patch["attachedTo"] is None
    assert [c["type"] for c in patch["conditions"]] == ["Custom", "Ready", "Failed"]
    error = phase_patch(volume, "error", lost_message("/v/x.qcow2"), reason="DiskMissing")
    assert error["phase"] == "error" and "/v/x.qcow2 is missing" in error["message"]
