"""Volumes are durable or loudly lost, on real QEMU: a marker written to a volume by one
instance's guest is read back by another instance's guest after the operator was SIGKILLed and
started again; a volume whose disk file was deleted, or whose operator lost its whole state
directory, goes to error (condition Failed) and is never made again as an empty disk.

The guest runs user-data that is a script (hack/guest/init); the volume is its /dev/vdc (root
disk, then the NoCloud seed, then the volumes)."""

from __future__ import annotations

import json
import shutil
import uuid

import pytest
from kubernetes import client

from kubenova import GROUP, VERSION
from tests.e2e.conftest import HOST, session_qemus
from tests.kit import node_ready, wait_for

pytestmark = pytest.mark.e2e

WRITE = """#!/bin/sh
printf '%s\\n' {marker} | dd of=/dev/vdc bs=512 count=1 conv=sync,fsync 2>/dev/null &&
  echo "kubenova-test wrote {marker}"
"""
READ = """#!/bin/sh
echo "kubenova-test read [$(dd if=/dev/vdc bs=512 count=1 2>/dev/null | tr -d '\\000' | head -n 1)]"
"""


class Volumes:
    def __init__(self, api, namespace: str, operator) -> None:
        self.custom = client.CustomObjectsApi(api)
        self.ns, self.operator, self.api = namespace, operator, api

    def create(self, plural: str, name: str, spec: dict) -> dict:
        kind = {"volumes": "Volume", "instances": "Instance"}[plural]
        body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": kind, "metadata": {"name": name}}
        return self.custom.create_namespaced_custom_object(
            GROUP, VERSION, self.ns, plural, {**body, "spec": spec}
        )

    def get(self, plural: str, name: str) -> dict | None:
        try:
            return self.custom.get_namespaced_custom_object(GROUP, VERSION, self.ns, plural, name)
        except client.ApiException as err:
            if err.status == 404:
                return None
            raise

    def status(self, plural: str, name: str) -> dict:
        return (self.get(plural, name) or {}).get("status") or {}

    def conditions(self, name: str) -> dict[str, str]:
        return {c["type"]: c["status"] for c in self.status("volumes", name).get("conditions", [])}

    def disk(self, uid: str):
        return self.operator.state_dir / "volumes" / f"{uid}.qcow2"

    def boot_with(self, name: str, volume: str, user_data: str) -> dict:
        """An instance with the volume and user-data, once it settled (ACTIVE or ERROR)."""
        spec = {
            "flavor": "m1.tiny",
            "image": "busybox",
            "volumes": [{"volume": volume}],
            "userData": user_data,
        }
        self.create("instances", name, spec)

        def settled():
            status = self.status("instances", name)
            return status if status.get("vmState") in ("ACTIVE", "ERROR") else None

        return wait_for(settled, 180, f"{name} to settle")

    def console_line(self, name: str, prefix: str) -> str:
        """The first console line of instance `name` that starts with `prefix`."""
        uid = self.get("instances", name)["metadata"]["uid"]
        console = self.operator.state_dir / HOST / "instances" / uid / "console.log"

        def line():
            text = console.read_text(errors="replace") if console.exists() else ""
            return next((x.strip() for x in text.splitlines() if x.startswith(prefix)), None)

        return wait_for(line, 60, f"{prefix!r} on {name}'s console")

    def delete(self, plural: str, name: str) -> None:
        self.custom.delete_namespaced_custom_object(GROUP, VERSION, self.ns, plural, name)
        wait_for(lambda: self.get(plural, name) is None, 60, f"{name} to be deleted")

    def restart_operator(self, kill: bool) -> None:
        runs = self.operator.log.read_text(errors="replace").count("kubenova operator up")
        self.operator.restart(kill=kill)
        wait_for(
            lambda: (
                self.operator.log.read_text(errors="replace").count("kubenova operator up") > runs
            ),
            60,
            "the operator to start again",
        )
        wait_for(lambda: node_ready(self.api, HOST), 60, f"{HOST} to be Ready")


@pytest.fixture
def volumes(operator, boot, api, namespace) -> Volumes:
    return Volumes(api, namespace, operator)


def available(volumes: Volumes, name: str) -> bool:
    return volumes.status("volumes", name).get("phase") == "available"


def test_data_survives_an_operator_restart_and_a_lost_disk_is_an_error(volumes):
    marker = f"kubenova-marker-{uuid.uuid4().hex[:12]}"
    uid = volumes.create("volumes", "data", {"sizeGiB": 1})["metadata"]["uid"]
    wait_for(lambda: available(volumes, "data"), 60, "the volume to be available")
    assert volumes.conditions("data") == {"Ready": "True", "Failed": "False"}
    disk = volumes.disk(uid)

    # one instance's guest writes the marker through the volume
    status = volumes.boot_with("writer", "data", WRITE.format(marker=marker))
    assert status["vmState"] == "ACTIVE", status.get("fault")
    assert volumes.status("volumes", "data")["phase"] == "in-use"
    writer_uid = volumes.get("instances", "writer")["metadata"]["uid"]
    # the teardown's census of this session's qemu processes sees the VM (and so would a probe)
    assert [c for c in session_qemus().values() if writer_uid in c], session_qemus()
    assert volumes.console_line("writer", "kubenova-test wrote") == f"kubenova-test wrote {marker}"
    volumes.delete("instances", "writer")
    assert available(volumes, "data")
    before = disk.stat()
    accel_cache = volumes.operator.state_dir / HOST / "accel.json"
    probed = json.loads(accel_cache.read_text())
    assert probed["accelerator"] in ("kvm", "tcg")
    log_before = len(volumes.operator.log.read_text(errors="replace"))

    # the operator dies (SIGKILL) and comes back; another instance's guest reads the marker
    volumes.restart_operator(kill=True)
    assert available(volumes, "data") and volumes.conditions("data")["Ready"] == "True"
    status = volumes.boot_with("reader", "data", READ)
    assert status["vmState"] == "ACTIVE", status.get("fault")
    read = volumes.console_line("reader", "kubenova-test read")
    print(f"\nafter a SIGKILL and restart of the operator the guest read: {read}")
    assert read == f"kubenova-test read [{marker}]"
    since_restart = volumes.operator.log.read_text(errors="replace")[log_before:]
    assert f"cached in {accel_cache}" in since_restart, "the restarted operator probed again"
    assert disk.stat().st_ino == before.st_ino, "the disk was made again"
    volumes.delete("instances", "reader")

    # the disk file is deleted under the running operator: the next attach finds it, the
    # volume goes to error, no empty disk appears, the build ends in ERROR saying why
    disk.unlink()
    status = volumes.boot_with("late", "data", READ)
    assert status["vmState"] == "ERROR"
    assert "is missing from the backend: its data is lost" in status["fault"]["message"]
    volume = volumes.status("volumes", "data")
    assert volume["phase"] == "error" and "is missing from the backend" in volume["message"]
    assert volumes.conditions("data") == {"Ready": "False", "Failed": "True"}
    assert not disk.exists()
    print(f"a deleted disk: volume {volume['phase']}: {volume['message']}")
    volumes.delete("instances", "late")


def test_a_wiped_state_dir_turns_volumes_to_error_and_the_operator_works_on(volumes):
    uid = volumes.create("volumes", "kept", {"sizeGiB": 1})["metadata"]["uid"]
    wait_for(lambda: available(volumes, "kept"), 60, "the volume to be available")
    state = volumes.operator.state_dir
    volumes.operator.process.stop()
    shutil.rmtree(state)
    volumes.restart_operator(kill=False)

    def in_error():
        return volumes.status("volumes", "kept").get("phase") == "error"

    wait_for(in_error, 60, "the volume to be in error after the state dir was lost")
    assert volumes.conditions("kept") == {"Ready": "False", "Failed": "True"}
    assert not volumes.disk(uid).exists(), "an empty disk was made in the lost one's place"
    # the operator itself starts over from an empty state dir: a new volume and boot work
    volumes.create("volumes", "fresh", {"sizeGiB": 1})
    wait_for(lambda: available(volumes, "fresh"), 60, "a new volume to be available")
    status = volumes.boot_with("after", "fresh", READ)
    assert status["vmState"] == "ACTIVE", status.get("fault")
    assert volumes.console_line("after", "kubenova-test read") == "kubenova-test read []"
    volumes.delete("instances", "after")
