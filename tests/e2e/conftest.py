"""End-to-end fixtures: the operator as a real process, booting real QEMU guests (TCG here)."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from kubenova import GROUP, VERSION
from tests.kit import Operator, node_ready, running_operator, wait_for
from tests.proc import command_of, running

REPO = Path(__file__).resolve().parents[2]
GUEST = REPO / ".bin" / "guest" / "busybox.qcow2"
HOST = "compute-0"

#: In the environment of every process this session starts, and so of everything they start:
#: the operators, their VMs and their KVM probes, even one left behind with init as its parent.
SESSION_MARKER = "KUBENOVA_E2E_SESSION"
os.environ.setdefault(SESSION_MARKER, uuid.uuid4().hex)


def session_qemus() -> dict[int, str]:
    """pid -> command line of every qemu-system process started under this test session
    (found by the marker in its environment, whatever its parent or arguments)."""
    marker = f"{SESSION_MARKER}={os.environ[SESSION_MARKER]}".encode()
    found = {}
    for environ in Path("/proc").glob("[0-9]*/environ"):
        pid = int(environ.parent.name)
        if not Path(command_of(pid)).name.startswith("qemu-system"):
            continue
        try:
            if marker not in environ.read_bytes().split(b"\0") or not running(pid):
                continue
            cmdline = (environ.parent / "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        found[pid] = cmdline.decode(errors="replace").strip()
    return found


def assert_no_qemu_left(timeout: float = 20.0) -> None:
    """No qemu of any kind (VM, KVM probe, stray) started under the test still runs; one that
    is exiting gets `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while (left := session_qemus()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert left == {}, f"{len(left)} qemu process(es) left: {left}"


@pytest.fixture(scope="module")
def operator(cluster, api, crds, tmp_path_factory) -> Iterator[Operator]:
    """One operator with one embedded QEMU host; at teardown every instance is deleted through
    it and no qemu process may remain."""
    if not GUEST.exists():
        pytest.fail(f"{GUEST} is missing: `make setup` builds it")
    with running_operator(cluster, api, tmp_path_factory.mktemp("operator"), hosts=1) as handle:
        wait_for(lambda: node_ready(api, HOST), 60, f"{HOST} to register")
        yield handle
    assert_no_qemu_left()


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

    def wait_state(
        self,
        name: str,
        vm: str,
        task: str | None = None,
        timeout: float = 120,
        ready: bool = True,
    ) -> dict:
        """The instance once in vm/task; for a resting ACTIVE (task None) also once `Ready`
        (its guest OS is up: ACTIVE alone only says the VM runs), unless ready=False."""
        also_ready = ready and vm == "ACTIVE" and task is None

        def reached():
            obj = self.get(name) or {}
            status = obj.get("status") or {}
            if status.get("vmState") == "ERROR" and vm != "ERROR":
                raise AssertionError(f"{name} went to ERROR: {status.get('fault')}")
            ok = status.get("vmState") == vm and (task is None or status.get("taskState") == task)
            if ok and also_ready:
                ready_cond = next(
                    (c for c in status.get("conditions") or [] if c["type"] == "Ready"), {}
                )
                if ready_cond.get("reason") == "GuestBootTimeout":
                    raise AssertionError(f"{name}: {ready_cond.get('message')}")
                ok = status.get("taskState") is None and ready_cond.get("status") == "True"
            return obj if ok else None

        what = f"{name} to reach {vm}/{task}" + (" and Ready" if also_ready else "")
        return wait_for(reached, timeout, what, interval=0.1)

    def wait_gone(self, name: str, timeout: float = 60) -> None:
        wait_for(lambda: self.get(name) is None, timeout, f"{name} to be deleted")


@pytest.fixture
def boot(api, namespace, guest_image) -> Boot:
    kit = Boot(api, namespace, guest_image)
    kit.flavor()
    kit.image()
    return kit
