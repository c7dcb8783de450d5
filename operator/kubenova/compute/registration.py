"""Registers an embedded compute host as a Node with a Ready heartbeat, as nova-compute
registers its compute node and reports in through the service heartbeat.

The liveness signal is a Lease in kube-node-lease renewed every few seconds (what kubelets do);
the Node's Ready condition carries a slower heartbeat.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import aiohttp
from kubernetes_asyncio import client

from kubenova.kube.client import ApiException
from kubenova.scheduler.host_state import ZONE_LABEL
from kubenova.timestamps import iso, now

log = logging.getLogger("kubenova.compute")
HOST_LABEL = "compute.kubenova.io/host"
LEASE_NAMESPACE = "kube-node-lease"
LEASE_SECONDS = 40


@dataclass(frozen=True)
class HostCapacity:
    vcpus: int
    ram_mib: int
    disk_gib: int

    @classmethod
    def of_machine(cls, state_dir: Path, share: int = 1) -> HostCapacity:
        """This machine's CPUs, memory and free disk, split evenly `share` ways."""
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        disk = shutil.disk_usage(state_dir).free
        return cls(
            max(1, (os.cpu_count() or 1) // share),
            pages // (1024 * 1024) // share,
            disk // (1024**3) // share,
        )


def node_body(name: str, capacity: HostCapacity, zone: str, hypervisor: str) -> dict:
    resources = {
        "cpu": str(capacity.vcpus),
        "memory": f"{capacity.ram_mib}Mi",
        "ephemeral-storage": f"{capacity.disk_gib}Gi",
        "pods": "0",  # kubenova hosts run VMs, not pods
    }
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                ZONE_LABEL: zone,
                HOST_LABEL: "true",
                "compute.kubenova.io/hypervisor": hypervisor,
            },
        },
        "status": {"capacity": resources, "allocatable": resources},
    }


def ready_condition(ready: bool, at: datetime) -> dict:
    stamp = iso(at)
    return {
        "type": "Ready",
        "status": "True" if ready else "False",
        "reason": "KubenovaComputeReady" if ready else "KubenovaComputeStopped",
        "message": "kubenova compute service is up" if ready else "compute service stopped",
        "lastHeartbeatTime": stamp,
        "lastTransitionTime": stamp,
    }


class HostRegistration:
    """Keeps one Node and its Lease alive while the compute host runs."""

    def __init__(
        self,
        api: client.ApiClient,
        name: str,
        capacity: HostCapacity,
        zone: str = "nova",
        hypervisor: str = "qemu",
        interval: float = 10.0,
    ) -> None:
        self.core = client.CoreV1Api(api)
        self.coordination = client.CoordinationV1Api(api)
        self.name, self.capacity, self.zone = name, capacity, zone
        self.hypervisor, self.interval = hypervisor, interval

    async def register(self) -> None:
        body = node_body(self.name, self.capacity, self.zone, self.hypervisor)
        status = body.pop("status")
        try:
            await self.core.create_node(body)
            log.info("registered compute host %s (%s)", self.name, self.capacity)
        except ApiException as err:
            if err.status != 409:
                raise
            await self.core.patch_node(
                self.name, {"metadata": {"labels": body["metadata"]["labels"]}}
            )
        status["conditions"] = [ready_condition(True, now())]
        await self.core.patch_node_status(self.name, {"status": status})
        await self._renew_lease()

    async def _renew_lease(self) -> None:
        renewed = iso(now())
        spec = {
            "holderIdentity": self.name,
            "leaseDurationSeconds": LEASE_SECONDS,
            "renewTime": renewed,
        }
        try:
            await self.coordination.patch_namespaced_lease(
                self.name, LEASE_NAMESPACE, {"spec": spec}
            )
        except ApiException as err:
            if err.status != 404:
                raise
            await self.coordination.create_namespaced_lease(
                LEASE_NAMESPACE,
                {
                    "metadata": {"name": self.name, "namespace": LEASE_NAMESPACE},
                    "spec": {**spec, "acquireTime": renewed},
                },
            )

    async def heartbeat_forever(self) -> None:
        beats = 0
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self._renew_lease()
                beats += 1
                if beats % 4 == 0:
                    await self.core.patch_node_status(
                        self.name, {"status": {"conditions": [ready_condition(True, now())]}}
                    )
            except ApiException as err:  # keep beating; the apiserver may be restarting
                log.warning("heartbeat of %s failed: %s", self.name, err.reason)
            except (OSError, aiohttp.ClientError, TimeoutError) as err:
                # a dropped connection (ServerDisconnectedError is no OSError): a heartbeat task
                # that died here would leave a live host looking down for good
                log.warning("heartbeat of %s failed: %r", self.name, err)

    async def mark_stopped(self) -> None:
        await self.core.patch_node_status(
            self.name, {"status": {"conditions": [ready_condition(False, now())]}}
        )
