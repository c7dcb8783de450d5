"""Names of what the datapath creates: pure functions, so the audit recognises its own objects
from their names alone.

A namespace is `kubenova-<scope>-<network hash>`: the scope is a hash of the operator's state
directory, so two operators on one machine (or two test runs) never list or remove each other's
namespaces, and a restarted operator (same state directory) finds its own again. Interface
names live inside the namespace and are at most 15 bytes (IFNAMSIZ - 1), as neutron's
linuxbridge agent names them: `brq<11 hex>` for a Network's bridge, `tap<11 hex>` for a Port.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

NETNS_PREFIX = "kubenova-"
NETNS_DIR = Path("/run/netns")
"""Where `ip netns` keeps named namespaces (bind mounts of /proc/<pid>/ns/net)."""
RUN_DIR = Path("/run/kubenova")
"""Where an operator's datapath keeps dnsmasq's files, one directory per scope: on tmpfs, as
the namespaces are, so both go with a reboot; and searchable by dnsmasq's unprivileged user
wherever the operator's own state directory is."""
SCOPE_LEN = 8
NETWORK_HASH_LEN = 12
IFNAME_HASH_LEN = 11
_NETNS = re.compile(
    rf"{NETNS_PREFIX}(?P<scope>[0-9a-f]{{{SCOPE_LEN}}})-(?P<network>[0-9a-f]{{{NETWORK_HASH_LEN}}})"
)
_LABEL_BAD = re.compile(r"[^a-z0-9-]+")


def _hex(text: str, length: int) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def scope_of(state_dir: Path) -> str:
    """The scope of the operator whose datapath state lives in `state_dir`."""
    return _hex(str(Path(state_dir).absolute()), SCOPE_LEN)


def network_hash(network_uid: str) -> str:
    return _hex(network_uid, NETWORK_HASH_LEN)


def netns_name(scope: str, network_uid: str) -> str:
    """The namespace of one Network (its uid: a Network re-created under the same name is a
    new namespace, never the old one's leftovers)."""
    return f"{NETNS_PREFIX}{scope}-{network_hash(network_uid)}"


@dataclass(frozen=True)
class NetnsName:
    scope: str
    network_hash: str


def parse_netns(name: str) -> NetnsName | None:
    """The parts of a kubenova namespace name, None for any other namespace."""
    match = _NETNS.fullmatch(name)
    return NetnsName(match["scope"], match["network"]) if match else None


def bridge_name(network_uid: str) -> str:
    return f"brq{_hex(network_uid, IFNAME_HASH_LEN)}"


def tap_name(port_uid: str) -> str:
    """One tap per Port, unique within its Network's namespace whichever host plugs it."""
    return f"tap{_hex(port_uid, IFNAME_HASH_LEN)}"


def is_bridge_name(name: str) -> bool:
    return len(name) == 3 + IFNAME_HASH_LEN and name.startswith("brq")


def is_tap_name(name: str) -> bool:
    return len(name) == 3 + IFNAME_HASH_LEN and name.startswith("tap")


def tap_mac(guest_mac: str) -> str:
    """The host end's MAC: the guest's with the first octet 0xfe, as libvirt does, so the tap
    never answers for the guest and is never the lowest address on the bridge."""
    return "fe" + guest_mac.lower()[2:]


def bridge_mac(network_uid: str) -> str:
    """A fixed, locally administered MAC for the bridge (a Linux bridge otherwise takes the
    lowest of its ports' MACs, and changes it as taps come and go)."""
    octets = bytes.fromhex(_hex(f"bridge:{network_uid}", 10))
    return ":".join(f"{b:02x}" for b in (0x02, *octets))


def dns_label(hostname: str) -> str | None:
    """`hostname` as one DNS label (Nova's sanitize_hostname in spirit): lowercase, runs of
    anything but letters, digits and '-' become '-', at most 63 characters. None if nothing is
    left (the Port is then served an address without a name)."""
    label = _LABEL_BAD.sub("-", hostname.lower().split(".")[0])[:63].strip("-")
    return label or None
