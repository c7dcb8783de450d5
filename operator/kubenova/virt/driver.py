"""The hypervisor driver interface, after nova/virt/driver.py.

Contracts (each implementation must keep them):
- spawn() returns only once the *guest* has announced that it booted, not when the hypervisor
  process started. If it fails or is cancelled it cleans up after itself: no process, disk or
  seed file is left, and the error says why.
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
from pathlib import Path

from kubenova.models.v1alpha1.states import PowerState


class DriverError(Exception):
    """A hypervisor operation failed; the message is shown in the instance fault."""


class InstanceNotFound(DriverError):
    pass


class SpawnFailed(DriverError):
    """The guest did not boot. The build may be retried on another host (reschedule)."""


@dataclass(frozen=True)
class NetworkInterface:
    mac: str
    ip: str | None = None
    network: str | None = None


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
class InstanceInfo:
    instance_id: str
    power_state: PowerState
    pid: int | None = None
    booted: bool = False
    details: dict[str, str] = field(default_factory=dict)


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

    @abc.abstractmethod
    async def spawn(self, request: SpawnRequest, boot_timeout: float) -> InstanceInfo:
        """Create the VM and wait for the guest's boot announcement (see module contracts)."""

    @abc.abstractmethod
    async def destroy(self, instance_id: str) -> None:
        """Stop the VM if running and delete its disk, seed and logs. Succeeds if absent."""

    @abc.abstractmethod
    async def power_off(self, instance_id: str, grace: float = 0) -> None:
        """Stop the guest: ACPI first for `grace` seconds when > 0, then hard. Files stay."""

    @abc.abstractmethod
    async def power_on(self, instance_id: str, boot_timeout: float) -> InstanceInfo:
        """Start a stopped VM from its existing disk and wait for the boot announcement."""

    @abc.abstractmethod
    async def reboot(self, instance_id: str, hard: bool, boot_timeout: float) -> InstanceInfo:
        """Soft (ACPI, guest cooperates) or hard (reset) reboot; waits for the next boot."""

    @abc.abstractmethod
    async def get_info(self, instance_id: str) -> InstanceInfo:
        """Current power state; raises InstanceNotFound when the host has no such VM."""

    @abc.abstractmethod
    async def console_output(self, instance_id: str) -> str:
        """The serial console log so far."""

    @abc.abstractmethod
    async def list_instances(self) -> list[str]:
        """Ids of the VMs this host has (running or stopped), for adoption and audits."""
