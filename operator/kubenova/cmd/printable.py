"""Nova's API status of an instance (`openstack server list`'s Status), for the CLI's progress
lines: `status.printableStatus` when the operator writes it, else derived from vmState and
taskState as Nova's api/openstack/common.py maps them (for an operator that predates it)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: Nova's _STATE_MAP, for the states kubenova has: vm_state -> {task_state or "default": status}
STATE_MAP: dict[str, dict[str, str]] = {
    "BUILDING": {"default": "BUILD"},
    "ACTIVE": {"default": "ACTIVE", "REBOOTING": "REBOOT", "REBOOTING_HARD": "HARD_REBOOT"},
    "STOPPED": {"default": "SHUTOFF"},
    "ERROR": {"default": "ERROR"},
    "DELETED": {"default": "DELETED"},
}


def printable_status(status: Mapping[str, Any] | None) -> str:
    status = status or {}
    if status.get("printableStatus"):
        return str(status["printableStatus"])
    vm = status.get("vmState")
    if not vm:
        return "BUILD"  # accepted, not yet taken up by the operator
    states = STATE_MAP.get(vm, {"default": "UNKNOWN"})
    return states.get(status.get("taskState") or "default", states["default"])
