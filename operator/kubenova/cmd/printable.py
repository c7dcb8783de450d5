"""Nova's API status of an instance (`openstack server list`'s Status), for the CLI's progress
lines: `status.printableStatus` as the operator writes it, else derived the way the operator
derives it (conductor/states.py), for an operator that predates the field."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kubenova.conductor.states import of_status
from kubenova.conductor.states import printable_status as derived


def printable_status(status: Mapping[str, Any] | None) -> str:
    status = status or {}
    if status.get("printableStatus"):
        return str(status["printableStatus"])
    try:
        shown = derived(of_status(dict(status)))
    except ValueError:  # a vm or task state this version does not know
        return "UNKNOWN"
    return shown or "BUILD"  # accepted, not yet taken up: Nova shows BUILD
