"""Finding what a request refers to: from the watch-fed kopf indexes, or from the apiserver.

The indexes answer the common case (a good request) without an API call. They lag the
apiserver by a watch event, so a request they would refuse is looked at again with fresh reads
(`Lookup(objects)` without indexes) before it is refused: a Flavor created a moment before the
Instance that names it, or a Volume detached a moment ago, must not cause a refusal.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kubenova.admission.refs import InstanceRefs, QuotaView
from kubenova.kube.client import Objects
from kubenova.network.ipam import port_name
from kubenova.quota.quotas import NAME as QUOTA_NAME
from kubenova.quota.usage import Usage, limits_of

Index = Mapping[Any, Any]


@dataclass(frozen=True)
class Indexes:
    """The kopf indexes the checks read (see handlers/indexes.py for their shapes)."""

    flavors: Index
    images: Index
    networks: Index
    port_addresses: Index
    keypairs: Index
    volumes: Index
    quotas: Index


def _one(index: Index, key: Any) -> Any:
    store = index.get(key)
    return next(iter(store), None) if store is not None else None


def _parts(obj: Mapping[str, Any]) -> dict[str, Any]:
    return {"spec": dict(obj.get("spec") or {}), "status": dict(obj.get("status") or {})}


class Lookup:
    """Reads from `indexes` when given, else from the apiserver."""

    def __init__(self, objects: Objects, indexes: Indexes | None = None) -> None:
        self.objects = objects
        self.indexes = indexes

    async def flavor(self, name: str) -> dict[str, Any] | None:
        """The Flavor's spec."""
        if self.indexes is not None:
            return _one(self.indexes.flavors, name)
        obj = await self.objects.find("flavors", name, None)
        return dict(obj["spec"]) if obj else None

    async def image(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The Image as {"spec", "status"}."""
        if self.indexes is not None:
            return _one(self.indexes.images, (namespace, name))
        obj = await self.objects.find("images", name, namespace)
        return _parts(obj) if obj else None

    async def network(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The Network's spec."""
        if self.indexes is not None:
            entry = _one(self.indexes.networks, (namespace, name))
            return dict(entry["spec"]) if entry else None
        obj = await self.objects.find("networks", name, namespace)
        return dict(obj["spec"]) if obj else None

    async def ip_held(self, namespace: str, network: str, address: str) -> bool:
        """Whether a Port already holds `address` on `network`. A miss in the index is asked
        of the apiserver too: fixed IPs are rare, and a Port made a moment ago counts."""
        if self.indexes is not None and address in (
            self.indexes.port_addresses.get((namespace, network)) or ()
        ):
            return True
        return await self.objects.find("ports", port_name(network, address), namespace) is not None

    async def keypair_exists(self, namespace: str, name: str) -> bool:
        if self.indexes is not None:
            return _one(self.indexes.keypairs, (namespace, name)) is not None
        return await self.objects.find("keypairs", name, namespace) is not None

    async def volume(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The Volume as {"spec", "status"}."""
        if self.indexes is not None:
            return _one(self.indexes.volumes, (namespace, name))
        obj = await self.objects.find("volumes", name, namespace)
        return _parts(obj) if obj else None

    async def instance_uid(self, namespace: str, name: str) -> str | None:
        """Always fresh: only asked when a delete would be refused."""
        obj = await self.objects.find("instances", name, namespace)
        return obj["metadata"]["uid"] if obj else None

    async def quota(self, namespace: str) -> QuotaView:
        """The namespace's limits and the published usage; Nova's defaults without a Quota."""
        if self.indexes is not None:
            entry = _one(self.indexes.quotas, namespace)
        else:
            obj = await self.objects.find("quotas", QUOTA_NAME, namespace)
            entry = (
                {"spec": obj.get("spec"), "used": (obj.get("status") or {}).get("used")}
                if obj
                else None
            )
        if entry is None:
            return QuotaView()
        return QuotaView(limits=limits_of(entry["spec"]), used=Usage.of(entry["used"]))


async def instance_refs(lookup: Lookup, namespace: str, spec: Mapping[str, Any]) -> InstanceRefs:
    """Everything an Instance create names, looked up concurrently."""
    networks = [n["network"] for n in spec.get("networks") or []]
    fixed = [(n["network"], n["fixedIp"]) for n in spec.get("networks") or [] if n.get("fixedIp")]
    volumes = [v["volume"] for v in spec.get("volumes") or []]
    key = spec.get("keyName")
    flavor, image, quota, keypair, nets, held, vols = await asyncio.gather(
        lookup.flavor(spec["flavor"]),
        lookup.image(namespace, spec["image"]),
        lookup.quota(namespace),
        lookup.keypair_exists(namespace, key) if key else _none(),
        asyncio.gather(*(lookup.network(namespace, n) for n in networks)),
        asyncio.gather(*(lookup.ip_held(namespace, n, ip) for n, ip in fixed)),
        asyncio.gather(*(lookup.volume(namespace, v) for v in volumes)),
    )
    held_ips: dict[str, list[str]] = {}
    for (network, address), is_held in zip(fixed, held, strict=True):
        if is_held:
            held_ips.setdefault(network, []).append(address)
    return InstanceRefs(
        flavor=flavor,
        image=image,
        networks=dict(zip(networks, nets, strict=True)),
        held_ips=held_ips,
        keypair=keypair,
        volumes=dict(zip(volumes, vols, strict=True)),
        quota=quota,
    )


async def _none() -> None:
    return None
