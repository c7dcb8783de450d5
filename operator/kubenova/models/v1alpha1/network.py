"""Network and Port: neutron's tenant network and the port that plugs an instance into it."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from kubenova.models.base import (
    AGE,
    CRDInfo,
    IPAddress,
    KubeModel,
    ObjectName,
    PrinterColumn,
    Resource,
    cel,
    immutable,
    validations,
)


class NetworkSpec(KubeModel):
    """A subnet to allocate instance addresses from. The CIDR cannot change under live ports."""

    model_config = validations(
        cel(
            "!has(self.gateway) || cidr(self.cidr).containsIP(self.gateway)",
            "gateway must lie inside cidr",
            fieldPath=".gateway",
        ),
        cel("self.cidr == oldSelf.cidr", "cidr is immutable", fieldPath=".cidr"),
    )

    cidr: str = Field(
        max_length=49,
        json_schema_extra={
            "x-kubernetes-validations": [
                cel("isCIDR(self)", "cidr must be a CIDR such as 10.0.0.0/24"),
            ]
        },
    )
    gateway: IPAddress | None = None
    dns_servers: list[IPAddress] = Field(default_factory=list, max_length=3)
    mtu: int | None = Field(default=None, ge=68, le=9000)


class NetworkStatus(KubeModel):
    used_ips: int | None = Field(default=None, alias="usedIPs", ge=0)
    """Addresses held by ports."""
    available_ips: int | None = Field(default=None, alias="availableIPs", ge=0)
    """Addresses left for new ports (network, broadcast, gateway and DNS excluded)."""


class Network(Resource):
    crd = CRDInfo(
        plural="networks",
        scope="Namespaced",
        short_names=("net",),
        columns=(
            PrinterColumn("CIDR", ".spec.cidr"),
            PrinterColumn("Gateway", ".spec.gateway"),
            PrinterColumn("Used", ".status.usedIPs", "integer"),
            PrinterColumn("Available", ".status.availableIPs", "integer"),
            AGE,
        ),
    )
    spec: NetworkSpec
    status: NetworkStatus | None = None


class PortSpec(KubeModel):
    """One NIC's address. Created by the operator, named after network and IP so that the
    apiserver refuses a second claim on the same address."""

    model_config = validations(immutable("a Port's spec"))

    network: ObjectName
    ip_address: IPAddress
    mac_address: str = Field(pattern=r"^([0-9a-f]{2}:){5}[0-9a-f]{2}$")
    """Lowercase, colon-separated."""
    device_id: str | None = Field(default=None, max_length=253)
    """The Instance this port belongs to, by name."""


class PortBinding(KubeModel):
    """Where the Port is plugged (neutron's binding:host_id and VIF details)."""

    host: str | None = None
    bridge: str | None = None
    """The Network's bridge, inside `netns` (embedded QEMU hosts)."""
    tap: str | None = None
    netns: str | None = None
    """The Network's namespace: `nsenter --net=/run/netns/<netns>` reaches the guest."""


class PortStatus(KubeModel):
    phase: Literal["DOWN", "BUILD", "ACTIVE", "ERROR"] | None = None
    """ACTIVE once the VM holds its tap (Nova's network-vif-plugged); BUILD until then."""
    host: str | None = None
    binding: PortBinding | None = None


class Port(Resource):
    crd = CRDInfo(
        plural="ports",
        scope="Namespaced",
        short_names=("pt",),
        columns=(
            PrinterColumn("Network", ".spec.network"),
            PrinterColumn("IP", ".spec.ipAddress"),
            PrinterColumn("MAC", ".spec.macAddress"),
            PrinterColumn("Device", ".spec.deviceId"),
            PrinterColumn("Status", ".status.phase"),
            PrinterColumn("Host", ".status.binding.host", priority=1),
            PrinterColumn("Tap", ".status.binding.tap", priority=1),
            AGE,
        ),
    )
    spec: PortSpec
    status: PortStatus | None = None
