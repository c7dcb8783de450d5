"""What the drivers that run a VM as a Kubernetes object (a Pod, a VirtualMachineInstance) share:
the object's name and labels, and the lifecycle in ObjectDriver.

- spawn() creates the object (or adopts the one already there: same name for the same instance
  and host) and returns once the subclass's view() says the VM runs (Pod or VMI phase Running).
  An object that fails, stops, is deleted or evicted, or does not run within the start timeout
  raises SpawnFailed, so the conductor reschedules; the object is deleted first (also when
  spawn is cancelled). wait_for_guest() then waits for view()'s `booted`: the object's own
  readiness.
- destroy() deletes the object and waits until it is gone (the kubelet or KubeVirt stops the VM
  within the grace period); absent: nothing to do.
- The drivers create, read and delete their objects (and read Nodes); they never write the
  Instance.

One object per (instance, host): its name carries a hash of the host, so after a reschedule the
object on the failed host (possibly still terminating on a dead node) never blocks the new one,
and destroy() on one host never touches the VM on another.
"""

from __future__ import annotations

import abc
import asyncio
import hashlib
import json
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from kubenova import GROUP, VERSION
from kubenova.kube.client import ApiException
from kubenova.models.v1alpha1.states import PowerState
from kubenova.timestamps import now
from kubenova.virt.driver import (
    ComputeDriver,
    DriverError,
    GuestBoot,
    GuestBootTimeout,
    GuestSignal,
    InstanceInfo,
    InstanceNotFound,
    SpawnFailed,
    SpawnRequest,
)

log = logging.getLogger("kubenova.virt")

#: Labels on every object a cluster driver creates (values are label-safe; see label_value).
INSTANCE_UID_LABEL = "compute.kubenova.io/instance-uid"
INSTANCE_LABEL = "compute.kubenova.io/instance"
NODE_LABEL = "compute.kubenova.io/node"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "kubenova"
#: The full namespace/name of the Instance and the host, unabridged.
INSTANCE_ANNOTATION = "compute.kubenova.io/instance"
NODE_ANNOTATION = "compute.kubenova.io/node"

#: Extra seconds a deleted object gets beyond its grace period before force_delete().
DELETE_SLACK = 30.0

_NOT_LABEL = re.compile(r"[^a-z0-9-]+")
_NOT_LABEL_VALUE = re.compile(r"[^A-Za-z0-9_.-]+")


def split_name(name: str) -> tuple[str, str]:
    """SpawnRequest.name ("namespace/name") as (namespace, name)."""
    namespace, sep, short = name.partition("/")
    if not sep or not namespace or not short:
        raise ValueError(f"instance name {name!r} is not namespace/name")
    return namespace, short


def object_name(instance: str, instance_id: str, host: str) -> str:
    """A DNS-1123 label (<= 63 characters, so it also works as a hostname): the instance's
    name, its uid's first 8 characters, and a hash of the host."""
    base = _NOT_LABEL.sub("-", instance.lower()).strip("-")[:40].rstrip("-") or "vm"
    digest = hashlib.sha256(host.encode()).hexdigest()[:6]
    return f"{base}-{instance_id[:8]}-{digest}"


def vm_object_name(request: SpawnRequest, host: str) -> str:
    """The Pod's or VMI's name for this instance on this host."""
    return object_name(split_name(request.name)[1], request.instance_id, host)


def vm_object_namespace(request: SpawnRequest, configured: str | None) -> str:
    """The configured namespace for VM objects, else the Instance's own."""
    return configured or split_name(request.name)[0]


def vm_object_metadata(request: SpawnRequest, host: str, configured: str | None) -> dict[str, Any]:
    """The Pod's or VMI's metadata: name, namespace, labels and annotations, owned by the
    Instance when it lives in the Instance's namespace (owners cannot cross namespaces)."""
    namespace = vm_object_namespace(request, configured)
    metadata: dict[str, Any] = {
        "name": vm_object_name(request, host),
        "namespace": namespace,
        "labels": object_labels(request.name, request.instance_id, host),
        "annotations": object_annotations(request.name, host),
    }
    if namespace == split_name(request.name)[0]:
        metadata["ownerReferences"] = [owner_reference(request.name, request.instance_id)]
    return metadata


def label_value(value: str) -> str:
    """`value` made a valid label value (<= 63 characters of [A-Za-z0-9_.-], alphanumeric at
    both ends); the annotations keep the exact value."""
    clean = _NOT_LABEL_VALUE.sub("-", value).strip("-_.")
    return clean[:63].rstrip("-_.")


def object_labels(request_name: str, instance_id: str, host: str) -> dict[str, str]:
    return {
        MANAGED_BY_LABEL: MANAGED_BY,
        INSTANCE_UID_LABEL: instance_id,
        INSTANCE_LABEL: label_value(split_name(request_name)[1]),
        NODE_LABEL: label_value(host),
    }


def object_annotations(request_name: str, host: str) -> dict[str, str]:
    return {INSTANCE_ANNOTATION: request_name, NODE_ANNOTATION: host}


def owner_reference(request_name: str, instance_id: str) -> dict[str, Any]:
    """The Instance as owner: the garbage collector removes the VM object if the Instance goes
    without the operator (its finalizer removed by hand). Not blocking: deleting the Instance
    must not wait for the VM object."""
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Instance",
        "name": split_name(request_name)[1],
        "uid": instance_id,
    }


def selector(instance_id: str | None = None) -> str:
    """Label selector of the driver's objects (of one instance, when given)."""
    if instance_id is None:
        return f"{MANAGED_BY_LABEL}={MANAGED_BY},{INSTANCE_UID_LABEL}"
    return f"{MANAGED_BY_LABEL}={MANAGED_BY},{INSTANCE_UID_LABEL}={instance_id}"


async def wait_gone(
    read: Callable[[], Awaitable[Any]], within: float, interval: float = 0.2
) -> bool:
    """Poll `read()` until it raises 404 (True) or `within` seconds pass (False)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        try:
            await read()
        except ApiException as err:
            if err.status == 404:
                return True
            raise
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(interval)


def api_failure(err: ApiException) -> str:
    """A short reason from an ApiException (the Status message when there is one)."""
    reason = f"{err.status} {err.reason}"
    body = getattr(err, "body", None)
    if body:
        try:
            message = json.loads(body).get("message")
        except (ValueError, AttributeError):
            message = None
        if message:
            return f"{reason}: {message}"
    return reason


async def finish(cleanup: Awaitable[None]) -> None:
    """Run cleanup to the end even if the caller is being cancelled meanwhile."""
    await asyncio.shield(asyncio.ensure_future(cleanup))


# -- a VM that is one Kubernetes object ----------------------------------------------------------
@dataclass(frozen=True)
class ObjectView:
    """An object's status read as a VM's: its power state, whether the guest booted, whether
    the object is over for good (failed, stopped, being deleted), and a reason for messages."""

    power_state: PowerState
    booted: bool
    finished: bool
    reason: str


class ObjectDriver(ComputeDriver):
    """A ComputeDriver whose VM on `host` is one namespaced object (see PodDriver and
    KubeVirtDriver): the object is created (or adopted) by spawn, polled until view() says
    the VM runs (wait_for_guest: the guest booted), and deleted by destroy or a failed spawn.
    Never the Instance's status.

    Subclasses provide the object's API (create, read, delete, list) and its reading (view).
    """

    uses_local_image_cache = False
    #: what the object is called in messages
    kind = "object"

    def __init__(self, host: str, *, poll_interval: float = 0.5, delete_grace: int = 30) -> None:
        self.host = host
        self.poll_interval = poll_interval
        self.delete_grace = delete_grace

    # -- subclass hooks ----------------------------------------------------------------------
    @abc.abstractmethod
    def namespace_for(self, request: SpawnRequest) -> str: ...

    @abc.abstractmethod
    def name_for(self, request: SpawnRequest) -> str: ...

    @abc.abstractmethod
    async def manifest(self, request: SpawnRequest) -> dict[str, Any]: ...

    @abc.abstractmethod
    def view(self, obj: dict[str, Any]) -> ObjectView: ...

    @abc.abstractmethod
    async def create(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]: ...

    @abc.abstractmethod
    async def read(self, namespace: str, name: str) -> dict[str, Any]: ...

    @abc.abstractmethod
    async def delete(self, namespace: str, name: str, grace: int) -> None: ...

    @abc.abstractmethod
    async def list_objects(self, instance_id: str | None = None) -> list[dict[str, Any]]:
        """This host's objects (of one instance, when given)."""

    async def force_delete(self, namespace: str, name: str) -> None:
        """After the grace period ran out: the pod driver forces; a custom object can't be."""
        log.warning("%s %s/%s is still being deleted", self.kind, namespace, name)

    def details(self, obj: dict[str, Any]) -> dict[str, str]:
        meta = obj["metadata"]
        return {self.kind: f"{meta['namespace']}/{meta['name']}", "node": self.host}

    # -- the ComputeDriver interface ---------------------------------------------------------
    async def spawn(self, request: SpawnRequest, start_timeout: float) -> InstanceInfo:
        """Create (or adopt) the object and wait until the VM runs; on failure or cancellation
        the object is deleted (see the module docstring)."""
        deadline = asyncio.get_running_loop().time() + start_timeout
        try:
            namespace, name = self.namespace_for(request), self.name_for(request)
        except ValueError as err:
            raise SpawnFailed(str(err)) from None
        what = f"{self.kind} {namespace}/{name}"
        try:
            obj = await self._create_or_adopt(request, namespace, name)
            return await self._wait_for(namespace, name, obj["metadata"]["uid"], deadline)
        except BaseException as err:
            why = "cancelled" if isinstance(err, asyncio.CancelledError) else f"failed: {err}"
            log.warning("spawn of %s on %s %s; deleting %s", request.name, self.host, why, what)
            try:
                await finish(self._delete(namespace, name, request.instance_id))
            except Exception as cleanup_error:  # the original error is what matters
                log.warning("could not delete %s: %s", what, cleanup_error)
            if isinstance(err, ApiException) and 400 <= err.status < 500:
                raise SpawnFailed(f"{what}: {api_failure(err)}") from err
            if isinstance(err, DriverError) and not isinstance(err, SpawnFailed):
                raise SpawnFailed(str(err)) from err
            raise

    async def wait_for_guest(self, instance_id: str, boot_timeout: float) -> GuestBoot:
        """The hypervisor's own verdict: the object's readiness (the launcher's readiness
        probe follows the guest's signals; KubeVirt's Ready and AgentConnected)."""
        deadline = asyncio.get_running_loop().time() + boot_timeout
        obj = await self._object_of(instance_id)
        meta = obj["metadata"]
        await self._wait_for(meta["namespace"], meta["name"], meta["uid"], deadline, booted=True)
        what = f"{self.kind} {meta['namespace']}/{meta['name']}"
        return GuestBoot(GuestSignal.HYPERVISOR, f"{what} on {self.host} is ready", now())

    async def destroy(self, instance_id: str) -> None:
        for obj in await self.list_objects(instance_id):
            meta = obj["metadata"]
            await self._delete(meta["namespace"], meta["name"])

    async def get_info(self, instance_id: str) -> InstanceInfo:
        return self._info(instance_id, await self._object_of(instance_id))

    async def list_instances(self) -> list[str]:
        objects = await self.list_objects()
        return sorted({o["metadata"]["labels"][INSTANCE_UID_LABEL] for o in objects})

    # -- building blocks ---------------------------------------------------------------------
    async def _create_or_adopt(
        self, request: SpawnRequest, namespace: str, name: str
    ) -> dict[str, Any]:
        body = await self.manifest(request)
        what = f"{self.kind} {namespace}/{name}"
        try:
            obj = await self.create(namespace, body)
            log.info("created %s for %s on %s", what, request.name, self.host)
            return obj
        except ApiException as err:
            if err.status != 409:
                raise
        obj = await self.read(namespace, name)
        if instance_of(obj) != request.instance_id:
            raise SpawnFailed(f"{what} exists and belongs to another instance")
        if obj["metadata"].get("deletionTimestamp"):
            log.info("%s is still being deleted; recreating it once it is gone", what)
            await self._delete(namespace, name)
            return await self.create(namespace, body)
        log.info("adopting %s of %s", what, request.name)
        return obj

    async def _wait_for(
        self, namespace: str, name: str, uid: str, deadline: float, booted: bool = False
    ) -> InstanceInfo:
        """Poll the object until its VM runs (booted: until the guest is up). Before that a
        failed, stopped or vanished object raises SpawnFailed, a deadline GuestBootTimeout
        when waiting for the guest, else SpawnFailed."""
        loop = asyncio.get_running_loop()
        what = f"{self.kind} {namespace}/{name}"
        goal = "the guest booted" if booted else "the VM ran"
        while True:
            try:
                obj = await self.read(namespace, name)
            except ApiException as err:
                if err.status == 404:
                    raise SpawnFailed(f"{what} was deleted before {goal}") from None
                raise
            if obj["metadata"]["uid"] != uid:
                raise SpawnFailed(f"{what} was replaced by another object")
            view = self.view(obj)
            if view.booted or (not booted and view.power_state == PowerState.RUNNING):
                log.info("%s: %s on %s", what, goal, self.host)
                return self._info(instance_of(obj), obj)
            if view.finished:
                raise SpawnFailed(f"{what} on {self.host}: {view.reason}")
            if loop.time() >= deadline:
                timeout = GuestBootTimeout if booted else SpawnFailed
                raise timeout(f"{what} on {self.host}: not {goal} in time ({view.reason})")
            await asyncio.sleep(self.poll_interval)

    def _info(self, instance_id: str, obj: dict[str, Any]) -> InstanceInfo:
        view = self.view(obj)
        details = {**self.details(obj), "state": view.reason}
        return InstanceInfo(instance_id, view.power_state, None, view.booted, details)

    async def _object_of(self, instance_id: str) -> dict[str, Any]:
        objects = await self.list_objects(instance_id)
        if not objects:
            raise InstanceNotFound(f"no {self.kind} of instance {instance_id} on {self.host}")
        return objects[0]

    async def _delete(
        self,
        namespace: str,
        name: str,
        instance_id: str | None = None,
        grace: int | None = None,
    ) -> None:
        """Delete the object (only if it is `instance_id`'s, when given) with `grace` seconds
        (default delete_grace) and wait until it is gone, up to grace + DELETE_SLACK; then
        force_delete()."""
        grace = self.delete_grace if grace is None else grace
        try:
            if (
                instance_id is not None
                and instance_of(await self.read(namespace, name)) != instance_id
            ):
                return
            await self.delete(namespace, name, grace)
        except ApiException as err:
            if err.status == 404:
                return
            raise

        async def read() -> Any:
            return await self.read(namespace, name)

        if not await wait_gone(read, grace + DELETE_SLACK):
            await self.force_delete(namespace, name)


def instance_of(obj: dict[str, Any]) -> str | None:
    """The instance uid an object of a cluster driver is labelled with."""
    return (obj["metadata"].get("labels") or {}).get(INSTANCE_UID_LABEL)
