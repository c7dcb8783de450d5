"""The CRDs on a real kube-apiserver: installed, serving the examples, refusing bad input."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from kubernetes import client

pytestmark = pytest.mark.integration

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
API = "compute.kubenova.io/v1alpha1"


def test_every_crd_is_established(api, crds):
    ext = client.ApiextensionsV1Api(api)
    assert len(crds) == 10
    for name in crds:
        conditions = ext.read_custom_resource_definition(name).status.conditions
        assert any(c.type == "Established" and c.status == "True" for c in conditions), name


def test_discovery_shows_short_names_and_the_nova_category(kubectl, crds):
    out = kubectl("api-resources", "--api-group=compute.kubenova.io", "-o", "wide")
    assert out.returncode == 0, out.stderr
    rows = {line.split()[0]: line for line in out.stdout.splitlines()[1:]}
    assert set(rows) == {
        "flavors",
        "images",
        "instances",
        "keypairs",
        "networks",
        "ports",
        "quotas",
        "servergroups",
        "volumes",
        "resourceproviders",
    }
    assert all("nova" in row for row in rows.values())
    assert "inst,server" in rows["instances"]


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_example_is_accepted(kubectl, namespace, path):
    out = kubectl("apply", "-n", namespace, "-f", str(path))
    assert out.returncode == 0, out.stderr
    assert "created" in out.stdout or "configured" in out.stdout or "unchanged" in out.stdout


def test_get_nova_lists_every_kind(kubectl, namespace):
    out = kubectl("apply", "-n", namespace, "-f", str(EXAMPLES))
    assert out.returncode == 0, out.stderr
    listing = kubectl("get", "nova", "-n", namespace)
    assert listing.returncode == 0, listing.stderr
    for kind in (
        "flavor",
        "image",
        "instance",
        "keypair",
        "network",
        "port",
        "quota",
        "servergroup",
        "volume",
    ):
        assert f"{kind}.compute.kubenova.io/" in listing.stdout, kind


def obj(kind: str, spec: dict, name: str = "bad") -> dict:
    return {"apiVersion": API, "kind": kind, "metadata": {"name": name}, "spec": spec}


INSTANCE = {"flavor": "m1.tiny", "image": "busybox"}
IMAGE = {"source": "/images/a.qcow2", "checksum": "a" * 64}

# (case, object, text the apiserver's message must contain: the offending field)
INVALID = [
    ("vcpus-zero", obj("Flavor", {"vcpus": 0, "ramMiB": 64}), "spec.vcpus"),
    ("ram-negative", obj("Flavor", {"vcpus": 1, "ramMiB": -512}), "spec.ramMiB"),
    ("cidr-malformed", obj("Network", {"cidr": "10.0.0.300/24"}), "spec.cidr"),
    (
        "gateway-outside-cidr",
        obj("Network", {"cidr": "10.0.0.0/24", "gateway": "10.9.0.1"}),
        "spec.gateway",
    ),
    (
        "dns-not-an-ip",
        obj("Network", {"cidr": "10.0.0.0/24", "dnsServers": ["dns.example"]}),
        "spec.dnsServers[0]",
    ),
    (
        "power-state-unknown",
        obj("Instance", {**INSTANCE, "powerState": "Paused"}),
        "spec.powerState",
    ),
    ("checksum-malformed", obj("Image", {**IMAGE, "checksum": "md5:abc"}), "spec.checksum"),
    ("image-source-ftp", obj("Image", {**IMAGE, "source": "ftp://host/a.qcow2"}), "spec.source"),
    ("disk-format-unknown", obj("Image", {**IMAGE, "diskFormat": "vmdk"}), "spec.diskFormat"),
    ("server-group-policy-unknown", obj("ServerGroup", {"policy": "random"}), "spec.policy"),
    (
        "rules-without-anti-affinity",
        obj("ServerGroup", {"policy": "affinity", "rules": {"maxServerPerHost": 2}}),
        "spec.rules",
    ),
    ("flavor-reference-empty", obj("Instance", {**INSTANCE, "flavor": ""}), "spec.flavor"),
    (
        "network-requested-twice",
        obj("Instance", {**INSTANCE, "networks": [{"network": "a"}, {"network": "a"}]}),
        "spec.networks",
    ),
    (
        "fixed-ip-malformed",
        obj("Instance", {**INSTANCE, "networks": [{"network": "a", "fixedIp": "10.0.0"}]}),
        "spec.networks[0].fixedIp",
    ),
    (
        "same-and-different-host",
        obj(
            "Instance", {**INSTANCE, "schedulerHints": {"sameHost": ["a"], "differentHost": ["a"]}}
        ),
        "spec.schedulerHints",
    ),
    ("unknown-field", obj("Instance", {**INSTANCE, "flavour": "m1.tiny"}), "spec.flavour"),
    (
        "mac-malformed",
        obj("Port", {"network": "n", "ipAddress": "10.0.0.5", "macAddress": "FA-16-3E-00-00-01"}),
        "spec.macAddress",
    ),
    ("public-key-malformed", obj("Keypair", {"publicKey": "not a key"}), "spec.publicKey"),
    ("volume-size-zero", obj("Volume", {"sizeGiB": 0}), "spec.sizeGiB"),
    (
        "quota-not-named-default",
        obj("Quota", {"instances": 5}, name="mine"),
        "must be named 'default'",
    ),
    ("quota-below-unlimited", obj("Quota", {"cores": -2}, name="default"), "spec.cores"),
]


@pytest.mark.parametrize(("case", "body", "field"), INVALID, ids=[c[0] for c in INVALID])
def test_invalid_object_is_rejected_naming_the_field(kubectl, namespace, case, body, field):
    out = kubectl("apply", "-n", namespace, "-f", "-", stdin=yaml.safe_dump(body))
    assert out.returncode != 0, f"{case} was accepted: {out.stdout}"
    assert field in out.stderr, out.stderr


IMMUTABLE = [
    ("Flavor", {"vcpus": 1, "ramMiB": 64}, {"vcpus": 2, "ramMiB": 64}, "immutable"),
    ("Instance", INSTANCE, {**INSTANCE, "flavor": "m1.large"}, "resize is not supported"),
    ("Network", {"cidr": "10.1.0.0/24"}, {"cidr": "10.2.0.0/24"}, "cidr is immutable"),
    ("Volume", {"sizeGiB": 5}, {"sizeGiB": 2}, "can only grow"),
]


@pytest.mark.parametrize(
    ("kind", "before", "after", "message"), IMMUTABLE, ids=[c[0] for c in IMMUTABLE]
)
def test_transition_rules_refuse_forbidden_updates(
    kubectl, namespace, kind, before, after, message
):
    name = f"immutable-{kind.lower()}-{namespace}"
    first = kubectl(
        "apply", "-n", namespace, "-f", "-", stdin=yaml.safe_dump(obj(kind, before, name))
    )
    assert first.returncode == 0, first.stderr
    second = kubectl(
        "apply", "-n", namespace, "-f", "-", stdin=yaml.safe_dump(obj(kind, after, name))
    )
    assert second.returncode != 0, second.stdout
    assert message in second.stderr, second.stderr
