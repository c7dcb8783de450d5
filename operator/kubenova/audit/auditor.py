"""The audit's side effects: a snapshot gathered from the API and the drivers, and the removal
of the suspects decide.py found ripe, each with a log line and `kubenova_audit_cleanups_total`.
"""

from __future__ import annotations

import asyncio
import logging

import aiohttp
from kubernetes_asyncio import client

from kubenova import GROUP, VERSION, metrics
from kubenova.audit.decide import InstanceView, OrphanTracker, Snapshot, Suspect, suspects
from kubenova.audit.images import BaseImageJanitor
from kubenova.conductor.context import Conductor
from kubenova.kube.client import ApiException
from kubenova.network.ports import INSTANCE_LABEL
from kubenova.virt.driver import DriverError

log = logging.getLogger("kubenova.audit")
API_ERRORS = (ApiException, aiohttp.ClientError, OSError, TimeoutError)


class Auditor:
    def __init__(
        self, conductor: Conductor, grace: float, images: BaseImageJanitor | None = None
    ) -> None:
        self.c = conductor
        self.grace = grace
        self.images = images
        """Base-image housekeeping after each audit (audit/images.py); None: off."""
        self.tracker = OrphanTracker()
        self.custom = client.CustomObjectsApi(conductor.objects.api)

    async def snapshot(self) -> Snapshot:
        """What instances may own, then the instances (the order is a guard: decide.py)."""
        objects = self.c.objects
        quotas = await objects.list("quotas")
        volumes = await objects.list("volumes")
        ports = await objects.list("ports", label_selector=INSTANCE_LABEL)
        providers = await objects.list("resourceproviders")
        vms = []
        for host, compute in list(self.c.hosts.local.items()):
            try:
                vms += [(host, uid) for uid in await compute.driver.list_instances()]
            except (DriverError, *API_ERRORS) as err:
                log.warning("audit: could not list the VMs of %s: %r", host, err)
        instances = await objects.list("instances")
        return Snapshot(
            instances={i["metadata"]["uid"]: InstanceView.of(i) for i in instances},
            volumes=frozenset(v["metadata"]["uid"] for v in volumes),
            vms=vms,
            ports=[
                (
                    p["metadata"]["namespace"],
                    p["metadata"]["name"],
                    p["metadata"]["uid"],
                    p["metadata"]["labels"][INSTANCE_LABEL],
                )
                for p in ports
            ],
            claims=[
                (rp["metadata"]["name"], uid)
                for rp in providers
                for uid in (rp.get("spec") or {}).get("allocations") or {}
            ],
            attachments=[
                (v["metadata"]["namespace"], v["metadata"]["name"], v["status"]["attachedToUid"])
                for v in volumes
                if (v.get("status") or {}).get("phase") == "in-use"
                and v["status"].get("attachedToUid")
            ],
            quota=[
                (q["metadata"]["namespace"], uid, (entry or {}).get("kind", "Instance"))
                for q in quotas
                for uid, entry in ((q.get("status") or {}).get("allocations") or {}).items()
            ],
        )

    async def run_once(self) -> list[Suspect]:
        """One audit: the suspects that were ripe, each removed (or tried again next time)."""
        snap = await self.snapshot()
        found = suspects(snap)
        ripe = self.tracker.ripe(found, asyncio.get_running_loop().time(), self.grace)
        young = len(found) - len(ripe)
        if young:
            log.info("audit: %d suspect(s) too young to remove yet", young)
        removed = []
        for suspect in ripe:
            try:
                if await self.remove(suspect):
                    removed.append(suspect)
            except (DriverError, *API_ERRORS) as err:
                log.warning("audit: could not remove %s: %r", suspect, err)
                continue
            self.tracker.forget(suspect)
        if self.images is not None:
            try:
                await self.images.run_once()
            except API_ERRORS as err:
                log.warning("audit: base image housekeeping failed: %r", err)
        metrics.AUDIT_RUNS.inc()
        return removed

    async def remove(self, suspect: Suspect) -> bool:
        """Remove one orphan; False if it was gone already."""
        kind = suspect.kind
        if kind == "vm":
            host, uid = suspect.key
            driver = self.c.hosts.serving(host)
            if driver is None:
                return False
            await driver.destroy(uid)
        elif kind == "port":
            namespace, name = suspect.key
            if not await self._delete_port(namespace, name, suspect.object_uid):
                return False
        elif kind == "claim":
            node, uid = suspect.key
            if not await self.c.placement.release(node, uid):
                return False
        elif kind == "volume_attachment":
            namespace, volume = suspect.key
            if not await self.c.attachments.detach(namespace, volume, suspect.owner):
                return False
        elif kind == "quota":
            namespace, uid = suspect.key
            if not await self.c.quotas.release(namespace, uid):
                return False
        else:  # pragma: no cover - decide.py makes only the kinds above
            raise ValueError(kind)
        metrics.AUDIT_CLEANUPS.labels(kind).inc()
        log.warning("audit: removed %s (%s)", suspect, suspect.why)
        return True

    async def _delete_port(self, namespace: str, name: str, uid: str | None) -> bool:
        """Delete the Port only if it is still the same object (a uid precondition): its name,
        the address, may have been freed and taken by another instance meanwhile."""
        options = client.V1DeleteOptions(preconditions=client.V1Preconditions(uid=uid))
        try:
            await self.custom.delete_namespaced_custom_object(
                GROUP, VERSION, namespace, "ports", name, body=options
            )
        except ApiException as err:
            if err.status in (404, 409):
                return False
            raise
        return True


async def audit_forever(auditor: Auditor, interval: float) -> None:
    """Every `interval` seconds until cancelled; a failed audit is logged and tried again."""
    while True:
        await asyncio.sleep(interval)
        try:
            await auditor.run_once()
        except API_ERRORS as err:
            log.warning("audit failed: %r; trying again in %gs", err, interval)
        except Exception:
            log.exception("audit failed; trying again in %gs", interval)
