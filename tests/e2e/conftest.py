"""End-to-end fixtures: the operator as a real process, booting real QEMU guests (TCG here)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from kubenova import GROUP, VERSION
from kubenova.devcluster.cluster import free_port
from kubenova.devcluster.operator_process import OperatorProcess
from tests.proc import processes_with

REPO = Path(__file__).resolve().parents[2]
GUEST = REPO / ".bin" / "guest" / "busybox.qcow2"
HOST = "compute-0"


@dataclass
class Operator:
    process: OperatorProcess
    state_dir: Path
    log: Path
    metrics_port: int

    def restart(self, kill: bool = False) -> None:
        self.process.kill() if kill else self.process.stop()
        self.process.start()

    def log_tail(self) -> str:
        return self.process.log_tail(60)


def wait_for(predicate, timeout: float, what: str, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def all_instances(api: client.ApiClient) -> list[dict]:
    custom = client.CustomObjectsApi(api)
    return custom.list_cluster_custom_object(GROUP, VERSION, "instances")["items"]


@pytest.fixture(scope="module")
def operator(cluster, api, crds, tmp_path_factory) -> Iterator[Operator]:
    """One operator with one embedded host; at teardown every instance is deleted through it
    and no qemu process may remain."""
    if not GUEST.exists():
        pytest.fail(f"{GUEST} is missing: `make setup` builds it")
    work = tmp_path_factory.mktemp("operator")
    port = free_port()
    process = OperatorProcess(
        cluster.kubeconfig, work / "state", work / "operator.log", hosts=1, metrics_port=port
    )
    process.start()
    handle = Operator(process, work / "state", work / "operator.log", port)
    core = client.CoreV1Api(api)

    def host_ready():
        try:
            node = core.read_node(HOST)
        except client.ApiException:
            return False
        return any(c.type == "Ready" and c.status == "True" for c in node.status.conditions or [])

    wait_for(host_ready, 60, f"{HOST} to register")
    yield handle
    custom = client.CustomObjectsApi(api)
    for inst in all_instances(api):
        meta = inst["metadata"]
        custom.delete_namespaced_custom_object(
            GROUP, VERSION, meta["namespace"], "instances", meta["name"]
        )
    try:
        wait_for(lambda: not all_instances(api), 120, "instances to be deleted")
    finally:
        process.stop()
    assert processes_with("qemu-system", str(handle.state_dir)) == []


@pytest.fixture(scope="module")
def guest_image() -> dict:
    return {"source": str(GUEST), "checksum": Path(f"{GUEST}.sha256").read_text().split()[0]}


class Boot:
    """Creates and reads the objects of one boot test in its namespace."""

    def __init__(self, api: client.ApiClient, namespace: str, guest: dict) -> None:
        self.custom = client.CustomObjectsApi(api)
        self.namespace = namespace
        self.guest = guest

    def flavor(self) -> None:
        body = yaml.safe_load((REPO / "examples" / "flavor.yaml").read_text())
        try:
            self.custom.create_cluster_custom_object(GROUP, VERSION, "flavors", body)
        except client.ApiException as err:
            if err.status != 409:  # shared by the tests of the session
                raise

    def image(self, name: str = "busybox", **overrides: str) -> None:
        self.custom.create_namespaced_custom_object(
            GROUP,
            VERSION,
            self.namespace,
            "images",
            {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "Image",
                "metadata": {"name": name},
                "spec": {**self.guest, **overrides},
            },
        )

    def instance(self, name: str, image: str = "busybox") -> dict:
        return self.custom.create_namespaced_custom_object(
            GROUP,
            VERSION,
            self.namespace,
            "instances",
            {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "Instance",
                "metadata": {"name": name},
                "spec": {"flavor": "m1.tiny", "image": image},
            },
        )

    def get(self, name: str) -> dict | None:
        try:
            return self.custom.get_namespaced_custom_object(
                GROUP, VERSION, self.namespace, "instances", name
            )
        except client.ApiException as err:
            if err.status == 404:
                return None
            raise

    def delete(self, name: str) -> None:
        self.custom.delete_namespaced_custom_object(
            GROUP, VERSION, self.namespace, "instances", name
        )

    def wait_state(self, name: str, vm: str, task: str | None = None, timeout: float = 120) -> dict:
        def reached():
            obj = self.get(name) or {}
            status = obj.get("status") or {}
            if status.get("vmState") == "ERROR" and vm != "ERROR":
                raise AssertionError(f"{name} went to ERROR: {status.get('fault')}")
            ok = status.get("vmState") == vm and (task is None or status.get("taskState") == task)
            return obj if ok else None

        return wait_for(reached, timeout, f"{name} to reach {vm}/{task}", interval=0.1)

    def wait_gone(self, name: str, timeout: float = 60) -> None:
        wait_for(lambda: self.get(name) is None, timeout, f"{name} to be deleted")


@pytest.fixture
def boot(api, namespace, guest_image) -> Boot:
    kit = Boot(api, namespace, guest_image)
    kit.flavor()
    kit.image()
    return kit
