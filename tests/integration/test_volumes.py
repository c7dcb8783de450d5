"""Cinder's part on the real apiserver: Volumes become qcow2 disks on the backend (real
qemu-img), attach is a compare-and-swap on the Volume's status, delete waits while in use.
The FakeDriver stands in for the hypervisor; the volume files and API objects are real."""

from __future__ import annotations

import asyncio
import json
import subprocess
import threading

import pytest
from kubernetes import client
from kubernetes_asyncio.config import new_client_from_config

from kubenova.kube.client import Objects
from kubenova.tools import find_tool
from kubenova.volume.attachments import Attached, AttachError, Attachments
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


def conditions(cloud, name: str) -> dict[str, tuple[str, str]]:
    """type -> (status, reason)"""
    status = (volume(cloud, name) or {}).get("status") or {}
    return {c["type"]: (c["status"], c["reason"]) for c in status.get("conditions") or []}


def in_error(cloud, name: str):
    status = (volume(cloud, name) or {}).get("status") or {}
    return status if status.get("phase") == "error" else None


def test_a_lost_disk_is_an_error_never_an_empty_disk(cloud, fake_operator, kubectl):
    """The disk file of a usable volume is deleted: on an attach, on the periodic disk check
    (while attached) and on the operator's restart the volume goes to error with Failed=True,
    and no disk is made in its place."""
    cloud.node("a")
    backend = fake_operator.state_dir / "volumes"
    uids = {name: make_volume(cloud, name) for name in ("gone", "held", "restart", "kept")}
    assert conditions(cloud, "kept") == {
        "Ready": ("True", "Available"),
        "Failed": ("False", "NoError"),
    }
    wait = ["wait", "-n", cloud.ns, "--timeout=30s"]
    assert kubectl(*wait, "--for=condition=Ready", "volume/kept").returncode == 0

    # attached while its disk goes: the periodic check finds it, the attachment stays recorded
    cloud.instance("user", spec={"volumes": [{"volume": "held"}]})
    assert cloud.settled("user")["vmState"] == "ACTIVE"
    (backend / f"{uids['held']}.qcow2").unlink()

    # an attach finds the missing disk at once
    (backend / f"{uids['gone']}.qcow2").unlink()
    cloud.instance("late", spec={"volumes": [{"volume": "gone"}]})
    fault = cloud.settled("late")["fault"]
    assert fault["code"] == 400, fault
    assert fault["message"].startswith("Volume gone is error, not available: the volume's disk")
    status = in_error(cloud, "gone")
    assert status and "is missing from the backend" in status["message"]
    assert conditions(cloud, "gone") == {
        "Ready": ("False", "DiskMissing"),
        "Failed": ("True", "DiskMissing"),
    }
    assert kubectl(*wait, "--for=condition=Failed", "volume/gone").returncode == 0

    held = wait_for(lambda: in_error(cloud, "held"), 60, "the disk check to find held's loss")
    assert (held["attachedTo"], held["attachedToUid"]) == (
        "user",
        cloud.get("user")["metadata"]["uid"],
    )
    cloud.delete("user")
    wait_for(lambda: not in_error(cloud, "held").get("attachedTo"), 30, "user to let go of held")
    assert in_error(cloud, "held")["phase"] == "error"

    # a restart (a wiped state dir looks the same to a volume) finds the loss on resume
    (backend / f"{uids['restart']}.qcow2").unlink()
    fake_operator.restart()
    wait_for(lambda: in_error(cloud, "restart"), 60, "the restarted operator to find the loss")
    assert phase(cloud, "kept") == "available"
    for name in ("gone", "held", "restart"):
        assert not (backend / f"{uids[name]}.qcow2").exists(), f"{name} was made again"
    assert (backend / f"{uids['kept']}.qcow2").is_file()

    # a volume in error can still be deleted (its quota given back)
    cloud.delete("gone", "volumes")
    wait_for(lambda: volume(cloud, "gone") is None, 30, "the volume in error to be deleted")


def test_two_instances_attaching_one_volume_at_once(cloud, fake_operator):
    """Two builds reach the attach of one volume together: exactly one takes it, the other
    ends in ERROR with a fault naming the winner."""
    cloud.node("a", cpu="8")
    make_volume(cloud, "shared")
    spec = {"volumes": [{"volume": "shared"}]}
    both = [
        threading.Thread(target=cloud.instance, args=(name,), kwargs={"spec": spec})
        for name in ("left", "right")
    ]
    for thread in both:
        thread.start()
    for thread in both:
        thread.join()
    states = {name: cloud.settled(name) for name in ("left", "right")}
    winners = [n for n, s in states.items() if s["vmState"] == "ACTIVE"]
    assert len(winners) == 1, states
    (winner,) = winners
    (loser,) = set(states) - {winner}
    fault = states[loser]["fault"]
    assert (fault["code"], fault["message"]) == (
        409,
        f"Volume shared is in use by instance {winner}",
    )
    status = volume(cloud, "shared")["status"]
    assert (status["phase"], status["attachedTo"]) == ("in-use", winner)
    assert status["attachedToUid"] == cloud.get(winner)["metadata"]["uid"]


class RacingObjects(Objects):
    """The real API, but the first read of each of `racers` callers waits for the others: all
    of them decide on the same resourceVersion, so their writes race for real."""

    def __init__(self, api, racers: int) -> None:
        super().__init__(api)
        self.barrier = asyncio.Barrier(racers)
        self.first = set()

    async def find(self, plural, name, namespace=None):
        found = await super().find(plural, name, namespace)
        task = asyncio.current_task()
        if task not in self.first:
            self.first.add(task)
            await self.barrier.wait()
        return found


def test_compare_and_swap_attach_has_exactly_one_winner(cloud, fake_operator, cluster):
    """Attachments.attach from two callers that both read the volume available: one CAS wins,
    the other re-reads and is refused with the winner's name; the status says the winner."""
    make_volume(cloud, "contested")

    async def race():
        api = await new_client_from_config(config_file=str(cluster.kubeconfig))
        try:
            attachments = Attachments(RacingObjects(api, 2))
            attempts = [
                attachments.attach(cloud.ns, "contested", name, f"uid-{name}", "host-x")
                for name in ("alpha", "beta")
            ]
            return await asyncio.gather(*attempts, return_exceptions=True)
        finally:
            await api.close()

    results = asyncio.run(race())
    won = [r for r in results if isinstance(r, Attached)]
    lost = [r for r in results if isinstance(r, AttachError)]
    assert len(won) == 1 and len(lost) == 1, results
    status = volume(cloud, "contested")["status"]
    winner = status["attachedTo"]
    assert winner in ("alpha", "beta") and status["attachedToUid"] == f"uid-{winner}"
    assert lost[0].code == 409
    assert str(lost[0]) == f"Volume contested is in use by instance {winner}"
    assert conditions(cloud, "contested")["Ready"] == ("True", "InUse")
