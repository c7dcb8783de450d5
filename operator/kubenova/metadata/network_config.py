"""NoCloud network-config (version 2, netplan's schema, as cloud-init reads it): one ethernet
per port, matched by MAC. As Nova's network_data.json says `ipv4_dhcp` for a subnet with a DHCP
server: DHCP where the host serves it (the embedded datapath's dnsmasq hands out exactly the
Port's address), else the port's static address (the seed is then the guest's only source)."""

from __future__ import annotations

import ipaddress
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
    dhcp: bool = False
    """The host's DHCP server serves this Port (IPv4 only: there is no DHCPv6)."""

    @property
    def by_dhcp(self) -> bool:
        return self.dhcp and ipaddress.ip_address(self.address).version == 4


def network_config(nics: Sequence[NicConfig]) -> str | None:
    """The network-config document, or None when the instance has no ports."""
    if not nics:
        return None
    ethernets: dict[str, dict] = {}
    default_route = False
    for index, nic in enumerate(nics):
        ethernet: dict[str, object] = {"match": {"macaddress": nic.mac}, "set-name": f"eth{index}"}
        if nic.by_dhcp:  # address, router, DNS and MTU come with the lease
            ethernet["dhcp4"] = True
        else:
            ethernet["addresses"] = [f"{nic.address}/{nic.prefix}"]
        # One default route (the first network with a gateway), as Nova's metadata gives it;
        # a DHCP lease brings its own (the router option).
        if nic.gateway and not default_route:
            if not nic.by_dhcp:
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
