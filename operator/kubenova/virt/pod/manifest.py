"""The QEMU pod of one instance on one host, its disk's PersistentVolumeClaim, and what the pod's
phase means: pure functions, so their shape is unit-tested without an apiserver and decided in
one place.

The pod:
- `nodeName` is the scheduled host: kubenova's scheduler already chose and claimed it, so no
  kube-scheduler is involved (the kubelet still admits the pod against the Node's allocatable);
- one container runs `kubenova launch` (virt/qemu/launcher.py), the process driver's own code
  with qemu in the foreground; the spec travels as JSON in $KUBENOVA_LAUNCH_SPEC. On SIGTERM
  (the pod deleted) the launcher gives the guest an ACPI power-off for the pod's grace period
  less QEMU_STOP_SECONDS, then stops qemu itself within the grace;
- requests and limits from the flavor: cpu limit = vcpus, cpu request = vcpus / the
  scheduler's cpu allocation ratio (the overcommit the scheduler allowed, as KubeVirt's
  cpuAllocationRatio does); memory = RAM (request divided by the ram ratio) + QEMU's overhead;
- the disk (image cache, overlay, seed, console log) at the launcher's workdir: by default the
  instance's PersistentVolumeClaim (PodOptions.disk "pvc", below), so it outlives the pod and
  stop, start and reboot re-create the pod on it; with "emptyDir" an emptyDir that goes with
  the pod, sized by ephemeral storage = the flavor's disk (request), twice that (limit: the
  cached base image and the overlay);
- an emptyDir for /tmp, which also holds the ready file: per pod, so a ready file left by a
  killed launcher never makes the next pod on the same disk look booted;
- readiness = the ready file the launcher writes once the guest announced this boot;
- `/dev/kvm` only on Nodes labelled `compute.kubenova.io/kvm=true`, through a device plugin's
  extended resource (default `devices.kubevirt.io/kvm`, advertised by KubeVirt's virt-handler
  or any generic device plugin): no hostPath and no privilege, so the pod stays within
  PodSecurity "baseline" (and "restricted": non-root, no capabilities, RuntimeDefault seccomp,
  read-only root filesystem; a persistentVolumeClaim volume is allowed by both). Elsewhere
  QEMU runs TCG (KUBENOVA_ACCEL=tcg).

The claim (claim_manifest), named and labelled as the pod and owned by the Instance the same
way (virt/cluster.py vm_object_metadata):
- ReadWriteOnce, Filesystem, sized root disk + base image cache (claim_size_gib), the
  StorageClass PodOptions.storage_class_name (None: the cluster's default class);
- `volume.kubernetes.io/selected-node: <host>`. The kube-scheduler sets that annotation when
  it places a pod whose claim's StorageClass is WaitForFirstConsumer; the PV controller (and
  the external provisioners' library) provision such a claim only once it is there, for that
  node (pv_controller.go syncUnboundClaim: IsDelayBindingProvisioning; provisionClaimOperation
  passes the node to the provisioner). The QEMU pod has nodeName set, so no scheduler ever sees
  it: whoever creates the claim must set the annotation, and the driver does. For an Immediate
  class it is harmless and tells a topology-aware provisioner where the volume is needed;
- `compute.kubenova.io/launch-spec`: the launch spec the pod was made from, so a start after a
  stop re-creates the same pod (the driver's power_on gets only the instance's id).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from kubenova.models.v1alpha1.states import PowerState
from kubenova.virt.cluster import (
    ObjectView,
    vm_object_metadata,
)
from kubenova.virt.driver import DriverError, SpawnRequest
from kubenova.virt.qemu.accel import ENV_OVERRIDE
from kubenova.virt.qemu.launcher import SPEC_ENV, LaunchSpec

KVM_LABEL = "compute.kubenova.io/kvm"
CONTAINER = "qemu"
WORKDIR = "/var/lib/kubenova"
TMPDIR = "/tmp"
READY_FILE = f"{TMPDIR}/ready"
DISK_VOLUME = "disk"
DISK_PVC, DISK_EMPTY_DIR = "pvc", "emptyDir"
#: The kube-scheduler's annotation on a WaitForFirstConsumer claim (storagehelpers.AnnSelectedNode)
SELECTED_NODE_ANNOTATION = "volume.kubernetes.io/selected-node"
#: On the claim: the LaunchSpec JSON the pod is made from (power_on re-creates it)
LAUNCH_SPEC_ANNOTATION = "compute.kubenova.io/launch-spec"
#: Of the pod's grace period, the seconds the launcher keeps for stopping qemu after the guest's
#: ACPI power-off window (it waits 10 s for qemu to exit on SIGTERM before killing it).
QEMU_STOP_SECONDS = 10


@dataclass(frozen=True)
class PodOptions:
    image: str = "kubenova-launcher:dev"
    image_pull_policy: str = "IfNotPresent"
    namespace: str | None = None
    """None: the Instance's own namespace (the pod is then owned by the Instance)."""
    kvm_label: str = KVM_LABEL
    kvm_resource: str = "devices.kubevirt.io/kvm"
    memory_overhead_mib: int = 256
    """QEMU's own memory on top of the guest's (device model, TCG translation cache)."""
    cpu_allocation_ratio: float = 4.0
    ram_allocation_ratio: float = 1.0
    run_as_user: int = 10001
    """the launcher image's kubenova user (Dockerfile, target launcher)"""
    termination_grace_seconds: int = 30
    """The pod's grace period: a stop, a soft reboot and a deletion give the guest this less
    QEMU_STOP_SECONDS to power off through ACPI (the launcher cannot learn a deletion's own
    grace period, so a stop's --shutdown-timeout does not stretch it)."""
    poll_interval: float = 0.5
    """Seconds between two looks at a pod while waiting for it."""
    disk: Literal["pvc", "emptyDir"] = DISK_PVC
    """pvc: the disk is a PersistentVolumeClaim per instance that outlives the pod (stop, start,
    reboot); emptyDir: it goes with the pod (power operations are refused)."""
    storage_class_name: str | None = None
    """The claim's StorageClass; None: the cluster's default class; "": no class (binds only a
    pre-provisioned PersistentVolume without one)."""
    image_disk_gib: int = 10
    """The root disk assumed for the claim's size when the flavor's disk is 0 (the root disk
    then takes the image's virtual size, which the driver does not know)."""

    @property
    def persistent(self) -> bool:
        return self.disk == DISK_PVC

    @property
    def acpi_seconds(self) -> int:
        """The guest's ACPI power-off window when the pod is deleted (the launcher's)."""
        return max(1, self.termination_grace_seconds - QEMU_STOP_SECONDS)


def resources(request: SpawnRequest, options: PodOptions, kvm: bool) -> dict[str, dict[str, str]]:
    cpu_request = math.ceil(request.vcpus * 1000 / options.cpu_allocation_ratio)
    ram_request = math.ceil(request.ram_mib / options.ram_allocation_ratio)
    requests = {
        "cpu": f"{cpu_request}m",
        "memory": f"{ram_request + options.memory_overhead_mib}Mi",
    }
    limits = {
        "cpu": str(request.vcpus),
        "memory": f"{request.ram_mib + options.memory_overhead_mib}Mi",
    }
    if request.disk_gib > 0 and not options.persistent:  # the disk is in the pod's emptyDir
        requests["ephemeral-storage"] = f"{request.disk_gib}Gi"
        limits["ephemeral-storage"] = f"{2 * request.disk_gib}Gi"
    if kvm:  # extended resources: request and limit must be equal
        requests[options.kvm_resource] = limits[options.kvm_resource] = "1"
    return {"requests": requests, "limits": limits}


def pod_manifest(
    request: SpawnRequest, host: str, options: PodOptions, kvm: bool = False
) -> dict[str, Any]:
    """The Pod that runs `request` on `host` (see the module docstring)."""
    metadata = vm_object_metadata(request, host, options.namespace)
    env = [{"name": SPEC_ENV, "value": LaunchSpec.from_request(request).model_dump_json()}]
    if not kvm:
        env.append({"name": ENV_OVERRIDE, "value": "tcg"})
    env.append({"name": "TMPDIR", "value": TMPDIR})
    disk_volume: dict[str, Any] = {"name": DISK_VOLUME}
    if options.persistent:  # the claim of the same name (claim_manifest)
        disk_volume["persistentVolumeClaim"] = {"claimName": metadata["name"]}
    else:
        disk_volume["emptyDir"] = {}
        if request.disk_gib > 0:
            disk_volume["emptyDir"]["sizeLimit"] = f"{2 * request.disk_gib}Gi"
    container = {
        "name": CONTAINER,
        "image": options.image,
        "imagePullPolicy": options.image_pull_policy,
        "command": [
            "kubenova",
            "launch",
            f"--workdir={WORKDIR}",
            f"--ready-file={READY_FILE}",
            f"--shutdown-grace={options.acpi_seconds}",
        ],
        "env": env,
        "resources": resources(request, options, kvm),
        "readinessProbe": {
            "exec": {"command": ["test", "-e", READY_FILE]},
            "periodSeconds": 1,
            "failureThreshold": 1,
            "successThreshold": 1,
        },
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
        },
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "volumeMounts": [
            {"name": DISK_VOLUME, "mountPath": WORKDIR},
            {"name": "tmp", "mountPath": TMPDIR},
        ],
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": {
            "nodeName": host,
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "terminationGracePeriodSeconds": options.termination_grace_seconds,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": options.run_as_user,
                "runAsGroup": options.run_as_user,
                "fsGroup": options.run_as_user,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [container],
            "volumes": [
                disk_volume,
                {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}},
            ],
        },
    }


def pod_disk_is_persistent(pod: dict[str, Any]) -> bool:
    """Whether the pod's disk is a claim (an emptyDir pod, made with PodOptions.disk emptyDir,
    takes its disk with it)."""
    volumes = (pod.get("spec") or {}).get("volumes") or []
    return any(v.get("name") == DISK_VOLUME and "persistentVolumeClaim" in v for v in volumes)


# -- the disk's claim ----------------------------------------------------------------------------
def claim_size_gib(request: SpawnRequest, options: PodOptions) -> int:
    """The root disk (the overlay grows up to it) plus the cached base image, which is at most
    its virtual size and so fits in the same again (a flavor's disk is at least the image's
    minDiskGiB; a flavor without one takes the image's size, assumed PodOptions.image_disk_gib)."""
    return 2 * (request.disk_gib or options.image_disk_gib)


def claim_manifest(request: SpawnRequest, host: str, options: PodOptions) -> dict[str, Any]:
    """The PersistentVolumeClaim of `request`'s disk on `host` (see the module docstring)."""
    metadata = vm_object_metadata(request, host, options.namespace)
    metadata["annotations"][SELECTED_NODE_ANNOTATION] = host
    metadata["annotations"][LAUNCH_SPEC_ANNOTATION] = LaunchSpec.from_request(
        request
    ).model_dump_json()
    spec: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "volumeMode": "Filesystem",
        "resources": {"requests": {"storage": f"{claim_size_gib(request, options)}Gi"}},
    }
    if options.storage_class_name is not None:
        spec["storageClassName"] = options.storage_class_name
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": metadata,
        "spec": spec,
    }


def claim_request(claim: dict[str, Any]) -> SpawnRequest:
    """The request the claim's pod was made from (its launch-spec annotation), to make it
    again; DriverError when the claim has none."""
    meta = claim.get("metadata") or {}
    text = (meta.get("annotations") or {}).get(LAUNCH_SPEC_ANNOTATION)
    where = f"PVC {meta.get('namespace')}/{meta.get('name')}"
    if not text:
        raise DriverError(f"{where} has no {LAUNCH_SPEC_ANNOTATION} annotation to start from")
    try:
        return LaunchSpec.model_validate_json(text).to_request()
    except ValueError as err:
        raise DriverError(f"{where}: invalid {LAUNCH_SPEC_ANNOTATION}: {err}") from None


# -- what a pod's status means -----------------------------------------------------------------
def _is_ready(status: dict[str, Any]) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )


def _termination(status: dict[str, Any]) -> str:
    """Why the pod's container ended: reason, exit code and message, if it did."""
    notes = []
    for container in status.get("containerStatuses") or []:
        term = (container.get("state") or {}).get("terminated")
        if term:
            text = f"container {container.get('name')} {term.get('reason') or 'terminated'}"
            text += f" (exit {term.get('exitCode')})"
            if term.get("message"):
                text += f": {term['message'].strip()[-2000:]}"
            notes.append(text)
    return "; ".join(notes)


def view_pod(pod: dict[str, Any]) -> ObjectView:
    """Pod phase and readiness → power state (Pending: NOSTATE; Running: RUNNING, booted once
    Ready; Succeeded: SHUTDOWN, the guest powered off; Failed: CRASHED; Unknown: NOSTATE)."""
    status = pod.get("status") or {}
    phase = status.get("phase") or "Pending"
    detail = "; ".join(
        x for x in (status.get("reason"), status.get("message"), _termination(status)) if x
    )
    reason = f"pod phase {phase}" + (f": {detail}" if detail else "")
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return ObjectView(PowerState.SHUTDOWN, False, True, f"pod is being deleted ({reason})")
    if phase == "Running":
        ready = _is_ready(status)
        return ObjectView(
            PowerState.RUNNING, ready, False, reason if ready else f"{reason}, not ready"
        )
    if phase == "Succeeded":
        return ObjectView(PowerState.SHUTDOWN, False, True, f"{reason} (the guest stopped)")
    if phase == "Failed":
        return ObjectView(PowerState.CRASHED, False, True, reason)
    return ObjectView(PowerState.NOSTATE, False, False, reason)  # Pending, Unknown
