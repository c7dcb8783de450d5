"""What the audit removes: pure decisions over one snapshot of the cloud.

A *suspect* is something made on an instance's behalf whose instance does not own it any more:

- `vm`: a VM (process or instance directory) on one of this operator's hosts whose instance
  does not exist, or rests on another host (or on none: a build that ended in ERROR);
- `port`: a Port labelled with the uid of an instance that does not exist, or that rests in
  ERROR without a host (a failed build gives its ports back);
- `claim`: a ResourceProvider allocation whose consumer does not exist, or rests on another
  host;
- `volume_attachment`: a Volume in-use by an instance that does not exist, or that rests in
  ERROR without a host;
- the embedded datapath's (made on a Network's or a Port's behalf): `netns`, a Network's
  namespace (bridge, dnsmasq) whose Network does not exist; `tap`, a tap no qemu holds whose
  Port does not exist; `dnsmasq` and `datapath_dir`, a dnsmasq or a state directory whose
  namespace is gone.

"Rests" means vmState ACTIVE, STOPPED or ERROR with no task state and no deletion under way:
while a build step, an action or a deletion runs, what the instance holds is changing and it is
left alone.

Two guards keep the audit off anything that belongs to an instance being created right now:

1. Order. Everything is made for an instance that already exists (its uid is only known once the
   apiserver created it), and the auditor lists what instances own *before* it lists the
   instances (one consistent read), so an owner that exists is always in the list.
2. Age. A suspect is removed only once it has been one for `grace` seconds, on audits at least
   that far apart (`OrphanTracker`): a young one (made a moment ago, its instance's status not
   yet showing it) is only remembered; one that stops being a suspect is forgotten.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

KINDS = (
    "vm",
    "port",
    "claim",
    "volume_attachment",
    "netns",
    "tap",
    "dnsmasq",
    "datapath_dir",
)
RESTING_VM_STATES = frozenset({"ACTIVE", "STOPPED", "ERROR"})


@dataclass(frozen=True)
class InstanceView:
    """What the audit needs of one Instance."""

    namespace: str
    name: str
    host: str | None
    resting: bool
    """ACTIVE, STOPPED or ERROR, no task, not being deleted."""

    @classmethod
    def of(cls, obj: Mapping[str, Any]) -> InstanceView:
        meta, status = obj["metadata"], obj.get("status") or {}
        resting = (
            status.get("vmState") in RESTING_VM_STATES
            and status.get("taskState") is None
            and not meta.get("deletionTimestamp")
        )
        return cls(meta["namespace"], meta["name"], status.get("host"), resting)

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class Snapshot:
    instances: Mapping[str, InstanceView]
    """Every Instance, by uid (listed last)."""
    vms: Sequence[tuple[str, str]] = ()
    """(host, instance uid) of every VM on this operator's hosts."""
    ports: Sequence[tuple[str, str, str, str]] = ()
    """(namespace, port name, port uid, instance uid label)."""
    claims: Sequence[tuple[str, str]] = ()
    """(node, consumer uid) of every ResourceProvider allocation."""
    attachments: Sequence[tuple[str, str, str]] = ()
    """(namespace, volume name, instance uid) of every in-use Volume."""
    datapath: DatapathView | None = None
    """The embedded datapath, if this operator has one (taken before the Networks and Ports)."""


@dataclass(frozen=True)
class DatapathView:
    """What the datapath made, and what may own it."""

    namespaces: Sequence[tuple[str, str | None]] = ()
    """(namespace, the uid of the Network it serves; None if its record is lost)."""
    taps: Sequence[tuple[str, str, bool]] = ()
    """(namespace, tap, held by a qemu)."""
    strays: Sequence[tuple[str, str]] = ()
    """("dnsmasq", pid) or ("datapath_dir", path): whose namespace is gone."""
    networks: frozenset[str] = frozenset()
    """Every Network's uid."""
    port_taps: frozenset[str] = frozenset()
    """The tap name of every Port."""


@dataclass(frozen=True)
class Suspect:
    kind: str
    key: tuple[str, ...]
    """Where it is: (host, uid), (namespace, port), (node, uid), (namespace, volume), (namespace,
    uid)."""
    owner: str
    """The uid of the instance (or volume) it was made for."""
    why: str
    object_uid: str | None = field(default=None, compare=False)
    """The object's own uid, when it is an object (a Port: deleted with a uid precondition)."""

    @property
    def identity(self) -> tuple[str, ...]:
        return (self.kind, *self.key, self.owner)

    def __str__(self) -> str:
        return f"{self.kind} {'/'.join(self.key)}"


def suspects(snap: Snapshot) -> list[Suspect]:
    return list(_suspects(snap))


def _suspects(snap: Snapshot) -> Iterator[Suspect]:
    instances = snap.instances
    for host, uid in snap.vms:
        inst = instances.get(uid)
        if inst is None:
            yield Suspect("vm", (host, uid), uid, f"instance {uid} no longer exists")
        elif inst.resting and inst.host != host:
            yield Suspect("vm", (host, uid), uid, f"{inst.ref} rests {_on(inst.host)}")
    for namespace, name, port_uid, uid in snap.ports:
        inst = instances.get(uid)
        if inst is None:
            why = f"instance {uid} no longer exists"
        elif inst.resting and inst.host is None:
            why = f"{inst.ref} rests in ERROR with no host (its failed build gave its ports back)"
        else:
            continue
        yield Suspect("port", (namespace, name), uid, why, port_uid)
    for node, uid in snap.claims:
        inst = instances.get(uid)
        if inst is None:
            yield Suspect("claim", (node, uid), uid, f"consumer {uid} no longer exists")
        elif inst.resting and inst.host != node:
            yield Suspect("claim", (node, uid), uid, f"{inst.ref} rests {_on(inst.host)}")
    for namespace, volume, uid in snap.attachments:
        inst = instances.get(uid)
        if inst is None:
            why = f"instance {uid} no longer exists"
        elif inst.resting and inst.host is None:
            why = f"{inst.ref} rests in ERROR with no host (its failed build detached it)"
        else:
            continue
        yield Suspect("volume_attachment", (namespace, volume), uid, why)
    if snap.datapath is not None:
        yield from _datapath_suspects(snap.datapath)


def _datapath_suspects(view: DatapathView) -> Iterator[Suspect]:
    gone = set()
    for netns, network in view.namespaces:
        if network is None or network not in view.networks:
            gone.add(netns)
            why = f"network {network} no longer exists" if network else "its network is unknown"
            yield Suspect("netns", (netns,), network or "", why)
    for netns, tap, held in view.taps:
        if netns not in gone and not held and tap not in view.port_taps:
            yield Suspect("tap", (netns, tap), "", "its port no longer exists")
    for kind, what in view.strays:
        yield Suspect(kind, (what,), "", "its namespace is gone")


def _on(host: str | None) -> str:
    return f"on {host}" if host else "with no host"


class OrphanTracker:
    """Remembers since when each suspect has been one; a suspect is ripe after `grace`."""

    def __init__(self) -> None:
        self.first_seen: dict[tuple[str, ...], float] = {}

    def ripe(self, found: Iterable[Suspect], now: float, grace: float) -> list[Suspect]:
        """Record this audit's suspects (forgetting those that are not any more) and return
        those that have been suspects for at least `grace` seconds."""
        found = list(found)
        current = {s.identity for s in found}
        for identity in [i for i in self.first_seen if i not in current]:
            del self.first_seen[identity]
        for suspect in found:
            self.first_seen.setdefault(suspect.identity, now)
        return [s for s in found if now - self.first_seen[s.identity] >= grace]

    def forget(self, suspect: Suspect) -> None:
        self.first_seen.pop(suspect.identity, None)
