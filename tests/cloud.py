"""A test's own slice of the cloud: Nodes in its own zone, a flavor, an image, instances, and
(for tenant services) networks, keypairs and volumes, all made through the real API."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path

from kubernetes import client

from kubenova import GROUP, VERSION
from kubenova.compute.registration import HOST_LABEL
from kubenova.scheduler.host_state import ZONE_LABEL
from tests.kit import wait_for

TEST_LABEL = "kubenova.test/scheduler"
UNLIMITED = {"instances": -1, "cores": -1, "ramMiB": -1, "volumes": -1, "gigabytes": -1}


class Cloud:
    """Nodes, a flavor, an image and instances of one test, all in its own zone."""

    def __init__(self, api, namespace: str, work: Path, quota: dict | None = UNLIMITED) -> None:
        """`quota`: the namespace's Quota spec (default: no limits, so that tests of other
        parts are not cut short by Nova's default of 10 instances); None: no Quota object."""
        self.api, self.ns = api, namespace
        self.core, self.custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
        if quota is not None:
            self.create("quotas", "Quota", "default", quota)
        disk = self.disk = work / "tiny.raw"
        disk.write_bytes(b"\0" * 4096)
        self.custom.create_namespaced_custom_object(
            GROUP,
            VERSION,
            namespace,
            "images",
            {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "Image",
                "metadata": {"name": "tiny"},
                "spec": {
                    "source": str(disk),
                    "diskFormat": "raw",
                    "checksum": hashlib.sha256(disk.read_bytes()).hexdigest(),
                },
            },
        )
        self.flavor_name = self.flavor()
        self._fresh_nodes = False

    def node(
        self,
        suffix: str,
        cpu: str = "4",
        memory: str = "8Gi",
        disk: str = "100Gi",
        ready: bool = True,
        unschedulable: bool = False,
        zone: str | None = None,
        **labels: str,
    ) -> str:
        name = f"{self.ns}-{suffix}"
        self.core.create_node(
            {
                "metadata": {
                    "name": name,
                    "labels": {
                        HOST_LABEL: "true",
                        TEST_LABEL: "true",
                        ZONE_LABEL: zone or self.ns,
                        "kubernetes.io/arch": "amd64",
                        **labels,
                    },
                },
                "spec": {"unschedulable": unschedulable},
            }
        )
        resources = {"cpu": cpu, "memory": memory, "ephemeral-storage": disk, "pods": "110"}
        self.core.patch_node_status(
            name,
            {
                "status": {
                    "capacity": resources,
                    "allocatable": resources,
                    "conditions": [
                        {
                            "type": "Ready",
                            "status": "True" if ready else "False",
                            "reason": "Test",
                            "message": "test node",
                        }
                    ],
                }
            },
        )
        self._fresh_nodes = True
        return name

    def flavor(self, vcpus: int = 1, ram: int = 512, **extra_specs: str) -> str:
        name = f"{self.ns}-{uuid.uuid4().hex[:6]}"
        self.custom.create_cluster_custom_object(
            GROUP,
            VERSION,
            "flavors",
            {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "Flavor",
                "metadata": {"name": name},
                "spec": {"vcpus": vcpus, "ramMiB": ram, "diskGiB": 1, "extraSpecs": extra_specs},
            },
        )
        return name

    def group(self, name: str, policy: str) -> str:
        self.custom.create_namespaced_custom_object(
            GROUP,
            VERSION,
            self.ns,
            "servergroups",
            {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "ServerGroup",
                "metadata": {"name": name},
                "spec": {"policy": policy},
            },
        )
        return name

    def instance(
        self,
        name: str,
        flavor: str | None = None,
        zone: str | None = None,
        spec: dict | None = None,
        **hints,
    ) -> None:
        spec = {
            "flavor": flavor or self.flavor_name,
            "image": "tiny",
            "availabilityZone": zone or self.ns,
            **(spec or {}),
        }
        if hints:
            spec["schedulerHints"] = hints
        self.custom.create_namespaced_custom_object(
            GROUP,
            VERSION,
            self.ns,
            "instances",
            {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "Instance",
                "metadata": {"name": name},
                "spec": spec,
            },
        )

    def create(self, plural: str, kind: str, name: str, spec: dict) -> dict:
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": kind,
            "metadata": {"name": name},
            "spec": spec,
        }
        return self.custom.create_namespaced_custom_object(GROUP, VERSION, self.ns, plural, body)

    def network(self, name: str, cidr: str, **spec) -> dict:
        return self.create("networks", "Network", name, {"cidr": cidr, **spec})

    def list(self, plural: str) -> list[dict]:
        return self.custom.list_namespaced_custom_object(GROUP, VERSION, self.ns, plural)["items"]

    def delete(self, name: str, plural: str = "instances") -> None:
        self.custom.delete_namespaced_custom_object(GROUP, VERSION, self.ns, plural, name)

    def get(self, name: str) -> dict:
        return self.custom.get_namespaced_custom_object(GROUP, VERSION, self.ns, "instances", name)

    def settled(self, name: str, timeout: float = 60) -> dict:
        """The instance's status once ACTIVE or ERROR."""

        def done():
            status = self.get(name).get("status") or {}
            return status if status.get("vmState") in ("ACTIVE", "ERROR") else None

        return wait_for(done, timeout, f"{name} to settle", interval=0.1)

    def host_of(self, name: str) -> str:
        status = self.settled(name)
        assert status["vmState"] == "ACTIVE", status.get("fault")
        return status["host"]


def remove_test_hosts(api) -> None:
    """Delete the Nodes the tests made and the claims on them (namespaces start with t-)."""
    client.CoreV1Api(api).delete_collection_node(label_selector=f"{TEST_LABEL}=true")
    custom = client.CustomObjectsApi(api)
    for rp in custom.list_cluster_custom_object(GROUP, VERSION, "resourceproviders")["items"]:
        if rp["metadata"]["name"].startswith("t-"):
            custom.delete_cluster_custom_object(
                GROUP, VERSION, "resourceproviders", rp["metadata"]["name"]
            )
