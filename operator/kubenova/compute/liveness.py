"""Is a compute host's service up? Judged from its heartbeat, as Nova's servicegroup API does
(a service is down when it has not reported for `service_down_time`, 60 s by default).

The heartbeat is the host's Lease in kube-node-lease, renewed by whatever serves the host: the
operator for its embedded hosts (compute/registration.py), the kubelet for a cluster's Nodes
(kwok in the tests). Kubernetes' node-lifecycle controller, which would turn a silent Node
NotReady, does not run in the dev control plane, so the operator judges for itself; it never
writes the Node (on a real cluster the controller owns its conditions).

The judgement uses this process's own clock, as the node-lifecycle controller does: what counts
is when a *new* renewTime was last seen, never the timestamp itself, so clock skew between the
writer and the judge cannot make a host look up or down. A host seen for the first time (or
after this process started) gets the benefit of the doubt for `down_after`. A Node without a
Lease is not monitored: its Ready condition alone says whether it may take new instances.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass


@dataclass
class _Seen:
    renew: str | None
    """The renewTime as last listed."""
    changed_at: float
    """This process's monotonic time when that value was first seen."""
    moved: bool = False
    """The renewTime has changed at least once while this process watched it."""


class HeartbeatTracker:
    """Remembers when each host's Lease last changed; says which hosts are silent too long."""

    def __init__(self, down_after: float) -> None:
        self.down_after = down_after
        self._seen: dict[str, _Seen] = {}

    def observe(self, leases: Mapping[str, str | None], now: float) -> None:
        """Feed one complete listing of the Leases: host -> renewTime. A host whose Lease is not
        in the listing is forgotten (no Lease: not monitored)."""
        for host, renew in leases.items():
            seen = self._seen.get(host)
            if seen is None:
                self._seen[host] = _Seen(renew, now)
            elif seen.renew != renew:
                self._seen[host] = _Seen(renew, now, moved=True)
        for host in [h for h in self._seen if h not in leases]:
            del self._seen[host]

    def silent_for(self, host: str, now: float) -> float | None:
        """Seconds since the host's heartbeat last moved; None when it has no Lease."""
        seen = self._seen.get(host)
        return None if seen is None else max(0.0, now - seen.changed_at)

    def seen_alive(self, host: str) -> bool:
        """The host's heartbeat has been seen moving since this process started (or it has no
        Lease to judge by). Only then is a host that was marked down taken to be back: right
        after a restart every host gets the benefit of the doubt, which is not proof of life."""
        seen = self._seen.get(host)
        return seen is None or seen.moved

    def down(self, now: float, hosts: Iterable[str] | None = None) -> dict[str, str]:
        """The hosts (all monitored ones, or those of `hosts`) judged down, with why."""
        names = self._seen if hosts is None else hosts
        out = {}
        for host in names:
            silent = self.silent_for(host, now)
            if silent is not None and silent > self.down_after:
                out[host] = down_reason(silent, self.down_after)
        return out


def down_reason(silent: float, down_after: float) -> str:
    return (
        f"its compute service has sent no heartbeat for {silent:.0f}s (down after {down_after:g}s)"
    )
