"""PodDriver: each instance is one Pod running the QEMU launcher on the scheduled Node, its disk
a PersistentVolumeClaim that outlives the Pod, so the instance can be stopped, started and
rebooted.

One PodDriver serves one host (ComputeHosts makes one per compute Node, all sharing the
operator's API client); the Pod is pinned there with `nodeName` (manifest.py has its shape and
the claim's). The lifecycle (create or adopt, wait, delete on failure) is ObjectDriver's
(virt/cluster.py):

- spawn() creates (or adopts) the claim, then the Pod on it; a spawn that fails deletes both.
  Running (ACTIVE) = the Pod is Running; Failed, Succeeded, deleted or evicted before that
  raises SpawnFailed (→ reschedule). The guest is up (wait_for_guest) once the Pod is Ready:
  the launcher's readiness file follows the guest's signals (console, guest agent).
- power_off() deletes the Pod with its grace period (on SIGTERM the launcher powers the guest
  off through ACPI, then stops qemu) and waits until it is gone (the kubelet removes the object
  only once the container has stopped and the volume is unmounted); the claim stays. With grace
  0 (a hard stop) the Pod is deleted with grace 1, as `kubectl delete --grace-period=0` does
  without --force: grace 0 would be a force deletion, the object gone before the kubelet has
  stopped qemu, and the next Pod could start on the disk while the old qemu still writes it.
- power_on() creates the Pod again (same name, from the launch spec kept on the claim; the KVM
  label is read again) and waits until it runs. The launcher finds the instance's files on the
  claim and keeps the overlay (the guest's data) and the verified base image, building only
  the qemu argv again; `kubectl logs` of the new Pod is the new boot's console.
- reboot(hard) = a hard stop, then power_on(); reboot(soft) = a graceful stop, then power_on().
  That is Nova's libvirt soft reboot too ("shutdown and create": an ACPI shutdown, then the
  domain started again, falling back to a hard reboot when the guest ignores it): here the
  guest gets an ACPI shutdown for the Pod's grace period less the launcher's margin, and a
  fresh boot; a guest that ignores it is stopped by the launcher (so hard, in effect).
- destroy() deletes the Pod with its grace period (a Pod that outlives grace + 30 s, a dead
  node, is force-deleted), then the claim once the Pod is gone (pvc-protection keeps a claim
  in use; the PersistentVolume then follows its reclaim policy).
- get_info() maps phase and readiness (manifest.view_pod); with no Pod but the claim it is
  SHUTDOWN (the VM is stopped, its disk kept), so power-state sync and the host monitor see a
  stopped VM, not a lost one. list_instances() counts both. console_output() is the Pod's log:
  the serial console of its boot, which the launcher copies to its stdout ("" while stopped).

Why a PersistentVolumeClaim: the disk must outlive the Pod, and
- a hostPath volume would break PodSecurity "baseline" (and "restricted"), which the QEMU pod
  meets; a claim is allowed by both;
- a claim works with any StorageClass: kind's default local-path provisioner, any CSI driver;
- the Pod is always re-created on the same Node (nodeName pins it to the instance's host), so
  node-local storage (local-path, a local PV) serves it. A pre-provisioned local PV's node
  affinity must name that host: the PV controller binds a claim without looking at nodes (only
  the kube-scheduler's volume binding does, and it never sees a pod with nodeName set).
- WaitForFirstConsumer classes (local-path's, most CSI drivers'): the PV controller and the
  external provisioners provision such a claim only once it carries
  `volume.kubernetes.io/selected-node`, which the kube-scheduler sets when it places the claim's
  first pod. The QEMU pod bypasses the scheduler, so the driver sets it on the claim, naming the
  host (manifest.claim_manifest). A provisioner that fails may remove it again (to ask the
  scheduler for another node); the pod then waits for its volume and the spawn times out on
  that host (→ reschedule).

With PodOptions.disk "emptyDir" the disk lives in the Pod's emptyDir, as before: power_off,
power_on and reboot raise DriverError (stopping the Pod would lose the disk, and the operator
has no channel into the running Pod: no pods/exec, by design).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from kubernetes_asyncio import client

from kubenova.kube.client import ApiException
from kubenova.models.v1alpha1.states import PowerState
from kubenova.virt.cluster import (
    NODE_ANNOTATION,
    NODE_LABEL,
    ObjectDriver,
    ObjectView,
    api_failure,
    finish,
    instance_of,
    label_value,
    selector,
    vm_object_name,
    vm_object_namespace,
)
from kubenova.virt.driver import (
    DriverError,
    InstanceInfo,
    InstanceNotFound,
    SpawnFailed,
    SpawnRequest,
)
from kubenova.virt.pod.manifest import (
    CONTAINER,
    PodOptions,
    claim_manifest,
    claim_request,
    pod_disk_is_persistent,
    pod_manifest,
    view_pod,
)

log = logging.getLogger("kubenova.virt.pod")

NOT_SUPPORTED = (
    "{op} is not supported by the pod driver with --pod-disk=emptyDir: the instance's disk "
    "lives in its pod's emptyDir and would be lost with the pod; delete and recreate the "
    "instance instead"
)
EMPTY_DIR_POD = (
    "{op} is not supported for this instance: its pod {pod} keeps the disk in an emptyDir (it was "
    "created with --pod-disk=emptyDir) and the disk would be lost with the pod; delete and "
    "recreate the instance instead"
)
#: A hard stop's grace period: the shortest that still lets the kubelet stop the container
#: before the object goes (0 would be a force deletion).
HARD_STOP_GRACE = 1


class PodDriver(ObjectDriver):
    name = "pod"
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
        self.power_operations_unsupported = (
            None
            if self.options.persistent
            else NOT_SUPPORTED.format(op="stopping, starting or rebooting")
        )

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
        details = {**super().details(obj), "accelerator": accelerator}
        if pod_disk_is_persistent(obj):
            meta = obj["metadata"]
            details["claim"] = f"{meta['namespace']}/{meta['name']}"
        return details

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

    async def _wait_for(
        self, namespace: str, name: str, uid: str, deadline: float, booted: bool = False
    ) -> InstanceInfo:
        """ObjectDriver's wait; a pod that did not run in time says whether its claim is still
        unbound (the kubelet starts no container before the volume is there)."""
        try:
            return await super()._wait_for(namespace, name, uid, deadline, booted)
        except SpawnFailed as err:
            if not self.options.persistent or asyncio.get_running_loop().time() < deadline:
                raise
            note = await self._unbound_claim(namespace, name)
            if note is None:
                raise
            raise SpawnFailed(f"{err}; {note}") from err

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

    # -- the ComputeDriver interface ---------------------------------------------------------
    async def spawn(self, request: SpawnRequest, start_timeout: float) -> InstanceInfo:
        """The claim first (created or adopted), then ObjectDriver's spawn of the pod on it;
        on failure or cancellation the pod (ObjectDriver) and then the claim are deleted."""
        if not self.options.persistent:
            return await super().spawn(request, start_timeout)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + start_timeout
        try:
            await self._create_or_adopt_claim(request, deadline)
            return await super().spawn(request, max(0.0, deadline - loop.time()))
        except BaseException as err:
            try:
                await finish(self._delete_claims(request.instance_id))
            except Exception as cleanup_error:  # the original error is what matters
                log.warning("could not delete the claim of %s: %s", request.name, cleanup_error)
            if isinstance(err, ApiException) and 400 <= err.status < 500:
                raise SpawnFailed(f"PVC of {request.name}: {api_failure(err)}") from err
            raise

    async def destroy(self, instance_id: str) -> None:
        await super().destroy(instance_id)  # the pods, each waited for until gone
        if self.options.persistent:
            await self._delete_claims(instance_id)

    async def power_off(self, instance_id: str, grace: float = 0) -> None:
        """Delete the pod and wait until it is gone; the claim (the disk) stays."""
        await self._stop(instance_id, hard=grace <= 0, op="power off")

    async def power_on(self, instance_id: str, start_timeout: float) -> InstanceInfo:
        """Create the pod again on the kept claim and wait until it runs (a pod already running
        or starting is waited for; one that ended is replaced). If it does not run, the pod is
        deleted again: the instance stays stopped, its disk kept."""
        deadline = asyncio.get_running_loop().time() + start_timeout
        claim = await self._claim_for(instance_id, "power on")
        request = claim_request(claim)
        meta = claim["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        try:
            for pod in await self.list_objects(instance_id):
                pod_meta = pod["metadata"]
                if not self.view(pod).finished:  # a start in flight (the operator restarted)
                    return await self._wait_for(
                        pod_meta["namespace"], pod_meta["name"], pod_meta["uid"], deadline
                    )
                await self._delete(pod_meta["namespace"], pod_meta["name"])  # it ended: replace
            pod = await self._create_or_adopt(request, namespace, name)
            return await self._wait_for(namespace, name, pod["metadata"]["uid"], deadline)
        except BaseException as err:
            why = "cancelled" if isinstance(err, asyncio.CancelledError) else f"failed: {err}"
            log.warning("power on of %s on %s %s; deleting its pod", request.name, self.host, why)
            try:
                await finish(self._delete(namespace, name, instance_id))
            except Exception as cleanup_error:
                log.warning("could not delete pod %s/%s: %s", namespace, name, cleanup_error)
            if isinstance(err, ApiException) and 400 <= err.status < 500:
                raise DriverError(f"pod {namespace}/{name}: {api_failure(err)}") from err
            raise

    async def reboot(self, instance_id: str, hard: bool, start_timeout: float) -> InstanceInfo:
        """Stop (hard: grace 1; soft: the guest's ACPI power-off), then power_on(): a new pod,
        a fresh boot of the kept disk."""
        await self._stop(instance_id, hard=hard, op="reboot")
        return await self.power_on(instance_id, start_timeout)

    async def get_info(self, instance_id: str) -> InstanceInfo:
        pods = await self.list_objects(instance_id)
        if pods:
            return self._info(instance_id, pods[0])
        claim = await self._live_claim(instance_id) if self.options.persistent else None
        if claim is None:
            raise InstanceNotFound(f"no pod of instance {instance_id} on {self.host}")
        meta = claim["metadata"]
        details = {
            "claim": f"{meta['namespace']}/{meta['name']}",
            "node": self.host,
            "state": "no pod: the VM is powered off, its disk kept in the claim",
        }
        return InstanceInfo(instance_id, PowerState.SHUTDOWN, None, False, details)

    async def list_instances(self) -> list[str]:
        found = set(await super().list_instances())
        if self.options.persistent:
            found |= {instance_of(c) or "" for c in await self._claims() if _live(c)}
        return sorted(found - {""})

    async def console_output(self, instance_id: str) -> str:
        pods = await self.list_objects(instance_id)
        if not pods:
            if self.options.persistent and await self._live_claim(instance_id) is not None:
                return ""  # stopped: the console log is on the claim, no pod to read it
            raise InstanceNotFound(f"no pod of instance {instance_id} on {self.host}")
        meta = pods[0]["metadata"]
        try:
            return await self.core.read_namespaced_pod_log(
                meta["name"], meta["namespace"], container=CONTAINER
            )
        except ApiException as err:
            if err.status in (400, 404):  # the container has not started yet, or is gone
                return ""
            raise

    # -- stopping ----------------------------------------------------------------------------
    async def _stop(self, instance_id: str, hard: bool, op: str) -> None:
        """Delete the instance's pods (hard: grace HARD_STOP_GRACE, else the pod's own) and wait
        until they are gone; the claim stays."""
        await self._claim_for(instance_id, op)
        for pod in await self.list_objects(instance_id):
            meta = pod["metadata"]
            how = "hard" if hard else "with ACPI power-off"
            log.info(
                "stopping pod %s/%s on %s (%s)", meta["namespace"], meta["name"], self.host, how
            )
            grace = HARD_STOP_GRACE if hard else self.delete_grace
            await self._delete(meta["namespace"], meta["name"], instance_id, grace=grace)

    async def _claim_for(self, instance_id: str, op: str) -> dict[str, Any]:
        """The claim a power operation works on: DriverError when the disk is not one (the
        emptyDir mode, or a pod made in it), InstanceNotFound when there is nothing."""
        if not self.options.persistent:
            raise DriverError(NOT_SUPPORTED.format(op=op))
        pods = await self.list_objects(instance_id)
        for pod in pods:
            if not pod_disk_is_persistent(pod):
                meta = pod["metadata"]
                pod_name = f"{meta['namespace']}/{meta['name']}"
                raise DriverError(EMPTY_DIR_POD.format(op=op, pod=pod_name))
        claim = await self._live_claim(instance_id)
        if claim is None:
            if pods:
                raise DriverError(f"cannot {op} {instance_id}: its claim is gone or being deleted")
            raise InstanceNotFound(f"no pod or claim of instance {instance_id} on {self.host}")
        return claim

    # -- the claim ---------------------------------------------------------------------------
    async def _create_or_adopt_claim(self, request: SpawnRequest, deadline: float) -> None:
        """Create the claim; an existing one of this instance is adopted (a spawn the operator
        redoes after a restart), one still being deleted is waited for and made again."""
        body = claim_manifest(request, self.host, self.options)
        namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
        what = f"PVC {namespace}/{name}"
        loop = asyncio.get_running_loop()
        while True:
            try:
                await self.core.create_namespaced_persistent_volume_claim(namespace, body)
                log.info("created %s for %s on %s", what, request.name, self.host)
                return
            except ApiException as err:
                if err.status != 409:
                    raise
            try:
                claim = self._plain(
                    await self.core.read_namespaced_persistent_volume_claim(name, namespace)
                )
            except ApiException as err:
                if err.status == 404:
                    continue  # gone meanwhile: create it
                raise
            if instance_of(claim) != request.instance_id:
                raise SpawnFailed(f"{what} exists and belongs to another instance")
            if _live(claim):
                log.info("adopting %s of %s", what, request.name)
                return
            if loop.time() >= deadline:
                raise SpawnFailed(f"{what} of an earlier VM is still being deleted")
            await asyncio.sleep(self.poll_interval)

    async def _claims(self, instance_id: str | None = None) -> list[dict[str, Any]]:
        """This host's claims (of one instance, when given): by label, then the exact host in
        the annotation (a label value may be shortened)."""
        labels = f"{selector(instance_id)},{NODE_LABEL}={label_value(self.host)}"
        if self.options.namespace:
            result = await self.core.list_namespaced_persistent_volume_claim(
                self.options.namespace, label_selector=labels
            )
        else:
            result = await self.core.list_persistent_volume_claim_for_all_namespaces(
                label_selector=labels
            )
        claims = [self._plain(c) for c in result.items]
        return [
            c
            for c in claims
            if (c["metadata"].get("annotations") or {}).get(NODE_ANNOTATION) == self.host
        ]

    async def _unbound_claim(self, namespace: str, name: str) -> str | None:
        """Why the claim holds the pod back, if it does (not Bound)."""
        try:
            claim = self._plain(
                await self.core.read_namespaced_persistent_volume_claim(name, namespace)
            )
        except (ApiException, OSError, TimeoutError) as err:
            log.info("could not read PVC %s/%s: %s", namespace, name, err)
            return None
        phase = (claim.get("status") or {}).get("phase") or "Pending"
        if phase == "Bound":
            return None
        class_name = (claim.get("spec") or {}).get("storageClassName")
        which = f"StorageClass {class_name}" if class_name else "no StorageClass (no default?)"
        return (
            f"its PVC {namespace}/{name} is {phase}, not bound ({which}: does it provision on "
            f"{self.host}? `kubectl describe pvc -n {namespace} {name}` says why)"
        )

    async def _live_claim(self, instance_id: str) -> dict[str, Any] | None:
        return next((c for c in await self._claims(instance_id) if _live(c)), None)

    async def _delete_claims(self, instance_id: str) -> None:
        """Delete the instance's claims on this host (its pods must be gone: pvc-protection
        keeps a claim a pod uses until the pod is). Not waited for: once deleted, Kubernetes
        finishes it (the PV follows its reclaim policy)."""
        for claim in await self._claims(instance_id):
            if not _live(claim):
                continue
            meta = claim["metadata"]
            try:
                await self.core.delete_namespaced_persistent_volume_claim(
                    meta["name"], meta["namespace"]
                )
            except ApiException as err:
                if err.status != 404:
                    raise
            log.info("deleted PVC %s/%s of %s", meta["namespace"], meta["name"], instance_id)

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


def _live(claim: dict[str, Any]) -> bool:
    """Not being deleted (a deleted claim waits for pvc-protection and the PV's reclaim)."""
    return not claim["metadata"].get("deletionTimestamp")
