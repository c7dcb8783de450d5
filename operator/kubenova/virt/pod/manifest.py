"""The QEMU pod of one instance on one host, and what its phase means: pure functions, so the
pod's shape is unit-tested without an apiserver and decided in one place.

The pod:
- `nodeName` is the scheduled host: kubenova's scheduler already chose and claimed it, so no
  kube-scheduler is involved (the kubelet still admits the pod against the Node's allocatable);
- one container runs `kubenova launch` (virt/qemu/launcher.py), the process driver's own code
  with qemu in the foreground; the spec travels as JSON in $KUBENOVA_LAUNCH_SPEC;
- requests and limits from the flavor: cpu limit = vcpus, cpu request = vcpus / the
  scheduler's cpu allocation ratio (the overcommit the scheduler allowed, as KubeVirt's
  cpuAllocationRatio does); memory = RAM (request divided by the ram ratio) + QEMU's overhead;
  ephemeral storage = the flavor's disk (request), twice that (limit: the cached base image
  and the overlay both live in the pod's emptyDir);
- an emptyDir for the disk (image cache, overlay, seed, console) and one for /tmp;
- readiness = the ready file the launcher writes once the guest announced its boot;
- `/dev/kvm` only on Nodes labelled `compute.kubenova.io/kvm=true`, through a device plugin's
  extended resource (default `devices.kubevirt.io/kvm`, advertised by KubeVirt's virt-handler
  or any generic device plugin): no hostPath and no privilege, so the pod stays within
  PodSecurity "baseline" (and "restricted": non-root, no capabilities, RuntimeDefault seccomp,
  read-only root filesystem). Elsewhere QEMU runs TCG (KUBENOVA_ACCEL=tcg).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from kubenova.models.v1alpha1.states import PowerState
from kubenova.virt.cluster import (
    ObjectView,
    vm_object_metadata,
)
from kubenova.virt.driver import SpawnRequest
from kubenova.virt.qemu.accel import ENV_OVERRIDE
from kubenova.virt.qemu.launcher import SPEC_ENV, LaunchSpec

KVM_LABEL = "compute.kubenova.io/kvm"
CONTAINER = "qemu"
WORKDIR = "/var/lib/kubenova"
READY_FILE = f"{WORKDIR}/ready"


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
    poll_interval: float = 0.5
    """Seconds between two looks at a pod while waiting for it."""


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
    if request.disk_gib > 0:
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
    env.append({"name": "TMPDIR", "value": "/tmp"})
    disk_volume: dict[str, Any] = {}
    if request.disk_gib > 0:
        disk_volume["sizeLimit"] = f"{2 * request.disk_gib}Gi"
    container = {
        "name": CONTAINER,
        "image": options.image,
        "imagePullPolicy": options.image_pull_policy,
        "command": ["kubenova", "launch", f"--workdir={WORKDIR}", f"--ready-file={READY_FILE}"],
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
            {"name": "disk", "mountPath": WORKDIR},
            {"name": "tmp", "mountPath": "/tmp"},
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
                {"name": "disk", "emptyDir": disk_volume},
                {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}},
            ],
        },
    }


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
