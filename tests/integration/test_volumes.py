"""Cinder's part on the real apiserver: Volumes become qcow2 disks on the backend (real
qemu-img), attach is a compare-and-swap on the Volume's status, delete waits while in use.
The FakeDriver stands in for the hypervisor; the volume files and API objects are real."""

from __future__ import annotations

import json
import subprocess

import pytest
from kubernetes import client

from kubenova.tools import find_tool
from tests.kit import wait_for

pytestmark = pytest.mark.integration


def volume(cloud, name: str) -> dict | None:
    try:
        return cloud.custom.get_namespaced_custom_object(
            "compute.kubenova.io", "v1alpha1", cloud.ns, "volumes", name
        )
    except client.ApiException as err:
        if err.status == 404:
            return None
        raise


def phase(cloud, name: str) -> str | None:
    return ((volume(cloud, name) or {}).get("status") or {}).get("phase")


def make_volume(cloud, name: str, **spec) -> str:
    uid = cloud.create("volumes", "Volume", name, {"sizeGiB": 1, **spec})["metadata"]["uid"]
    wait_for(lambda: phase(cloud, name) == "available", 60, f"volume {name} to be available")
    return uid


def test_attach_exclusive_delete_waits_for_detach(cloud, fake_operator):
    cloud.node("a")
    backend = fake_operator.state_dir / "volumes"
    uid = make_volume(cloud, "data")
    assert (backend / f"{uid}.qcow2").is_file()
    make_volume(cloud, "logs", sourceImage="tiny")

    cloud.instance("one", spec={"volumes": [{"volume": "data"}, {"volume": "logs"}]})
    assert cloud.settled("one")["vmState"] == "ACTIVE"
    for name in ("data", "logs"):
        status = volume(cloud, name)["status"]
        assert (status["phase"], status["attachedTo"]) == ("in-use", "one")

    cloud.instance("two", spec={"volumes": [{"volume": "data"}]})
    fault = cloud.settled("two")["fault"]
    assert fault["message"] == "Volume data is in use by instance one" and fault["code"] == 409
    cloud.instance("three", spec={"volumes": [{"volume": "nope"}]})
    assert cloud.settled("three")["fault"]["message"] == "Volume nope could not be found"

    # In use: the delete is held (finalizer) until the instance lets go of the volume.
    cloud.delete("data", "volumes")
    wait_for(lambda: volume(cloud, "data")["metadata"].get("deletionTimestamp"), 10, "deleting")
    pending = volume(cloud, "data")
    assert pending["status"]["phase"] == "in-use" and (backend / f"{uid}.qcow2").is_file()

    cloud.delete("one")
    wait_for(lambda: volume(cloud, "data") is None, 60, "the detached volume to be deleted")
    assert not (backend / f"{uid}.qcow2").exists()
    assert phase(cloud, "logs") == "available"
    assert not volume(cloud, "logs")["status"].get("attachedTo")


def test_extend_grows_the_disk(cloud, fake_operator):
    uid = make_volume(cloud, "grow")
    disk = fake_operator.state_dir / "volumes" / f"{uid}.qcow2"
    cloud.custom.patch_namespaced_custom_object(
        "compute.kubenova.io", "v1alpha1", cloud.ns, "volumes", "grow", {"spec": {"sizeGiB": 3}}
    )
    wait_for(lambda: virtual_size(disk) == 3 << 30, 30, "the disk to grow to 3 GiB")


def virtual_size(path) -> int:
    info = subprocess.run(
        [find_tool("qemu-img"), "info", "--output=json", "--force-share", str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(info.stdout)["virtual-size"]
