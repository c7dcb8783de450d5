"""Guests that know nothing of kubenova reach ACTIVE and then Ready through a generic sign that
their OS is up (docs/instances.md, "ACTIVE and Ready"):

- the stock-style busybox guest (`busybox-dhcp.qcow2`: never prints kubenova's own boot line)
  through the Image property `kubenova_guest_booted_regex`;
- the Debian 12 cloud image `make setup` builds from Debian's packages, with real cloud-init
  reading the NoCloud seed as it is, through cloud-init's final console line.

Each test prints the times from create to ACTIVE and to Ready.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from kubernetes import client

from kubenova import GROUP, VERSION
from kubenova.timestamps import parse_time
from tests.e2e.conftest import HOST, REPO

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
