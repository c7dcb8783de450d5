"""The embedded datapath: neutron's linuxbridge and DHCP agents for QEMU on this machine.

Entry points: `Datapath` (networks, ports, inventory and cleanup), `probe` (may this process
build it at all), `NetworkConfig` / `PortBinding` (what it is told), `TapPlug` (what qemu needs).
"""

from kubenova.network.datapath.config import DatapathError, Lease, NetworkConfig, PortBinding
from kubenova.network.datapath.datapath import (
    Datapath,
    Inventory,
    NamespaceInventory,
    NetworkPlace,
    TapInfo,
    TapPlug,
)
from kubenova.network.datapath.dhcplog import DhcpEvent
from kubenova.network.datapath.preflight import DatapathUnavailable, Probe, probe

__all__ = [
    "Datapath",
    "DatapathError",
    "DatapathUnavailable",
    "DhcpEvent",
    "Inventory",
    "Lease",
    "NamespaceInventory",
    "NetworkConfig",
    "NetworkPlace",
    "PortBinding",
    "Probe",
    "TapInfo",
    "TapPlug",
    "probe",
]
