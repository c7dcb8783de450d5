"""What the datapath is told about a Network and its Ports, and the dnsmasq configuration
rendered from it: pure functions, unit-tested without a namespace.

dnsmasq is configured on its command line (neutron's DHCP agent does the same) plus two files
it re-reads on SIGHUP: the DHCP hosts file (MAC -> address, name) and an additional hosts file
(address -> name, for DNS before the guest's first lease). Nothing is read from the machine's
/etc: no /etc/dnsmasq.conf, /etc/hosts or /etc/resolv.conf, and no upstream DNS server, so
DNS answers only for the Network's own names and never forwards a query.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubenova.network.datapath.names import dns_label
from kubenova.network.ipam import dhcp_server_address

#: neutron's default dns_domain.
DEFAULT_DOMAIN = "openstacklocal"
#: neutron's default dhcp_lease_duration (seconds).
DEFAULT_LEASE_SECONDS = 86400

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class DatapathError(Exception):
    """A datapath operation failed; the message says what and why."""


@dataclass(frozen=True)
class NetworkConfig:
    """One Network as the datapath needs it."""

    uid: str
    cidr: str
    gateway: str | None = None
    dns_servers: tuple[str, ...] = ()
    mtu: int | None = None
    name: str = ""  # namespace/name, for logs and the audit
    domain: str = DEFAULT_DOMAIN

    @classmethod
    def of_network(cls, network: Mapping[str, Any]) -> NetworkConfig:
        """From a Network object (as the apiserver returns it)."""
        meta, spec = network["metadata"], network["spec"]
        return cls(
            uid=meta["uid"],
            cidr=spec["cidr"],
            gateway=spec.get("gateway"),
            dns_servers=tuple(spec.get("dnsServers") or ()),
            mtu=spec.get("mtu"),
            name=f"{meta.get('namespace', '')}/{meta['name']}",
        )

    @property
    def network(self) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
        return ipaddress.ip_network(self.cidr, strict=False)

    def host_address(self) -> IPAddress:
        """The bridge's address in the namespace, from which dnsmasq answers and tests reach
        guests: the Network's DHCP server address (ipam.dhcp_server_address: the gateway, a DNS
        server inside it, else its last host address; all kept out of the Port pool)."""
        address = dhcp_server_address(self.network, self.gateway, self.dns_servers)
        if address is None:
            raise DatapathError(
                f"network {self.name or self.uid} ({self.cidr}) has no gateway and no address "
                "to spare for its DHCP server: give it a gateway or a larger CIDR"
            )
        return address

    def interface_address(self) -> str:
        """`address/prefix` for `ip addr add`."""
        return f"{self.host_address()}/{self.network.prefixlen}"


@dataclass(frozen=True)
class PortBinding:
    """One Port as the datapath needs it: its uid names the tap, MAC and address feed DHCP."""

    uid: str
    mac: str
    ip: str
    hostname: str | None = None
    name: str = ""  # namespace/name, for logs

    @classmethod
    def of_port(cls, port: Mapping[str, Any], hostname: str | None = None) -> PortBinding:
        """From a Port object; `hostname` is the instance's (the Port does not carry it)."""
        meta, spec = port["metadata"], port["spec"]
        return cls(
            uid=meta["uid"],
            mac=spec["macAddress"].lower(),
            ip=spec["ipAddress"],
            hostname=hostname,
            name=f"{meta.get('namespace', '')}/{meta['name']}",
        )


@dataclass(frozen=True)
class DnsmasqFiles:
    """Everything of one Network's dnsmasq, in one directory under the state dir."""

    root: Path

    @property
    def hosts(self) -> Path:
        return self.root / "dhcp-hosts"

    @property
    def addn_hosts(self) -> Path:
        return self.root / "addn-hosts"

    @property
    def leases(self) -> Path:
        return self.root / "leases"

    @property
    def pidfile(self) -> Path:
        return self.root / "dnsmasq.pid"

    @property
    def log(self) -> Path:
        return self.root / "dnsmasq.log"

    @property
    def network(self) -> Path:
        """network.json: which Network the namespace serves (for the audit's reports)."""
        return self.root / "network.json"


def dhcp_range(network: NetworkConfig, lease_seconds: int) -> str | None:
    """Static mode: only the hosts file's MACs get an address, and only their own. IPv4 only:
    a static DHCPv6 range needs router advertisements the datapath does not send, so IPv6
    Networks get L2 and DNS, their guests take addresses from network-config."""
    net = network.network
    if net.version != 4:
        return None
    return f"set:net,{net.network_address},static,{net.netmask},{lease_seconds}s"


def dnsmasq_argv(
    binary: str,
    network: NetworkConfig,
    bridge: str,
    files: DnsmasqFiles,
    user: str,
    lease_seconds: int = DEFAULT_LEASE_SECONDS,
) -> list[str]:
    """The command line of the Network's dnsmasq, run inside its namespace. Equal argv means
    equal configuration: an adopted dnsmasq whose argv differs is restarted."""
    argv = [
        binary,
        "--conf-file=/dev/null",
        "--no-hosts",
        "--no-resolv",
        "--bind-interfaces",
        f"--interface={bridge}",
        "--except-interface=lo",
        f"--listen-address={network.host_address()}",
        f"--pid-file={files.pidfile}",
        f"--dhcp-leasefile={files.leases}",
        f"--dhcp-hostsfile={files.hosts}",
        f"--addn-hosts={files.addn_hosts}",
        f"--log-facility={files.log}",
        "--log-dhcp",
        f"--user={user}",
        f"--domain={network.domain}",
        f"--local=/{network.domain}/",
        "--expand-hosts",
    ]
    dhcp = dhcp_range(network, lease_seconds)
    if dhcp is not None:
        argv += [f"--dhcp-range={dhcp}", "--dhcp-authoritative"]
        if network.gateway:
            argv.append(f"--dhcp-option=option:router,{network.gateway}")
        else:
            argv.append("--dhcp-option=option:router")  # no default route offered
        dns = network.dns_servers or (str(network.host_address()),)
        argv.append(f"--dhcp-option=option:dns-server,{','.join(dns)}")
        if network.mtu:
            argv.append(f"--dhcp-option=option:mtu,{network.mtu}")
    return argv


def _sorted(ports: Iterable[PortBinding]) -> list[PortBinding]:
    return sorted(ports, key=lambda p: (ipaddress.ip_address(p.ip), p.mac))


def render_dhcp_hosts(ports: Iterable[PortBinding]) -> str:
    """dnsmasq's --dhcp-hostsfile: `mac,address[,name]` per Port (IPv6 addresses in brackets);
    sorted, so the same Ports always render the same bytes."""
    lines = []
    for port in _sorted(ports):
        address = ipaddress.ip_address(port.ip)
        entry = [port.mac.lower(), str(address) if address.version == 4 else f"[{address}]"]
        label = dns_label(port.hostname) if port.hostname else None
        if label:
            entry.append(label)
        lines.append(",".join(entry))
    return "".join(f"{line}\n" for line in lines)


def parse_dhcp_hosts(text: str) -> list[PortBinding]:
    """The Ports a --dhcp-hostsfile serves (as render_dhcp_hosts wrote it; uid and name are not
    in it): what a caller adding one Port must keep of the others."""
    ports = []
    for line in text.splitlines():
        parts = line.strip().split(",")
        if len(parts) < 2:
            continue
        ip = parts[1].strip("[]")
        ports.append(PortBinding("", parts[0].lower(), ip, parts[2] if len(parts) > 2 else None))
    return ports


def render_addn_hosts(ports: Iterable[PortBinding]) -> str:
    """dnsmasq's --addn-hosts: `address name` per named Port (--expand-hosts adds the domain)."""
    lines = []
    for port in _sorted(ports):
        label = dns_label(port.hostname) if port.hostname else None
        if label:
            lines.append(f"{port.ip} {label}")
    return "".join(f"{line}\n" for line in lines)


def render_network_json(network: NetworkConfig) -> str:
    return json.dumps({"uid": network.uid, "name": network.name, "cidr": network.cidr}) + "\n"


@dataclass(frozen=True)
class Lease:
    """One line of dnsmasq's lease file: `expiry mac address name client-id`."""

    expires: int
    mac: str
    ip: str
    hostname: str | None
    client_id: str | None = field(default=None, compare=False)


def parse_leases(text: str) -> list[Lease]:
    """The leases dnsmasq has handed out (it rewrites the file after every DHCP exchange)."""
    leases = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 4 or not parts[0].isdigit() or parts[0] == "duid":
            continue
        name = None if parts[3] == "*" else parts[3]
        client = parts[4] if len(parts) > 4 and parts[4] != "*" else None
        leases.append(Lease(int(parts[0]), parts[1].lower(), parts[2], name, client))
    return leases
