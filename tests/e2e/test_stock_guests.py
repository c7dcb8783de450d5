"""Guests that know nothing of kubenova reach ACTIVE and then Ready through a generic sign that
their OS is up (docs/instances.md, "ACTIVE and Ready"):

- the stock-style busybox guest (`busybox-dhcp.qcow2`: never prints kubenova's own boot line)
  through the Image property `kubenova_guest_booted_regex`;
- the same guest on a Network, with no regex: through its DHCP request for its Port's MAC;
- the Debian 12 cloud image `make setup` builds from Debian's packages, with real cloud-init
  reading the NoCloud seed as it is, through cloud-init's final console line;
- that image on the embedded datapath (a Keypair, user-data, a Network): ssh from inside the
  Network's namespace with the test's own key, two instances pinging each other, and an instance
  on a second Network reaching neither.

Each test prints the times from create to ACTIVE and to Ready. Traffic stays inside the
namespaces the operator made (nsenter into them); nothing touches the machine's interfaces.
"""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest
from kubernetes import client

from kubenova import GROUP, VERSION
from kubenova.timestamps import parse_time
from kubenova.virt.qemu import qga
from tests.e2e.conftest import HOST, REPO
from tests.kit import wait_for

pytestmark = pytest.mark.e2e

GUESTS = REPO / ".bin" / "guest"


def image_of(path: Path) -> dict:
    if not path.exists():
        pytest.fail(f"{path} is missing: `make setup` builds it")
    return {"source": str(path), "checksum": Path(f"{path}.sha256").read_text().split()[0]}


def create(boot, plural: str, kind: str, name: str, spec: dict, cluster: bool = False) -> None:
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": kind,
        "metadata": {"name": name},
        "spec": spec,
    }
    try:
        if cluster:
            boot.custom.create_cluster_custom_object(GROUP, VERSION, plural, body)
        else:
            namespace = boot.namespace
            boot.custom.create_namespaced_custom_object(GROUP, VERSION, namespace, plural, body)
    except client.ApiException as err:
        if err.status != 409:
            raise


def times(obj: dict) -> tuple[float, float]:
    """Seconds from creation to ACTIVE (the VM runs) and to Ready (the guest OS is up)."""
    status = obj["status"]
    created = parse_time(obj["metadata"]["creationTimestamp"])
    active = next(
        e["time"]
        for e in status["phaseTransitionTimestamps"]
        if e["vmState"] == "ACTIVE" and not e.get("taskState")
    )
    return (
        (parse_time(active) - created).total_seconds(),
        (parse_time(status["guestBootedAt"]) - created).total_seconds(),
    )


def test_a_stock_style_guest_is_ready_by_the_images_regex(operator, boot):
    spec = {
        **image_of(GUESTS / "busybox-dhcp.qcow2"),
        "properties": {"kubenova_guest_booted_regex": r"busybox-dhcp guest \S+ ttyS0"},
    }
    create(boot, "images", "Image", "stock-style", spec)
    uid = boot.instance("quiet", image="stock-style")["metadata"]["uid"]
    obj = boot.wait_state("quiet", "ACTIVE", timeout=180)
    status = obj["status"]
    assert status["guestBootSignal"] == "ConsoleRegex"
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert "busybox-dhcp guest quiet ttyS0" in ready["message"]
    console = (operator.state_dir / HOST / "instances" / uid / "console.log").read_text()
    assert "kubenova-guest booted" not in console  # it never says so in our words
    active, up = times(obj)
    print(f"\nbusybox-dhcp: create -> ACTIVE {active:.2f}s, -> Ready {up:.2f}s (ConsoleRegex)")
    assert up >= active


@pytest.mark.cloudimage
def test_the_debian_cloud_image_is_ready_when_cloud_init_finishes(operator, boot):
    create(boot, "flavors", "Flavor", "c1.small", {"vcpus": 1, "ramMiB": 512}, cluster=True)
    create(boot, "images", "Image", "debian-12", image_of(GUESTS / "debian-12-cloud.qcow2"))
    user_data = "#cloud-config\nwrite_files:\n- path: /etc/kubenova-e2e\n  content: hello\n"
    create(
        boot,
        "instances",
        "Instance",
        "deb",
        {"flavor": "c1.small", "image": "debian-12", "userData": user_data},
    )
    obj = boot.wait_state("deb", "ACTIVE", timeout=420)
    status = obj["status"]
    assert status["guestBootSignal"] == "CloudInit"
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert "Cloud-init v. " in ready["message"] and " finished at " in ready["message"]
    active, up = times(obj)
    print(f"\ndebian-12 cloud image: create -> ACTIVE {active:.2f}s, -> Ready {up:.2f}s")
    assert up > active


def port_of(boot, instance: str) -> dict:
    """The instance's one Port (its address and where it is plugged)."""
    ports = boot.custom.list_namespaced_custom_object(GROUP, VERSION, boot.namespace, "ports")
    (port,) = [p for p in ports["items"] if p["spec"].get("deviceId") == instance]
    return port


def in_netns(netns: str, *argv: str, timeout: float = 30) -> subprocess.CompletedProcess:
    """`argv` inside a Network's namespace (the host side of its bridge)."""
    return subprocess.run(
        ["nsenter", f"--net=/run/netns/{netns}", "--", *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def leases(netns: str) -> str:
    (path,) = Path("/run/kubenova").glob(f"*/{netns}/leases")
    return path.read_text()


def test_a_stock_style_guest_on_a_network_is_ready_by_its_dhcp_request(operator, boot):
    create(boot, "images", "Image", "stock-dhcp", image_of(GUESTS / "busybox-dhcp.qcow2"))
    create(boot, "networks", "Network", "lan", {"cidr": "10.72.0.0/24", "gateway": "10.72.0.1"})
    create(
        boot,
        "instances",
        "Instance",
        "asks",
        {"flavor": "m1.tiny", "image": "stock-dhcp", "networks": [{"network": "lan"}]},
    )
    obj = boot.wait_state("asks", "ACTIVE", timeout=180)
    status = obj["status"]
    port = port_of(boot, "asks")
    mac, ip = port["spec"]["macAddress"], port["spec"]["ipAddress"]
    assert status["guestBootSignal"] == "DHCP"
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert f"from {mac} on network {boot.namespace}/lan" in ready["message"]
    netns = port["status"]["binding"]["netns"]
    # dnsmasq leased the Port's address to the Port's MAC, and the guest answers there
    wait_for(lambda: f" {mac} {ip} " in leases(netns), 60, "the guest's lease")
    wait_for(
        lambda: in_netns(netns, "busybox", "ping", "-c1", "-W1", ip).returncode == 0,
        60,
        f"{ip} to answer",
    )
    active, up = times(obj)
    print(f"\nbusybox-dhcp on a network: create -> ACTIVE {active:.2f}s, -> Ready {up:.2f}s (DHCP)")


def ssh(netns: str, key: Path, ip: str, command: str) -> subprocess.CompletedProcess:
    """`ssh -i KEY debian@IP command` from inside the Network's namespace."""
    options = (
        "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
        "-o", "UserKnownHostsFile=/dev/null", "-o", "ConnectTimeout=5", "-o", "LogLevel=ERROR",
    )  # fmt: skip
    return in_netns(netns, "ssh", "-i", str(key), *options, f"debian@{ip}", command, timeout=60)


def wait_ssh(netns: str, key: Path, ip: str, timeout: float = 300) -> str:
    """`hostname` over ssh, once sshd takes the key (cloud-init installs it late in the boot)."""
    result = None

    def answered():
        nonlocal result
        result = ssh(netns, key, ip, "hostname")
        return result.returncode == 0

    try:
        wait_for(answered, timeout, f"ssh debian@{ip}", interval=3)
    except AssertionError:
        raise AssertionError(f"ssh debian@{ip} failed: {result and result.stderr}") from None
    return result.stdout.strip()


@pytest.mark.cloudimage
def test_ssh_into_the_debian_cloud_image_on_its_network(operator, boot, tmp_path):
    """The first thing a Nova user does: ssh into the server with their key, at the address the
    cloud gave it (by DHCP); servers on one Network reach each other, not across Networks."""
    key = tmp_path / "id_ed25519"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "e2e", "-f", str(key)], check=True
    )
    create(
        boot, "keypairs", "Keypair", "e2e", {"publicKey": Path(f"{key}.pub").read_text().strip()}
    )
    create(boot, "flavors", "Flavor", "c1.small", {"vcpus": 1, "ramMiB": 512}, cluster=True)
    image = {
        **image_of(GUESTS / "debian-12-cloud.qcow2"),
        "properties": {"hw_qemu_guest_agent": "yes"},
    }
    create(boot, "images", "Image", "debian-12-qga", image)
    create(boot, "networks", "Network", "web", {"cidr": "10.73.0.0/24", "gateway": "10.73.0.1"})
    create(boot, "networks", "Network", "other", {"cidr": "10.74.0.0/24", "gateway": "10.74.0.1"})
    user_data = "#cloud-config\nwrite_files:\n- path: /etc/kubenova-e2e\n  content: hello\n"
    for name in ("deb-1", "deb-2"):
        spec = {
            "flavor": "c1.small",
            "image": "debian-12-qga",
            "keyName": "e2e",
            "userData": user_data,
            "networks": [{"network": "web"}],
        }
        create(boot, "instances", "Instance", name, spec)
    create(
        boot,
        "instances",
        "Instance",
        "elsewhere",
        {"flavor": "m1.tiny", "image": "busybox", "networks": [{"network": "other"}]},
    )
    objs = {name: boot.wait_state(name, "ACTIVE", timeout=420) for name in ("deb-1", "deb-2")}
    boot.wait_state("elsewhere", "ACTIVE", timeout=180)
    ports = {name: port_of(boot, name) for name in ("deb-1", "deb-2", "elsewhere")}
    ips = {name: port["spec"]["ipAddress"] for name, port in ports.items()}
    netns = ports["deb-1"]["status"]["binding"]["netns"]
    assert ports["deb-2"]["status"]["binding"]["netns"] == netns
    other_netns = ports["elsewhere"]["status"]["binding"]["netns"]
    assert other_netns != netns

    for name, obj in objs.items():
        signal = obj["status"]["guestBootSignal"]
        assert signal in ("DHCP", "GuestAgent", "CloudInit"), signal
        active, up = times(obj)
        print(f"\n{name}: create -> ACTIVE {active:.2f}s, -> Ready {up:.2f}s ({signal})")

    transcript = []
    for name in ("deb-1", "deb-2"):
        assert wait_ssh(netns, key, ips[name]) == name  # cloud-init set the hostname
        transcript.append(f"$ ssh -i {key.name} debian@{ips[name]} hostname\n{name}")
    run = lambda command: ssh(netns, key, ips["deb-1"], command)  # noqa: E731
    wait_for(lambda: run("cat /etc/kubenova-e2e").stdout == "hello", 120, "the user-data file")
    addr = run("ip -4 -o addr show scope global").stdout
    assert f"inet {ips['deb-1']}/24" in addr and "dynamic" in addr, addr  # a DHCP lease
    mac = ports["deb-1"]["spec"]["macAddress"]
    assert f" {mac} {ips['deb-1']} deb-1 " in leases(netns)
    ping_peer = run(f"ping -c1 -W2 {ips['deb-2']}")
    assert ping_peer.returncode == 0, ping_peer.stdout + ping_peer.stderr
    assert run(f"ping -c1 -W2 {ips['elsewhere']}").returncode != 0  # another Network
    assert in_netns(other_netns, "busybox", "ping", "-c1", "-W1", ips["deb-1"]).returncode != 0
    assert in_netns(other_netns, "busybox", "ping", "-c1", "-W1", ips["elsewhere"]).returncode == 0
    transcript += [
        f"$ ssh ... cat /etc/kubenova-e2e\n{run('cat /etc/kubenova-e2e').stdout}",
        f"$ ssh ... ip -4 -o addr show scope global\n{addr.strip()}",
        f"$ ssh ... ping -c1 -W2 {ips['deb-2']}\n{ping_peer.stdout.strip()}",
    ]
    print("\n" + "\n".join(transcript))
    # the guest agent's channel answers too (hw_qemu_guest_agent=yes)
    uid = objs["deb-1"]["metadata"]["uid"]
    socket = operator.state_dir / HOST / "instances" / uid / "qga.sock"
    assert asyncio.run(qga.ping(socket, timeout=5)) is not None
