"""kwok as a test fixture (operator/kubenova/devcluster/kwok.py runs it): it stands in for the
kubelet of fake Nodes in the pod-lifecycle tests. At teardown it is stopped and the fixture checks
that nothing is left running.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from kubernetes import client

from kubenova.compute.registration import HOST_LABEL
from kubenova.devcluster.kwok import ANNOTATION, Kwok
from kubenova.scheduler.host_state import ZONE_LABEL
from tests.kit import node_ready, wait_for
from tests.proc import wait_gone

KWOK_TEST_LABEL = "kubenova.test/kwok"


@contextlib.contextmanager
def running_kwok(
    kubeconfig: Path, work: Path, hold: Iterable[str] = (), **options
) -> Iterator[Kwok]:
    """kwok against the test apiserver (`options`: Kwok's node, lease_seconds); at exit it is
    stopped and must be gone."""
    kwok = Kwok(kubeconfig, work, hold, **options)
    kwok.start()
    try:
        wait_for(kwok.healthy, 60, "kwok to serve /healthz")
        yield kwok
    finally:
        pid = kwok.pid
        kwok.stop()
        assert pid is None or wait_gone([pid]) == [], "kwok is still running"


def kwok_node(
    api: client.ApiClient,
    name: str,
    zone: str,
    cpu: str = "8",
    memory: str = "16Gi",
    extra: dict[str, str] | None = None,
    **labels: str,
) -> str:
    """A compute Node kwok manages, with its capacity (`extra` adds resources, e.g. a device
    plugin's); waits until kwok has made it Ready."""
    resources = {"cpu": cpu, "memory": memory, "ephemeral-storage": "100Gi", "pods": "110"}
    resources.update(extra or {})
    core = client.CoreV1Api(api)
    core.create_node(
        {
            "metadata": {
                "name": name,
                "annotations": {ANNOTATION: "fake", "node.alpha.kubernetes.io/ttl": "0"},
                "labels": {
                    HOST_LABEL: "true",
                    KWOK_TEST_LABEL: "true",
                    ZONE_LABEL: zone,
                    "kubernetes.io/arch": "amd64",
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/hostname": name,
                    "type": "kwok",
                    **labels,
                },
            },
            # A Node's status may be set at creation: kwok keeps this capacity.
            "status": {"capacity": resources, "allocatable": resources},
        }
    )
    wait_for(lambda: node_ready(api, name), 60, f"kwok to make {name} Ready")
    return name


def delete_kwok_nodes(api: client.ApiClient) -> None:
    client.CoreV1Api(api).delete_collection_node(label_selector=f"{KWOK_TEST_LABEL}=true")


def wait_pod(core: client.CoreV1Api, namespace: str, selector: str, timeout: float = 60):
    """The one pod matching `selector` once it exists."""

    def found():
        pods = core.list_namespaced_pod(namespace, label_selector=selector).items
        return pods[0] if len(pods) == 1 else None

    return wait_for(found, timeout, f"a pod {selector} in {namespace}")


def settle(seconds: float) -> None:
    """Give the operator time to react (or to show that it does not)."""
    time.sleep(seconds)
