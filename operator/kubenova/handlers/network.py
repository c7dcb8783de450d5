"""Network handlers: address counts in status, and neutron's DHCP agent for the embedded
datapath (dnsmasq's hosts follow the Ports; a Network goes only once its Ports are gone)."""

from __future__ import annotations

import logging

import kopf

from kubenova import GROUP, VERSION
from kubenova.conductor.context import Conductor
from kubenova.kube import events
from kubenova.kube.events import Reason
from kubenova.network.datapath import PortBinding
from kubenova.network.ipam import Subnet
from kubenova.network.ports import in_use_message

log = logging.getLogger("kubenova.network")
#: Seconds between status refreshes; `kubectl get networks` shows the counts this fresh.
REFRESH = 2.0
#: Seconds between checks whether a Network being deleted has lost its last Port.
IN_USE_RETRY = 5.0


@kopf.timer(GROUP, VERSION, "networks", interval=REFRESH, initial_delay=0)
async def count_addresses(namespace, name, spec, status, patch, port_addresses, **_):
    used = len(port_addresses.get((namespace, name)) or ())
    available = max(0, Subnet.of_spec(spec).size() - used)
    if (status.get("usedIPs"), status.get("availableIPs")) != (used, available):
        patch.status.update(usedIPs=used, availableIPs=available)


@kopf.index(GROUP, VERSION, "ports")
async def port_bindings(namespace, spec, meta, uid, name, **_):
    """Each Network's Ports as dnsmasq serves them (the hostname is the instance's name, as the
    QEMU driver gives it when it plugs the Port)."""
    binding = PortBinding(
        uid=uid,
        mac=spec["macAddress"].lower(),
        ip=spec["ipAddress"],
        hostname=spec.get("deviceId"),
        name=f"{namespace}/{name}",
    )
    return {(namespace, spec["network"]): binding}


@kopf.on.event(GROUP, VERSION, "ports")
async def serve_ports(namespace, spec, memo, port_bindings, network_specs, **_):
    """A Port came, changed or went: its Network's dnsmasq serves exactly the Network's Ports
    (only where this operator has set the Network up; a spawn sets it up with its own Port)."""
    conductor: Conductor = memo.conductor
    network = network_specs.get((namespace, spec.get("network")))
    if conductor.datapath is None or not network:
        return
    (entry,) = network  # one Network per (namespace, name)
    ports = port_bindings.get((namespace, spec["network"])) or ()
    await conductor.datapath.update_ports(entry["metadata"]["uid"], ports)


@kopf.on.delete(GROUP, VERSION, "networks")
async def remove_network(namespace, name, uid, body, memo, **_):
    """neutron's "network in use": a Network with Ports stays (its deletion waits) until they
    are gone, with a Warning saying which; then its namespace, bridge and dnsmasq go."""
    conductor: Conductor = memo.conductor
    ports = await conductor.ports.on_network(namespace, name)
    if ports:
        message = in_use_message(name, ports)
        events.emit(body, Reason.NETWORK_IN_USE, message)
        raise kopf.TemporaryError(message, delay=IN_USE_RETRY)
    if conductor.datapath is not None:
        left = await conductor.datapath.remove_network(uid)
        if left:
            log.warning("network %s/%s removed; processes still inside: %s", namespace, name, left)
