"""NoCloud network-config (version 2, netplan's schema, as cloud-init reads it): one ethernet
per port, matched by MAC, with the port's static address. Static, not DHCP: kubenova has no
DHCP agent; the seed is the guest's only source, as Nova's config drive network_data.json is."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import yaml


@dataclass(frozen=True)
class NicConfig:
    mac: str
    address: str
    prefix: int
    gateway: str | None = None
    dns_servers: tuple[str, ...] = ()
    mtu: int | None = None


def network_config(nics: Sequence[NicConfig]) -> str | None:
    """The network-config document, or None when the instance has no ports."""
    if not nics:
        return None
    ethernets: dict[str, dict] = {}
    default_route = False
    for index, nic in enumerate(nics):
        ethernet: dict[str, object] = {
            "match": {"macaddress": nic.mac},
            "set-name": f"eth{index}",
            "addresses": [f"{nic.address}/{nic.prefix}"],
        }
        # One default route (the first network with a gateway), as Nova's metadata gives it.
        if nic.gateway and not default_route:
            ethernet["routes"] = [{"to": "default", "via": nic.gateway}]
            default_route = True
        if nic.dns_servers:
            ethernet["nameservers"] = {"addresses": list(nic.dns_servers)}
        if nic.mtu:
            ethernet["mtu"] = nic.mtu
        ethernets[f"eth{index}"] = ethernet
    return yaml.safe_dump(
        {"version": 2, "ethernets": ethernets}, default_flow_style=False, sort_keys=False
    )
