"""Ports: neutron's allocate_for_instance / deallocate_for_instance over Port objects.

An address is taken by creating the Port named after it; the apiserver refuses a second create
of that name (409), and the loser simply tries the next free address. Ports carry their
instance's uid as a label, so a restarted operator finds the ports it already made instead of
taking new addresses (allocation is idempotent per instance and network).
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from kubenova import GROUP, VERSION
from kubenova.kube.client import ApiException, Objects
from kubenova.network.ipam import AddressError, Subnet, mac_address, port_name
from kubenova.virt.driver import Vif

PLURAL = "ports"
INSTANCE_LABEL = f"{GROUP}/instance-uid"
NETWORK_LABEL = f"{GROUP}/network"
log = logging.getLogger("kubenova.network")


class PortError(Exception):
    """A port could not be allocated; `code` is the HTTP-style code for the instance fault."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Owner:
    """The instance the ports are for."""

    namespace: str
    name: str
    uid: str


@dataclass(frozen=True)
class Allocation:
    network: str
    ip: str
    mac: str
    prefix: int
    port: str

    @classmethod
    def of_port(cls, port: Mapping[str, Any], prefix: int) -> Allocation:
        spec = port["spec"]
        return cls(
            spec["network"], spec["ipAddress"], spec["macAddress"], prefix, port["metadata"]["name"]
        )


class Ports:
    def __init__(self, objects: Objects) -> None:
        self.objects = objects
        self._attempted: dict[tuple[str, str], set[str]] = {}
        """(namespace, network) -> addresses tried here recently: concurrent allocations in
        this process skip each other's picks before the watch shows the new Ports."""

    async def of_instance(self, owner: Owner) -> list[dict[str, Any]]:
        return await self.objects.list(
            PLURAL, owner.namespace, label_selector=f"{INSTANCE_LABEL}={owner.uid}"
        )

    async def on_network(self, namespace: str, network: str) -> list[str]:
        """The names of the Ports on `network`, read fresh (a delete decision, not a hot
        path): whoever made them, labelled or not."""
        ports = await self.objects.list(PLURAL, namespace)
        return sorted(p["metadata"]["name"] for p in ports if p["spec"]["network"] == network)

    async def allocate(
        self,
        owner: Owner,
        network: Mapping[str, Any],
        fixed_ip: str | None,
        used: Collection[str],
        existing: list[dict[str, Any]],
    ) -> Allocation:
        """One port on `network` for the owner: its existing one, the fixed IP, or the next
        free address not in `used` (the watch-fed view; a stale view only costs a 409)."""
        name = network["metadata"]["name"]
        subnet = Subnet.of_spec(network["spec"])
        for port in existing:
            if port["spec"]["network"] == name:
                return Allocation.of_port(port, subnet.prefix)
        if fixed_ip is not None:
            try:
                address = str(subnet.check_fixed(fixed_ip))
            except AddressError as err:
                raise PortError(f"network {name}: {err}", 400) from err
            port = await self._create(owner, network, subnet, address)
            if port is None:
                raise PortError(f"fixed IP {fixed_ip} is already in use on network {name}", 409)
            return Allocation.of_port(port, subnet.prefix)
        tried = self._attempted.setdefault((owner.namespace, name), set())
        for candidate in subnet.free(used):
            address = str(candidate)
            if address in tried:
                continue
            tried.add(address)
            try:
                port = await self._create(owner, network, subnet, address)
            finally:
                tried.discard(address)
            if port is not None:
                return Allocation.of_port(port, subnet.prefix)
        raise PortError(
            f"network {name} exhausted: no free address left in {subnet.network} "
            f"({subnet.size()} usable)",
            409,
        )

    async def _create(
        self, owner: Owner, network: Mapping[str, Any], subnet: Subnet, address: str
    ) -> dict[str, Any] | None:
        """The new Port, or None when the address is already held (409)."""
        name = network["metadata"]["name"]
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "Port",
            "metadata": {
                "name": port_name(name, address),
                "namespace": owner.namespace,
                "labels": {INSTANCE_LABEL: owner.uid, NETWORK_LABEL: name},
                # A backstop for clusters with a garbage collector; the operator deletes its
                # ports itself (the dev control plane has no controller-manager).
                "ownerReferences": [
                    {
                        "apiVersion": f"{GROUP}/{VERSION}",
                        "kind": "Instance",
                        "name": owner.name,
                        "uid": owner.uid,
                    }
                ],
            },
            "spec": {
                "network": name,
                "ipAddress": address,
                "macAddress": mac_address(network["metadata"]["uid"], subnet, address),
                "deviceId": owner.name,
            },
        }
        try:
            return await self.objects.create(PLURAL, body)
        except ApiException as err:
            if err.status == 409:
                return None
            raise

    async def set_phase(
        self, port: str, namespace: str, phase: str, host: str | None, vif: Vif | None = None
    ) -> None:
        """The Port's status: its phase, its host and, once plugged, where (`vif`)."""
        status: dict[str, Any] = {"phase": phase, "host": host}
        if vif is not None:
            status["binding"] = {
                "host": vif.host,
                "bridge": vif.bridge,
                "tap": vif.tap,
                "netns": vif.netns,
            }
        try:
            await self.objects.patch_status(PLURAL, port, namespace, {"status": status})
        except ApiException as err:
            if err.status != 404:
                raise

    async def release(self, owner: Owner) -> list[str]:
        """Delete every port of the instance (idempotent); their addresses are free again.

        Each delete carries the port's uid as a precondition: a Port's name is its address,
        and once freed (say by a concurrent release) the address may be taken by another
        instance under the same name, whose Port must not be deleted by this stale list."""
        ports = await self.of_instance(owner)
        for port in ports:
            meta = port["metadata"]
            await self.objects.delete(PLURAL, meta["name"], owner.namespace, uid=meta["uid"])
        return [p["spec"]["ipAddress"] for p in ports]


def in_use_message(network: str, ports: list[str]) -> str:
    """Why `network` cannot go yet (neutron's NetworkInUse)."""
    shown = ", ".join(ports[:5]) + (", ..." if len(ports) > 5 else "")
    return (
        f"network {network} is in use by {len(ports)} port(s) ({shown}): delete their "
        "instances first; the network is removed once they are gone"
    )
