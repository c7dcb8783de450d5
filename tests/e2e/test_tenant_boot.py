"""An instance with two networks, a keypair, user-data and a volume boots on real QEMU; the guest
reports on its serial console what it was given (addresses, key fingerprint, user-data digest),
and deleting it leaves no Port, overlay, seed or attachment behind."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pytest
from kubernetes import client

from kubenova import GROUP, VERSION
from tests.e2e.conftest import HOST
from tests.kit import wait_for

pytestmark = pytest.mark.e2e

PUBLIC_KEY = (
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl alice@lab"
)
FINGERPRINT = "SHA256:+DiY3wvvV6TuJJhbpZisF/zLDA0zPMSvHdkr4UvCOqU"  # ssh-keygen -l of the key
USER_DATA = "#cloud-config\nwrite_files:\n- path: /etc/motd\n  content: hello from kubenova\n"


def ping(netns: str, address: str) -> bool:
    """One ping from inside a Network's namespace (the host side of its bridge)."""
    argv = ["nsenter", f"--net=/run/netns/{netns}", "--", "busybox", "ping", "-c1", "-W1", address]
    return subprocess.run(argv, capture_output=True, timeout=10).returncode == 0


def test_two_networks_keypair_user_data_and_volume(operator, boot, api, namespace):
    custom = client.CustomObjectsApi(api)

    def create(plural: str, kind: str, name: str, spec: dict) -> dict:
        body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": kind, "metadata": {"name": name}}
        return custom.create_namespaced_custom_object(
            GROUP, VERSION, namespace, plural, {**body, "spec": spec}
        )

    def get(plural: str, name: str) -> dict:
        return custom.get_namespaced_custom_object(GROUP, VERSION, namespace, plural, name)

    def ports() -> list[dict]:
        return custom.list_namespaced_custom_object(GROUP, VERSION, namespace, "ports")["items"]

    create("networks", "Network", "front", {"cidr": "192.168.50.0/24", "gateway": "192.168.50.1"})
    create("networks", "Network", "back", {"cidr": "10.60.0.0/16"})
    create("keypairs", "Keypair", "alice", {"publicKey": PUBLIC_KEY})
    volume_uid = create("volumes", "Volume", "data", {"sizeGiB": 1})["metadata"]["uid"]
    disk = operator.state_dir / "volumes" / f"{volume_uid}.qcow2"
    wait_for(lambda: get("volumes", "data").get("status", {}).get("phase") == "available", 60,
             "the volume to be available")  # fmt: skip
    assert disk.is_file()
    assert get("keypairs", "alice")["status"]["fingerprint"] == FINGERPRINT

    spec = {
        "flavor": "m1.tiny",
        "image": "busybox",
        "networks": [{"network": "front", "fixedIp": "192.168.50.10"}, {"network": "back"}],
        "keyName": "alice",
        "userData": USER_DATA,
        "volumes": [{"volume": "data"}],
    }
    uid = create("instances", "Instance", "tenant-vm", spec)["metadata"]["uid"]
    status = boot.wait_state("tenant-vm", "ACTIVE", timeout=180)["status"]

    addresses = {a["network"]: a for a in status["addresses"]}
    assert addresses["front"]["ip"] == "192.168.50.10" and addresses["back"]["ip"] == "10.60.0.1"
    held = {p["spec"]["network"]: p for p in ports()}
    assert {n: (p["spec"]["ipAddress"], p["spec"]["macAddress"]) for n, p in held.items()} == {
        n: (a["ip"], a["mac"]) for n, a in addresses.items()
    }
    bindings = {}
    for network, port in held.items():
        port_status = port["status"]
        assert (port_status["phase"], port_status["host"]) == ("ACTIVE", HOST), port_status
        binding = port_status["binding"]  # the tap on the Network's bridge, in its namespace
        assert binding["host"] == HOST and binding["tap"].startswith("tap"), binding
        assert binding["bridge"].startswith("brq") and binding["netns"].startswith("kubenova-")
        bindings[network] = binding
    assert bindings["front"]["netns"] != bindings["back"]["netns"]
    # Each address answers from its own Network's namespace (a qemu with NICs on two
    # Networks holds each tap by fd), and from nowhere else.
    instance_dir = operator.state_dir / HOST / "instances" / uid
    for network, ip in (("front", "192.168.50.10"), ("back", "10.60.0.1")):
        netns = bindings[network]["netns"]
        try:
            wait_for(lambda n=netns, a=ip: ping(n, a), 60, f"{ip} to answer on {network}")
        except AssertionError:
            print((instance_dir / "console.log").read_text(errors="replace")[-3000:])
            for log in Path("/run/kubenova").glob(f"*/{netns}/dnsmasq.log"):
                print(log.read_text(errors="replace")[-3000:])
            raise
    assert not ping(bindings["back"]["netns"], "192.168.50.10")

    key_line = f"kubenova-guest key ssh-ed25519 {FINGERPRINT}"
    # the guest prints its key after its addresses: the pings can come first under load
    wait_for(
        lambda: key_line in (instance_dir / "console.log").read_text(errors="replace"),
        60,
        "the guest's key line on its console",
    )
    console = (instance_dir / "console.log").read_text(errors="replace")
    print("\n" + "\n".join(line for line in console.splitlines() if "kubenova-guest" in line))
    front, back = addresses["front"], addresses["back"]
    # by DHCP from the Networks' dnsmasq: the host serves the Ports (network-config: dhcp4)
    assert f"mac={front['mac']} ip=192.168.50.10/24 dhcp" in console
    assert f"mac={back['mac']} ip=10.60.0.1/16 dhcp" in console
    assert f"kubenova-guest key ssh-ed25519 {FINGERPRINT}" in console
    digest = hashlib.sha256(USER_DATA.encode()).hexdigest()
    assert f"kubenova-guest user-data bytes={len(USER_DATA)} sha256={digest}" in console
    assert f"kubenova-guest booted hostname=tenant-vm instance-id={uid}" in console

    volume = get("volumes", "data")["status"]
    assert (volume["phase"], volume["attachedTo"], volume["attachedToUid"]) == (
        "in-use",
        "tenant-vm",
        uid,
    )
    argv = json.loads((instance_dir / "launch.json").read_text())
    assert any(str(disk) in arg for arg in argv), "the volume is not on qemu's command line"

    boot.delete("tenant-vm")
    boot.wait_gone("tenant-vm")
    assert ports() == []
    assert not instance_dir.exists()  # overlay, seed and console log gone with it
    volume = get("volumes", "data")["status"]
    assert volume["phase"] == "available" and not volume.get("attachedTo")
    assert disk.is_file()  # the volume outlives the instance

    custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, "volumes", "data")
    wait_for(lambda: not disk.exists(), 30, "the volume's disk to be removed")
