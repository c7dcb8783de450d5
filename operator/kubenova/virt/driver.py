"""The hypervisor driver interface, after nova/virt/driver.py.

Contracts (each implementation must keep them):
- spawn(), power_on() and reboot() return once the hypervisor reports the VM *running* (Nova's
  libvirt driver waits for the domain to run; KubeVirt's VMI is Running then): that is ACTIVE.
  Whether the guest OS came up is a separate question, answered by wait_for_guest() (the
  instance's `Ready` condition). If spawn fails or is cancelled it cleans up after itself: no
  process, disk, seed file or tap is left, and the error says why.
- wait_for_guest() waits for the first generic sign that the guest OS of the VM's *current*
  boot is up (GuestSignal); each start records where that boot begins (console offset, DHCP log
  offset) on the host, so an operator restarted meanwhile waits for the same boot.
- spawn() is idempotent per instance id: if a VM for the id is already running it is adopted
  (waited for) rather than started twice. This is what makes an operator restart safe.
- destroy() succeeds when the instance is already gone, and removes every file of it.
- Drivers never write an Instance: they return results; the conductor writes its status. A
  driver whose VM is itself a Kubernetes object (the pod and KubeVirt drivers: a Pod, a
  VirtualMachineInstance) creates, reads and deletes that object, and nothing else.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from kubenova.models.v1alpha1.states import GuestSignal, PowerState


class DriverError(Exception):
    """A hypervisor operation failed; the message is shown in the instance fault."""


class InstanceNotFound(DriverError):
    pass


class SpawnFailed(DriverError):
    """The VM did not start. The build may be retried on another host (reschedule)."""


class GuestBootTimeout(DriverError):
    """No sign that the guest OS is up came in time; the VM keeps running (Nova keeps it
    ACTIVE), only the instance's Ready condition says so."""


#: Image property: a regular expression; a serial console line matching it means "booted", for
#: images with none of the other signals.
GUEST_BOOTED_REGEX_PROPERTY = "kubenova_guest_booted_regex"
#: Image property, as Nova's: "yes" adds the qemu-guest-agent channel and waits for its answer.
QEMU_GUEST_AGENT_PROPERTY = "hw_qemu_guest_agent"


@dataclass(frozen=True)
class GuestBoot:
    """The sign that came: which one, what exactly was seen, and when."""

    signal: GuestSignal
    detail: str
    at: datetime


@dataclass(frozen=True)
class NetworkInterface:
    """One NIC: the Port's MAC and address, and (for the embedded datapath) which Network and
    Port it is, so the driver can plug a tap for it."""

    mac: str
    ip: str | None = None
    network: str | None = None  # the Network's name
    network_uid: str | None = None
    port: str | None = None  # the Port's name
    port_uid: str | None = None
    cidr: str | None = None
    gateway: str | None = None
    dns_servers: tuple[str, ...] = ()
    mtu: int | None = None


@dataclass(frozen=True)
class GuestMetadata:
    """What the guest learns through the NoCloud seed (the metadata service's role)."""

    instance_id: str
    hostname: str
    user_data: str | None = None
    public_keys: tuple[str, ...] = ()
    network_config: str | None = None


@dataclass(frozen=True)
class SpawnRequest:
    """Everything a driver needs to boot one instance on this host."""

    instance_id: str  # the Instance's metadata.uid: stable across operator restarts
    name: str  # namespace/name, for logs and process titles
    vcpus: int
    ram_mib: int
    disk_gib: int  # root disk size; 0 = the image's virtual size
    image_path: Path | None  # the verified base image in the operator's cache (local drivers)
    image_format: str  # qcow2 | raw
    metadata: GuestMetadata
    interfaces: tuple[NetworkInterface, ...] = ()
    volumes: tuple[Path, ...] = ()
    image_source: str = ""  # where the image comes from (http(s)/file URL): remote drivers
    image_checksum: str = ""  # sha256:<hex>, verified wherever the image is fetched
    image_properties: Mapping[str, str] = field(default_factory=dict)
    """the Image's properties (e.g. KubeVirt's containerDisk reference)"""


@dataclass(frozen=True)
class Vif:
    """Where one Port is plugged (Nova's VIF): the conductor writes it to the Port's status,
    and the Port is ACTIVE once `up` (Nova's network-vif-plugged)."""

    port: str  # the Port's name
    host: str
    bridge: str
    tap: str
    up: bool
    netns: str | None = None


@dataclass(frozen=True)
class InstanceInfo:
    instance_id: str
    power_state: PowerState
    pid: int | None = None
    booted: bool = False
    details: dict[str, str] = field(default_factory=dict)
    vifs: tuple[Vif, ...] = ()
    """the plugged NICs, from drivers with a datapath of their own (the embedded QEMU hosts)"""
    guest: GuestBoot | None = None
    """from spawn(): the guest OS is known up already when the VM starts (Nova's FakeDriver,
    whose guests have no boot to wait for); the move to ACTIVE then sets Ready at once,
    instead of a wait_for_guest() and a write of its own"""


class ComputeDriver(abc.ABC):
    """One hypervisor on one host."""

    #: name used in configuration (`--driver`)
    name: str
    #: True: the VM runs on this machine and boots from the operator's verified image cache
    #: (SpawnRequest.image_path). False: the hypervisor fetches image_source itself (a pod, a
    #: VMI on another node), so the conductor does not download the image first.
    uses_local_image_cache: bool = True
    #: None when power_off/power_on/reboot work; else why not (the conductor refuses stop,
    #: start and reboot with it before changing any state)
    power_operations_unsupported: str | None = None
    #: True: the host serves DHCP for the instance's Ports (the embedded datapath's dnsmasq),
    #: so the guest's network-config asks for DHCP, as Nova's network_data.json says
    #: ipv4_dhcp for a subnet with a DHCP server; False: static addresses in the seed.
    serves_dhcp: bool = False

    @abc.abstractmethod
    async def spawn(self, request: SpawnRequest, start_timeout: float) -> InstanceInfo:
        """Create (or adopt) the VM and return once it runs (see module contracts)."""

    @abc.abstractmethod
    async def wait_for_guest(self, instance_id: str, boot_timeout: float) -> GuestBoot:
        """The first sign that the guest OS of the current boot is up. GuestBootTimeout after
        `boot_timeout` seconds; DriverError if the VM stops or vanishes meanwhile."""

    @abc.abstractmethod
    async def destroy(self, instance_id: str) -> None:
        """Stop the VM if running and delete its disk, seed and logs. Succeeds if absent."""

    @abc.abstractmethod
    async def power_off(self, instance_id: str, grace: float = 0) -> None:
        """Stop the guest: ACPI first for `grace` seconds when > 0, then hard. Files stay."""

    @abc.abstractmethod
    async def power_on(self, instance_id: str, start_timeout: float) -> InstanceInfo:
        """Start a stopped VM from its existing disk; returns once it runs (a new boot)."""

    @abc.abstractmethod
    async def reboot(self, instance_id: str, hard: bool, start_timeout: float) -> InstanceInfo:
        """Soft (ACPI, guest cooperates) or hard (reset) reboot; returns once the VM runs
        again (a new boot for wait_for_guest)."""

    @abc.abstractmethod
    async def get_info(self, instance_id: str) -> InstanceInfo:
        """Current power state; raises InstanceNotFound when the host has no such VM."""

    @abc.abstractmethod
    async def console_output(self, instance_id: str) -> str:
        """The serial console log so far."""

    @abc.abstractmethod
    async def list_instances(self) -> list[str]:
        """Ids of the VMs this host has (running or stopped), for adoption and audits."""
