"""A port release deletes only the Ports it listed, by uid: an address freed meanwhile and
taken by another instance (a new Port under the same name) stays with its new owner."""

from __future__ import annotations

import asyncio

import pytest
from kubernetes import client
from kubernetes_asyncio.config import new_client_from_config

from kubenova import GROUP, VERSION
from kubenova.kube.client import Objects
from kubenova.network.ipam import port_name
from kubenova.network.ports import INSTANCE_LABEL, Owner, Ports

pytestmark = pytest.mark.integration


def port_body(name: str, owner_uid: str) -> dict:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Port",
        "metadata": {"name": name, "labels": {INSTANCE_LABEL: owner_uid}},
        "spec": {
            "network": "lan",
            "ipAddress": "10.9.0.5",
            "macAddress": "fa:16:3e:00:00:05",
            "deviceId": "x",
        },
    }


class StaleList(Ports):
    """Ports whose listing is followed, before the release deletes anything, by the address
    changing hands: the listed Port is deleted and another instance's created in its name."""

    def __init__(self, objects: Objects, swap) -> None:
        super().__init__(objects)
        self.swap = swap

    async def of_instance(self, owner):
        listed = await super().of_instance(owner)
        await self.swap()
        return listed


def test_release_leaves_a_port_reborn_under_the_same_name(api, namespace, crds, cluster):
    custom = client.CustomObjectsApi(api)
    name = port_name("lan", "10.9.0.5")
    custom.create_namespaced_custom_object(
        GROUP, VERSION, namespace, "ports", port_body(name, "uid-old")
    )

    async def swap():
        custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, "ports", name)
        custom.create_namespaced_custom_object(
            GROUP, VERSION, namespace, "ports", port_body(name, "uid-new")
        )

    async def release():
        kube = await new_client_from_config(config_file=str(cluster.kubeconfig))
        try:
            ports = StaleList(Objects(kube), swap)
            return await ports.release(Owner(namespace, "old", "uid-old"))
        finally:
            await kube.close()

    assert asyncio.run(release()) == ["10.9.0.5"]
    survivor = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "ports", name)
    assert survivor["metadata"]["labels"][INSTANCE_LABEL] == "uid-new"


def test_release_deletes_the_ports_it_listed(api, namespace, crds, cluster):
    custom = client.CustomObjectsApi(api)
    name = port_name("lan", "10.9.0.5")
    custom.create_namespaced_custom_object(
        GROUP, VERSION, namespace, "ports", port_body(name, "uid-a")
    )

    async def release():
        kube = await new_client_from_config(config_file=str(cluster.kubeconfig))
        try:
            return await Ports(Objects(kube)).release(Owner(namespace, "a", "uid-a"))
        finally:
            await kube.close()

    assert asyncio.run(release()) == ["10.9.0.5"]
    items = custom.list_namespaced_custom_object(GROUP, VERSION, namespace, "ports")["items"]
    assert items == []
