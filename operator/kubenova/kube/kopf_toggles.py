"""kopf's start-up readiness without its quadratic wake-ups.

At start kopf holds every object's handlers until all index handlers have seen what the first
listings returned: each object of an indexed kind gets a toggle in one ToggleSet, dropped once
indexed, and every object's worker waits on that set's condition. Each drop wakes every waiter
(`notify_all`) and each re-checks the set, although the set's state changes only with the
last drop: with 5,000 Nodes, their ResourceProviders and 10,000 Instances that is 20,000
waiters woken 20,000 times, minutes of start-up on one core (py-spy: the operator in
ToggleSet.is_on from ToggleSet.wait_for, kopf/_core/reactor/processing.py).

The patch wakes the waiters only when adding or dropping a toggle changes the set's state
(on/off), which is all a ToggleSet's waiters wait for; a toggle's own `turn_to` still wakes
everyone sharing the condition, as before. Same results, one wake-up instead of one per object.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from kopf._cogs.aiokits import aiotoggles

log = logging.getLogger("kubenova.kopf")

_PATCHED = "_kubenova_quiet_notifications"


async def _make_toggle(
    self: aiotoggles.ToggleSet, __val: bool = False, *, name: str | None = None
) -> aiotoggles.Toggle:
    toggle = aiotoggles.Toggle(__val, name=name, condition=self._condition)
    async with self._condition:
        before = self.is_on()
        self._toggles.add(toggle)
        if self.is_on() != before:
            self._condition.notify_all()
    return toggle


async def _drop_toggle(self: aiotoggles.ToggleSet, toggle: aiotoggles.Toggle) -> None:
    async with self._condition:
        before = self.is_on()
        self._toggles.discard(toggle)
        if self.is_on() != before:
            self._condition.notify_all()


async def _drop_toggles(self: aiotoggles.ToggleSet, toggles: Iterable[aiotoggles.Toggle]) -> None:
    async with self._condition:
        before = self.is_on()
        self._toggles.difference_update(toggles)
        if self.is_on() != before:
            self._condition.notify_all()


def install() -> bool:
    """Patch kopf's ToggleSet (idempotent). False, and kopf left as it is, if its ToggleSet
    is not the one this was written against (kopf 1.37-1.45: `_condition`, `_toggles`)."""
    cls: Any = aiotoggles.ToggleSet
    if getattr(cls, _PATCHED, False):
        return True
    probe = cls(all)
    if not (hasattr(probe, "_condition") and isinstance(getattr(probe, "_toggles", None), set)):
        log.warning("kopf's ToggleSet has changed: its start-up wake-ups are left unpatched")
        return False
    cls.make_toggle = _make_toggle
    cls.drop_toggle = _drop_toggle
    cls.drop_toggles = _drop_toggles
    setattr(cls, _PATCHED, True)
    return True
