"""KubeVirtDriver: each instance is one VirtualMachineInstance pinned to the scheduled Node.

One KubeVirtDriver serves one host, all sharing the operator's API client; manifest.py has the
VMI's shape and the phase mapping, ObjectDriver (virt/cluster.py) the lifecycle:

- running (ACTIVE) = phase Running; Failed, Succeeded or a deleted VMI before that raises
  SpawnFailed (→ reschedule). The guest is up (wait_for_guest) once the Ready and
  AgentConnected conditions are True where KubeVirt reports them.
- destroy() deletes the VMI and waits for it to go (KubeVirt's own finalizer stops the VM); a
  VMI still there after grace + 30 s is left to KubeVirt, with a warning.
- console_output() is the log of the virt-launcher pod's `guest-console-log` container (KubeVirt
  collects the serial console there unless logSerialConsole is off); empty when there is none.
- power_off/power_on/reboot raise DriverError: a VMI cannot be stopped and started again (that
  is a VirtualMachine's job), its containerDisk would not survive, and KubeVirt's pause/reboot
  subresources are not used by this driver.
"""

from __future__ import annotations

from typing import Any

from kubernetes_asyncio import client

from kubenova.kube.client import ApiException
from kubenova.virt.cluster import (
    NODE_ANNOTATION,
    NODE_LABEL,
    ObjectDriver,
    ObjectView,
    label_value,
    selector,
    vm_object_name,
    vm_object_namespace,
)
from kubenova.virt.driver import DriverError, InstanceInfo, SpawnFailed, SpawnRequest
from kubenova.virt.kubevirt.manifest import (
    API_GROUP,
    API_VERSION,
    PLURAL,
    KubeVirtOptions,
    view_vmi,
    vmi_manifest,
)

#: virt-launcher pods carry their VMI's uid in this label (types.go CreatedByLabel).
CREATED_BY_LABEL = "kubevirt.io/created-by"
CONSOLE_CONTAINER = "guest-console-log"
NOT_SUPPORTED = (
    "{op} is not supported by the KubeVirt driver: a VirtualMachineInstance cannot be stopped "
    "and started again and its containerDisk would not survive; delete and recreate the "
    "instance instead"
)


class KubeVirtDriver(ObjectDriver):
    name = "kubevirt"
    power_operations_unsupported = NOT_SUPPORTED.format(op="stopping, starting or rebooting")
    kind = "VMI"

    def __init__(
        self, api: client.ApiClient, host: str, options: KubeVirtOptions | None = None
    ) -> None:
        self.options = options or KubeVirtOptions()
        super().__init__(
            host,
            poll_interval=self.options.poll_interval,
            delete_grace=self.options.termination_grace_seconds,
        )
        self.api = api
        self.custom = client.CustomObjectsApi(api)
        self.core = client.CoreV1Api(api)

    # -- ObjectDriver hooks ------------------------------------------------------------------
    def namespace_for(self, request: SpawnRequest) -> str:
        return vm_object_namespace(request, self.options.namespace)

    def name_for(self, request: SpawnRequest) -> str:
        return vm_object_name(request, self.host)

    async def manifest(self, request: SpawnRequest) -> dict[str, Any]:
        try:
            return vmi_manifest(request, self.host, self.options)
        except DriverError as err:
            raise SpawnFailed(str(err)) from None

    def view(self, obj: dict[str, Any]) -> ObjectView:
        return view_vmi(obj)

    async def create(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        return await self.custom.create_namespaced_custom_object(
            API_GROUP, API_VERSION, namespace, PLURAL, body
        )

    async def read(self, namespace: str, name: str) -> dict[str, Any]:
        return await self.custom.get_namespaced_custom_object(
            API_GROUP, API_VERSION, namespace, PLURAL, name
        )

    async def delete(self, namespace: str, name: str, grace: int) -> None:
        await self.custom.delete_namespaced_custom_object(
            API_GROUP, API_VERSION, namespace, PLURAL, name, grace_period_seconds=grace
        )

    async def list_objects(self, instance_id: str | None = None) -> list[dict[str, Any]]:
        # A custom resource has no field selector on the node: select by label, then check the
        # exact host in the annotation (a label value may be shortened).
        labels = f"{selector(instance_id)},{NODE_LABEL}={label_value(self.host)}"
        if self.options.namespace:
            result = await self.custom.list_namespaced_custom_object(
                API_GROUP, API_VERSION, self.options.namespace, PLURAL, label_selector=labels
            )
        else:
            result = await self.custom.list_cluster_custom_object(
                API_GROUP, API_VERSION, PLURAL, label_selector=labels
            )
        return [
            vmi
            for vmi in result["items"]
            if (vmi["metadata"].get("annotations") or {}).get(NODE_ANNOTATION) == self.host
        ]

    # -- the rest of the ComputeDriver interface ---------------------------------------------
    async def power_off(self, instance_id: str, grace: float = 0) -> None:
        raise DriverError(NOT_SUPPORTED.format(op="power off"))

    async def power_on(self, instance_id: str, start_timeout: float) -> InstanceInfo:
        raise DriverError(NOT_SUPPORTED.format(op="power on"))

    async def reboot(self, instance_id: str, hard: bool, start_timeout: float) -> InstanceInfo:
        raise DriverError(NOT_SUPPORTED.format(op="reboot"))

    async def console_output(self, instance_id: str) -> str:
        meta = (await self._object_of(instance_id))["metadata"]
        pods = await self.core.list_namespaced_pod(
            meta["namespace"], label_selector=f"{CREATED_BY_LABEL}={meta['uid']}"
        )
        for pod in pods.items:
            try:
                return await self.core.read_namespaced_pod_log(
                    pod.metadata.name, meta["namespace"], container=CONSOLE_CONTAINER
                )
            except ApiException as err:
                if err.status not in (400, 404):
                    raise
        return ""
