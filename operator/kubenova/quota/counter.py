"""UsageCounter: what each namespace uses, counted from its consumers as the watch reports them.

Nova counts quota usage from the instances themselves since Pike (no reservations table): here
each Instance and Volume carries what it counts in `status.quotaUsage`, and this counter keeps
per-namespace totals of those, changed by one event at a time, so a check costs no listing and
no read of a shared object that grows with the namespace. A reservation this process accepted
counts at once ("pending") until the consumer's own status shows it, as a placement claim in
flight does in the host cache.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kubenova.quota.usage import Usage


class UsageCounter:
    def __init__(self) -> None:
        self._consumers: dict[str, tuple[str, Usage]] = {}
        self._totals: dict[str, Usage] = {}
        self._pending: dict[str, dict[str, Usage]] = {}
        self._extra: dict[str, Usage] = {}
        """Per namespace, what pending reservations add to the consumers' statuses (kept as
        they change, so used() costs no walk over the reservations in flight)."""
        self.warm = False
        """Once it has seen as many consumers as the indexes hold (caught_up)."""

    def consumer_changed(self, namespace: str, uid: str, usage: Usage | None) -> None:
        """A consumer's status.quotaUsage as the watch shows it; None: it has none (refused,
        not accepted yet) or is gone."""
        pending = self._pending.get(namespace, {}).get(uid)
        if pending is not None:
            self._shift(namespace, self._counted(uid) - pending)  # re-added below if kept
        old = self._consumers.pop(uid, None)
        if old is not None:
            self._add(old[0], old[1], -1)
        if usage is not None:
            self._consumers[uid] = (namespace, usage)
            self._add(namespace, usage, 1)
        if pending is None:
            return
        if pending == usage:  # seen as reserved: no longer counted apart
            self._drop_pending(namespace, uid)
        else:
            self._shift(namespace, pending - self._counted(uid))

    def hold(self, namespace: str, uid: str, usage: Usage) -> None:
        """Count `usage` for `uid` now, before its status shows it."""
        self.forget(namespace, uid)
        self._pending.setdefault(namespace, {})[uid] = usage
        self._shift(namespace, usage - self._counted(uid))

    def forget(self, namespace: str, uid: str) -> None:
        """The consumer is released: its pending reservation ends (what its status counts
        ends with the consumer's deletion)."""
        pending = self._pending.get(namespace, {}).get(uid)
        if pending is not None:
            self._shift(namespace, self._counted(uid) - pending)
            self._drop_pending(namespace, uid)

    def held(self, uid: str, namespace: str) -> Usage | None:
        """What `uid` counts now: its pending reservation, else its status."""
        pending = self._pending.get(namespace, {}).get(uid)
        if pending is not None:
            return pending
        counted = self._consumers.get(uid)
        return counted[1] if counted is not None else None

    def used(self, namespace: str) -> Usage:
        """The namespace's usage: every consumer's status, a pending reservation replacing
        what its consumer's status says."""
        return self._totals.get(namespace, Usage()) + self._extra.get(namespace, Usage())

    def namespaces(self) -> set[str]:
        return set(self._totals) | set(self._extra)

    def caught_up(self, *indexes: Mapping[str, Any]) -> bool:
        """Whether the events seen cover the consumers the kopf indexes hold (namespace ->
        consumers with a quotaUsage). Until then a check counts from the indexes; once true,
        every later change arrives as an event."""
        if not self.warm:
            held = sum(len(store) for index in indexes for store in index.values())
            self.warm = held == len(self._consumers)
        return self.warm

    def _counted(self, uid: str) -> Usage:
        counted = self._consumers.get(uid)
        return counted[1] if counted is not None else Usage()

    def _shift(self, namespace: str, delta: Usage) -> None:
        extra = self._extra.get(namespace, Usage()) + delta
        if extra == Usage():
            self._extra.pop(namespace, None)
        else:
            self._extra[namespace] = extra

    def _add(self, namespace: str, usage: Usage, sign: int) -> None:
        total = self._totals.get(namespace, Usage())
        total = total + usage if sign > 0 else total - usage
        if total == Usage():
            self._totals.pop(namespace, None)
        else:
            self._totals[namespace] = total

    def _drop_pending(self, namespace: str, uid: str) -> None:
        pending = self._pending.get(namespace)
        if pending is not None:
            pending.pop(uid, None)
            if not pending:
                del self._pending[namespace]
