"""dnsmasq's DHCP log (--log-dhcp) read as events: a guest's DHCP request for its Port's MAC
is a sign that its OS is up, which any image that uses DHCP gives (no kubenova-only line).

The lines read, after the syslog-style prefix and the transaction id:
`DHCPDISCOVER(<bridge>) <mac>`, `DHCPOFFER(<bridge>) <address> <mac>`,
`DHCPREQUEST(<bridge>) <address> <mac>`, `DHCPACK(<bridge>) <address> <mac> [<name>]`;
anything else (options, unknown clients' "no address available") adds no address or is skipped.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

_EVENT = re.compile(r"\b(DHCP[A-Z]+)\(([^)]*)\)((?: \S+)*)")
_MAC = re.compile(r"[0-9a-fA-F]{2}(?::[0-9a-fA-F]{2}){5}")


@dataclass(frozen=True)
class DhcpEvent:
    kind: str  # DHCPDISCOVER, DHCPOFFER, DHCPREQUEST, DHCPACK, DHCPNAK, DHCPRELEASE, ...
    interface: str
    mac: str
    ip: str | None


def _address(token: str) -> str | None:
    try:
        return str(ipaddress.ip_address(token))
    except ValueError:
        return None


def parse_dhcp_log(text: str) -> list[DhcpEvent]:
    events = []
    for line in text.splitlines():
        match = _EVENT.search(line)
        if not match:
            continue
        tokens = match[3].split()
        mac = next((t.lower() for t in tokens if _MAC.fullmatch(t)), None)
        if mac is None:
            continue
        ip = next((a for t in tokens if not _MAC.fullmatch(t) and (a := _address(t))), None)
        events.append(DhcpEvent(match[1], match[2], mac, ip))
    return events
