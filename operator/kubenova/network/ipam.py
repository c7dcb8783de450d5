"""Address and MAC arithmetic for a Network: pure functions, no API calls.

Race-freedom does not live here but in the apiserver: a Port is named after its network and
address (`port_name`), so two allocators that pick the same address cannot both create it.
"""

from __future__ import annotations

import hashlib
import ipaddress
import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

#: OpenStack's default neutron base_mac prefix, so a kubenova MAC looks like a neutron one.
MAC_PREFIX = (0xFA, 0x16, 0x3E)
MAC_SPACE = 1 << 24
"""Host addresses beyond the first 2**24 of a network are not used (their MACs would repeat)."""


class AddressError(ValueError):
    """A requested address cannot be used on this network; the message says why."""


Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def dhcp_server_address(
    network: ipaddress.IPv4Network | ipaddress.IPv6Network,
    gateway: str | None,
    dns_servers: Iterable[str] = (),
) -> Address | None:
    """Where the Network's DHCP server answers (neutron's DHCP port): the gateway, else the
    first DNS server inside the network, else its last host address, which `Subnet` then keeps
    out of the pool. None for a network too small to spare one (/31, /32, IPv6 /127, /128)."""
    for text in (gateway, *dns_servers):
        if text and ipaddress.ip_address(text) in network:
            return ipaddress.ip_address(text)
    if network.num_addresses <= 2:
        return None
    last = network[-1]
    return last - 1 if network.version == 4 else last  # IPv4: before the broadcast address


@dataclass(frozen=True)
class Subnet:
    """The allocatable addresses of a Network's spec."""

    network: ipaddress.IPv4Network | ipaddress.IPv6Network
    reserved: frozenset[ipaddress.IPv4Address | ipaddress.IPv6Address]

    @classmethod
    def of_spec(cls, spec: dict) -> Subnet:
        network = ipaddress.ip_network(spec["cidr"], strict=False)
        dns = spec.get("dnsServers") or []
        reserved = {ipaddress.ip_address(a) for a in dns}
        if spec.get("gateway"):
            reserved.add(ipaddress.ip_address(spec["gateway"]))
        dhcp = dhcp_server_address(network, spec.get("gateway"), dns)
        if dhcp is not None:
            reserved.add(dhcp)
        return cls(network, frozenset(reserved))

    @property
    def prefix(self) -> int:
        return self.network.prefixlen

    def hosts(self) -> Iterator[ipaddress.IPv4Address | ipaddress.IPv6Address]:
        """Allocatable addresses in order: the network's hosts minus gateway, DHCP and DNS servers
        (IPv4 /31 and /32 have no network or broadcast address to skip)."""
        for address in itertools.islice(self.network.hosts(), MAC_SPACE):
            if address not in self.reserved:
                yield address

    def size(self) -> int:
        """How many addresses `hosts()` yields, without walking them."""
        total = self.network.num_addresses
        if self.network.version == 4 and self.prefix < 31:
            total -= 2  # network and broadcast
        elif self.network.version == 6 and self.prefix < 127:
            total -= 1  # the subnet-router anycast address
        total = min(total, MAC_SPACE)
        return total - sum(1 for a in self.reserved if self.usable(a))

    def usable(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        if address not in self.network:
            return False
        offset = int(address) - int(self.network.network_address)
        if self.network.version == 4 and self.prefix < 31:
            return 0 < offset < self.network.num_addresses - 1
        if self.network.version == 6 and self.prefix < 127:
            return 0 < offset <= MAC_SPACE
        return offset < MAC_SPACE

    def check_fixed(self, text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
        """A requested fixed IP, or AddressError telling the user what is wrong with it."""
        address = ipaddress.ip_address(text)
        if address not in self.network:
            raise AddressError(f"fixed IP {text} is outside the network's CIDR {self.network}")
        if address in self.reserved:
            raise AddressError(
                f"fixed IP {text} is the network's gateway, DHCP server or a DNS server"
            )
        if not self.usable(address):
            raise AddressError(f"fixed IP {text} is the network or broadcast address")
        return address

    def free(self, used: Iterable[str]) -> Iterator[ipaddress.IPv4Address | ipaddress.IPv6Address]:
        taken = {ipaddress.ip_address(a) for a in used}
        return (a for a in self.hosts() if a not in taken)


def port_name(network: str, address: str) -> str:
    """The Port's object name: unique per (network, address), a valid DNS subdomain."""
    return f"{network}-{address.replace('.', '-').replace(':', '-')}"


def mac_address(network_uid: str, subnet: Subnet, address: str) -> str:
    """A MAC unique within the network (a bijection of the address's offset, keyed by the
    network), and different for one instance's NICs on different networks in all but a 2**-24
    chance. Deterministic, so a port re-created after a crash gets the same MAC."""
    offset = int(ipaddress.ip_address(address)) - int(subnet.network.network_address)
    key = int.from_bytes(hashlib.sha256(network_uid.encode()).digest()[:3], "big")
    value = (key ^ offset) % MAC_SPACE
    return ":".join(f"{b:02x}" for b in (*MAC_PREFIX, *value.to_bytes(3, "big")))
