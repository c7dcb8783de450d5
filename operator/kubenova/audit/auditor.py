"""The audit's side effects: a snapshot gathered from the API and the drivers, and the removal
of the suspects decide.py found ripe, each with a log line and `kubenova_audit_cleanups_total`.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import aiohttp
from kubernetes_asyncio import client

from kubenova import GROUP, VERSION, metrics
from kubenova.audit.decide import (
    DatapathView,
    InstanceView,
    OrphanTracker,
    Snapshot,
    Suspect,
    suspects,
)
from kubenova.audit.images import BaseImageJanitor
from kubenova.conductor.context import Conductor
from kubenova.kube.client import ApiException
from kubenova.network.datapath import DatapathError
from kubenova.network.datapath.names import tap_name
from kubenova.network.ports import INSTANCE_LABEL
from kubenova.virt.driver import DriverError

log = logging.getLogger("kubenova.audit")
API_ERRORS = (ApiException, aiohttp.ClientError, OSError, TimeoutError)
CLEANUP_ERRORS = (DriverError, DatapathError, *API_ERRORS)


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
        inventory = await self.c.datapath.inventory() if self.c.datapath else None
        volumes = await objects.list("volumes")
        ports = await objects.list("ports", label_selector=INSTANCE_LABEL)
        providers = await objects.list("resourceproviders")
        vms = []
        for host, compute in list(self.c.hosts.local.items()):
            try:
                vms += [(host, uid) for uid in await compute.driver.list_instances()]
            except (DriverError, *API_ERRORS) as err:
                log.warning("audit: could not list the VMs of %s: %r", host, err)
        datapath = None
        if inventory is not None:
            networks = await objects.list("networks")
            all_ports = await objects.list("ports")
            datapath = DatapathView(
                namespaces=[(n.netns, n.network_uid) for n in inventory.namespaces],
                taps=[(n.netns, t.name, t.up) for n in inventory.namespaces for t in n.taps],
                strays=[
                    *(("dnsmasq", str(pid)) for pid in inventory.stray_dnsmasq),
                    *(("datapath_dir", str(d)) for d in inventory.stray_dirs),
                ],
                networks=frozenset(n["metadata"]["uid"] for n in networks),
                port_taps=frozenset(tap_name(p["metadata"]["uid"]) for p in all_ports),
            )
        instances = await objects.list("instances")
        return Snapshot(
            instances={i["metadata"]["uid"]: InstanceView.of(i) for i in instances},
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
            datapath=datapath,
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
            except CLEANUP_ERRORS as err:
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
        elif kind in ("netns", "tap", "dnsmasq", "datapath_dir"):
            await self._remove_datapath(kind, suspect.key)
        else:  # pragma: no cover - decide.py makes only the kinds above
            raise ValueError(kind)
        metrics.AUDIT_CLEANUPS.labels(kind).inc()
        log.warning("audit: removed %s (%s)", suspect, suspect.why)
        return True

    async def _remove_datapath(self, kind: str, key: tuple[str, ...]) -> None:
        datapath = self.c.datapath
        if datapath is None:  # pragma: no cover - no datapath, no such suspects
            return
        if kind == "netns":
            await datapath.remove_namespace(key[0])
        elif kind == "tap":
            await datapath.unplug_tap(*key)
        elif kind == "dnsmasq":
            await datapath.stop_stray_dnsmasq(int(key[0]))
        else:
            await datapath.remove_stray_dir(Path(key[0]))

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
