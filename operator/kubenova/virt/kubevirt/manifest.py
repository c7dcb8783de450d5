"""The VirtualMachineInstance (kubevirt.io/v1) of one instance on one host, and what its phase
means: pure functions. Field names follow KubeVirt's API types (staging/src/kubevirt.io/api/
core/v1/schema.go and types.go in kubevirt/kubevirt).

- pinned with `spec.nodeSelector: {kubernetes.io/hostname: <host>}`: KubeVirt's virt-launcher
  pod still goes through kube-scheduler, which can only put it on the host kubenova chose;
- `spec.domain.cpu.cores` = vcpus, `spec.domain.resources.requests.memory` = the flavor's RAM;
- the root disk is a `containerDisk` (ephemeral, like the pod driver's emptyDir): the container
  image named by the Image property `kubevirt_container_disk`, else the driver's template
  (`--kubevirt-container-disk`, with `{checksum}` for the Image's sha256). A containerDisk is
  not grown to the flavor's disk size;
- `cloudInitNoCloud` with `userData` and `networkData` from the same GuestMetadata the process
  driver's seed uses (metadata.nocloud.seed_files). KubeVirt writes the seed's meta-data itself:
  `instance-id` is `spec.domain.firmware.uuid` (set to the instance uid, so the guest's boot
  announcement names the instance as with the other drivers) and `local-hostname` is
  `spec.hostname`. Public keys go into the user data's `ssh_authorized_keys` when it is
  cloud-config (KubeVirt takes meta-data keys only from a Secret);
- interfaces carry the ports' MACs: the first on the pod network (masquerade), further ones on
  Multus networks named after the kubenova Network (a NetworkAttachmentDefinition of that name).

Phases (types.go VirtualMachineInstancePhase; the component owning each in brackets):
"" and Pending [virt-controller], Scheduling, Scheduled [virt-controller → virt-handler],
WaitingForSync, Unknown → NOSTATE, still building; Running [virt-handler] → RUNNING, booted once
the conditions Ready and AgentConnected are True where present (PAUSED when Paused is True);
Succeeded → SHUTDOWN and Failed → CRASHED, both final.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import yaml

from kubenova.metadata.nocloud import EMPTY_USER_DATA, seed_files
from kubenova.models.v1alpha1.states import PowerState
from kubenova.virt.cluster import (
    ObjectView,
    vm_object_metadata,
)
from kubenova.virt.driver import DriverError, SpawnRequest

API_GROUP = "kubevirt.io"
API_VERSION = "v1"
PLURAL = "virtualmachineinstances"
KIND = "VirtualMachineInstance"
HOSTNAME_LABEL = "kubernetes.io/hostname"
CONTAINER_DISK_PROPERTY = "kubevirt_container_disk"
ROOT_DISK = "rootdisk"
CLOUD_INIT_DISK = "cloudinitdisk"

_NOT_HOSTNAME = re.compile(r"[^a-z0-9-]+")


@dataclass(frozen=True)
class KubeVirtOptions:
    namespace: str | None = None
    """None: the Instance's own namespace (the VMI is then owned by the Instance)."""
    container_disk: str | None = None
    """Template of the containerDisk image for Images without the property, e.g.
    `registry.example/kubenova/images:{checksum}`."""
    image_pull_policy: str = "IfNotPresent"
    termination_grace_seconds: int = 30
    poll_interval: float = 0.5


def container_disk_image(request: SpawnRequest, options: KubeVirtOptions) -> str:
    image = (request.image_properties or {}).get(CONTAINER_DISK_PROPERTY)
    if image:
        return image
    if options.container_disk:
        return options.container_disk.format(
            checksum=request.image_checksum.removeprefix("sha256:"), format=request.image_format
        )
    raise DriverError(
        f"the image of {request.name} has no {CONTAINER_DISK_PROPERTY} property and the "
        "operator has no --kubevirt-container-disk template: KubeVirt needs a containerDisk"
    )


def guest_hostname(hostname: str) -> str:
    """spec.hostname must be a DNS label."""
    return _NOT_HOSTNAME.sub("-", hostname.lower()).strip("-")[:63].rstrip("-") or "vm"


def user_data_with_keys(user_data: str, keys: tuple[str, ...]) -> str:
    """Add the public keys to cloud-config user data (`ssh_authorized_keys`); other kinds of
    user data (a script, MIME multipart) cannot carry them and are returned unchanged."""
    if not keys or not user_data.startswith("#cloud-config"):
        return user_data
    try:
        config = yaml.safe_load(user_data) or {}
    except yaml.YAMLError:
        return user_data
    if not isinstance(config, dict):
        return user_data
    known = list(config.get("ssh_authorized_keys") or [])
    config["ssh_authorized_keys"] = known + [k for k in keys if k not in known]
    return "#cloud-config\n" + yaml.safe_dump(config, default_flow_style=False, sort_keys=False)


def cloud_init(request: SpawnRequest) -> dict[str, str]:
    files = seed_files(request.metadata)
    user_data = files.get("user-data") or EMPTY_USER_DATA
    source = {"userData": user_data_with_keys(user_data, tuple(request.metadata.public_keys))}
    if "network-config" in files:
        source["networkData"] = files["network-config"]
    return source


def networking(request: SpawnRequest) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(domain.devices.interfaces, spec.networks) for the request's ports."""
    interfaces, networks = [], []
    for index, nic in enumerate(request.interfaces):
        name = "default" if index == 0 else f"net{index}"
        if index == 0:
            interfaces.append({"name": name, "masquerade": {}, "macAddress": nic.mac})
            networks.append({"name": name, "pod": {}})
        else:
            if not nic.network:
                raise DriverError(f"port {nic.mac} has no network to attach it to")
            interfaces.append({"name": name, "bridge": {}, "macAddress": nic.mac})
            networks.append({"name": name, "multus": {"networkName": nic.network}})
    return interfaces, networks


def vmi_manifest(request: SpawnRequest, host: str, options: KubeVirtOptions) -> dict[str, Any]:
    if request.volumes:
        raise DriverError("the KubeVirt driver cannot attach the operator's volume files yet")
    metadata = vm_object_metadata(request, host, options.namespace)
    interfaces, networks = networking(request)
    devices: dict[str, Any] = {
        "disks": [
            {"name": ROOT_DISK, "disk": {"bus": "virtio"}, "bootOrder": 1},
            {"name": CLOUD_INIT_DISK, "disk": {"bus": "virtio"}},
        ],
    }
    spec: dict[str, Any] = {
        "nodeSelector": {HOSTNAME_LABEL: host},
        "hostname": guest_hostname(request.metadata.hostname),
        "terminationGracePeriodSeconds": options.termination_grace_seconds,
        "domain": {
            "cpu": {"cores": request.vcpus},
            "resources": {"requests": {"memory": f"{request.ram_mib}Mi"}},
            "firmware": {"uuid": request.instance_id},
            "devices": devices,
        },
        "volumes": [
            {
                "name": ROOT_DISK,
                "containerDisk": {
                    "image": container_disk_image(request, options),
                    "imagePullPolicy": options.image_pull_policy,
                },
            },
            {"name": CLOUD_INIT_DISK, "cloudInitNoCloud": cloud_init(request)},
        ],
    }
    if interfaces:
        devices["interfaces"] = interfaces
        spec["networks"] = networks
    return {
        "apiVersion": f"{API_GROUP}/{API_VERSION}",
        "kind": KIND,
        "metadata": metadata,
        "spec": spec,
    }


def _condition(status: dict[str, Any], kind: str) -> bool | None:
    """True/False for the condition `kind`, None when the VMI does not report it."""
    for condition in status.get("conditions") or []:
        if condition.get("type") == kind:
            return condition.get("status") == "True"
    return None


def view_vmi(vmi: dict[str, Any]) -> ObjectView:
    """VMI phase and conditions → power state (see the module docstring)."""
    status = vmi.get("status") or {}
    phase = status.get("phase") or "Pending"
    notes = [status.get("reason")] + [
        f"{c.get('type')}={c.get('status')}"
        + (f" ({c.get('reason') or ''}: {c.get('message')})" if c.get("message") else "")
        for c in status.get("conditions") or []
        if c.get("status") != "True"
    ]
    detail = "; ".join(n for n in notes if n)
    reason = f"VMI phase {phase}" + (f": {detail}" if detail else "")
    if (vmi.get("metadata") or {}).get("deletionTimestamp"):
        return ObjectView(PowerState.SHUTDOWN, False, True, f"the VMI is being deleted ({reason})")
    if phase == "Running":
        if _condition(status, "Paused"):
            return ObjectView(PowerState.PAUSED, False, False, reason)
        booted = _condition(status, "Ready") is not False
        booted = booted and _condition(status, "AgentConnected") is not False
        return ObjectView(PowerState.RUNNING, booted, False, reason)
    if phase == "Succeeded":
        return ObjectView(PowerState.SHUTDOWN, False, True, f"{reason} (the guest stopped)")
    if phase == "Failed":
        return ObjectView(PowerState.CRASHED, False, True, reason)
    return ObjectView(PowerState.NOSTATE, False, False, reason)
