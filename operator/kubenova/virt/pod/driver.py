"""PodDriver: each instance is one Pod running the QEMU launcher on the scheduled Node.

One PodDriver serves one host (ComputeHosts makes one per compute Node, all sharing the
operator's API client); the Pod is pinned there with `nodeName` (manifest.py has its shape).
The lifecycle (create or adopt, wait, delete on failure) is ObjectDriver's (virt/cluster.py):

- running (ACTIVE) = the Pod is Running; Failed, Succeeded, deleted or evicted before that
  raises SpawnFailed (→ reschedule). The guest is up (wait_for_guest) once the Pod is Ready:
  the launcher's readiness file follows the guest's signals (console, guest agent).
- destroy() deletes the Pod with its grace period (the launcher powers the guest off through
  ACPI, then stops qemu); a Pod that outlives grace + 30 s (a dead node) is force-deleted.
- get_info() maps phase and readiness (manifest.view_pod); console_output() is the Pod's log:
  the serial console, which the launcher copies to its stdout.
- power_off/power_on/reboot raise DriverError: the instance's disk lives in the Pod's emptyDir,
  so stopping the Pod would lose it, and the operator has no channel into the running Pod
  (no pods/exec, by design).
"""

from __future__ import annotations

import logging
from typing import Any

from kubernetes_asyncio import client

from kubenova.kube.client import ApiException
from kubenova.virt.cluster import (
    ObjectDriver,
    ObjectView,
    selector,
    vm_object_name,
    vm_object_namespace,
)
from kubenova.virt.driver import DriverError, InstanceInfo, SpawnFailed, SpawnRequest
from kubenova.virt.pod.manifest import (
    CONTAINER,
    PodOptions,
    pod_manifest,
    view_pod,
)

log = logging.getLogger("kubenova.virt.pod")

NOT_SUPPORTED = (
    "{op} is not supported by the pod driver: the instance's disk lives in its pod's emptyDir "
    "and would be lost with the pod; delete and recreate the instance instead"
)


class PodDriver(ObjectDriver):
    name = "pod"
    power_operations_unsupported = NOT_SUPPORTED.format(op="stopping, starting or rebooting")
    kind = "pod"

    def __init__(self, api: client.ApiClient, host: str, options: PodOptions | None = None):
        self.options = options or PodOptions()
        super().__init__(
            host,
            poll_interval=self.options.poll_interval,
            delete_grace=self.options.termination_grace_seconds,
        )
        self.api = api
        self.core = client.CoreV1Api(api)

    # -- ObjectDriver hooks ------------------------------------------------------------------
    def namespace_for(self, request: SpawnRequest) -> str:
        return vm_object_namespace(request, self.options.namespace)

    def name_for(self, request: SpawnRequest) -> str:
        return vm_object_name(request, self.host)

    async def manifest(self, request: SpawnRequest) -> dict[str, Any]:
        return pod_manifest(request, self.host, self.options, kvm=await self._kvm_capable())

    def view(self, obj: dict[str, Any]) -> ObjectView:
        return view_pod(obj)

    def details(self, obj: dict[str, Any]) -> dict[str, str]:
        spec = obj.get("spec") or {}
        requests = (spec.get("containers") or [{}])[0].get("resources", {}).get("requests", {})
        # What the pod asked for: on a KVM node the launcher still falls back to TCG when its
        # KVM probe fails (its log says which it used).
        accelerator = "kvm" if self.options.kvm_resource in requests else "tcg"
        return {**super().details(obj), "accelerator": accelerator}

    async def create(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._plain(await self.core.create_namespaced_pod(namespace, body))

    async def read(self, namespace: str, name: str) -> dict[str, Any]:
        return self._plain(await self.core.read_namespaced_pod(name, namespace))

    async def delete(self, namespace: str, name: str, grace: int) -> None:
        await self.core.delete_namespaced_pod(name, namespace, grace_period_seconds=grace)

    async def force_delete(self, namespace: str, name: str) -> None:
        log.warning("pod %s/%s outlived its grace period (node down?): forcing", namespace, name)
        try:
            await self.core.delete_namespaced_pod(name, namespace, grace_period_seconds=0)
        except ApiException as err:
            if err.status != 404:
                raise

    async def list_objects(self, instance_id: str | None = None) -> list[dict[str, Any]]:
        kwargs = {
            "label_selector": selector(instance_id),
            "field_selector": f"spec.nodeName={self.host}",
        }
        if self.options.namespace:
            result = await self.core.list_namespaced_pod(self.options.namespace, **kwargs)
        else:
            result = await self.core.list_pod_for_all_namespaces(**kwargs)
        return [self._plain(p) for p in result.items]

    # -- the rest of the ComputeDriver interface ---------------------------------------------
    async def power_off(self, instance_id: str, grace: float = 0) -> None:
        raise DriverError(NOT_SUPPORTED.format(op="power off"))

    async def power_on(self, instance_id: str, start_timeout: float) -> InstanceInfo:
        raise DriverError(NOT_SUPPORTED.format(op="power on"))

    async def reboot(self, instance_id: str, hard: bool, start_timeout: float) -> InstanceInfo:
        raise DriverError(NOT_SUPPORTED.format(op="reboot"))

    async def console_output(self, instance_id: str) -> str:
        meta = (await self._object_of(instance_id))["metadata"]
        try:
            return await self.core.read_namespaced_pod_log(
                meta["name"], meta["namespace"], container=CONTAINER
            )
        except ApiException as err:
            if err.status in (400, 404):  # the container has not started yet, or is gone
                return ""
            raise

    # -- helpers -----------------------------------------------------------------------------
    async def _kvm_capable(self) -> bool:
        """Whether the Node is labelled KVM-capable (read now: labels change)."""
        try:
            node = await self.core.read_node(self.host)
        except ApiException as err:
            if err.status == 404:
                raise SpawnFailed(f"node {self.host} does not exist") from None
            raise
        return (node.metadata.labels or {}).get(self.options.kvm_label) == "true"

    def _plain(self, obj: Any) -> dict[str, Any]:
        """A client model as the plain dict the API returned (camelCase keys)."""
        return self.api.sanitize_for_serialization(obj)
