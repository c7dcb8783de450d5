"""The validating admission webhook on the real apiserver: bad requests are refused at apply,
each with a message that says what to fix; dry runs change nothing.

The operator runs with `--driver fake --admission`; the apiserver calls its webhook on loopback.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable

import pytest
import yaml
from kubernetes import client

from kubenova import GROUP, VERSION
from tests.cloud import Cloud
from tests.kit import wait_for

pytestmark = pytest.mark.integration
WEBHOOK = 'admission webhook "instance-create.kubenova.compute.kubenova.io" denied the request'


def refusal(create: Callable[[], object]) -> tuple[int, str]:
    """The HTTP status and message of a request the apiserver refused."""
    try:
        create()
    except client.ApiException as err:
        return err.status, json.loads(err.body)["message"]
    raise AssertionError("the request was accepted")


def quota(cloud: Cloud, **limits: int) -> None:
    cloud.create("quotas", "Quota", "default", limits)


def image(cloud: Cloud, name: str, **spec) -> None:
    cloud.create(
        "images",
        "Image",
        name,
        {
            # in a directory the import policy allows, but missing: the image never imports
            "source": str(cloud.disk.with_name("missing.qcow2")),
            "checksum": hashlib.sha256(b"").hexdigest(),
            **spec,
        },
    )


def volume(cloud: Cloud, name: str, size: int = 1, dry_run: bool = False, **spec) -> dict:
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Volume",
        "metadata": {"name": name},
        "spec": {"sizeGiB": size, **spec},
    }
    extra = {"dry_run": "All"} if dry_run else {}
    return cloud.custom.create_namespaced_custom_object(
        GROUP, VERSION, cloud.ns, "volumes", body, **extra
    )


def submit(cloud: Cloud, name: str, spec: dict, dry_run: bool = False) -> dict:
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Instance",
        "metadata": {"name": name},
        "spec": {"flavor": cloud.flavor_name, "image": "tiny", **spec},
    }
    extra = {"dry_run": "All"} if dry_run else {}
    return cloud.custom.create_namespaced_custom_object(
        GROUP, VERSION, cloud.ns, "instances", body, **extra
    )


def instance_refusal(cloud: Cloud, **spec) -> tuple[int, str]:
    return refusal(lambda: submit(cloud, "bad", spec))


def refused_once_seen(cloud: Cloud, expected: str, **spec) -> tuple[int, str]:
    """The refusal of a create, once the webhook's watch has seen a quota just changed (dry
    runs until then, so an early acceptance creates nothing)."""

    def seen():
        try:
            submit(cloud, "bad", spec, dry_run=True)
        except client.ApiException as err:
            return expected in err.body
        return False

    wait_for(seen, 15, f"the webhook to refuse with {expected!r}")
    return instance_refusal(cloud, **spec)


# -- references ------------------------------------------------------------------------------
def test_missing_references_each_say_what_to_fix(admission_cloud):
    cloud = admission_cloud
    ns = cloud.ns
    cases = {
        "flavor": (
            {"flavor": "m1.nope"},
            "Flavor m1.nope does not exist: set spec.flavor to one of `kubectl get flavors`",
        ),
        "image": (
            {"image": "cirros"},
            f"Image cirros does not exist in namespace {ns}: create it or set spec.image to one "
            f"of `kubectl get images -n {ns}`",
        ),
        "network": (
            {"networks": [{"network": "private"}]},
            f"Network private does not exist in namespace {ns}: create it or remove it from "
            "spec.networks",
        ),
        "keypair": (
            {"keyName": "laptop"},
            f"Keypair laptop does not exist in namespace {ns}: create it or fix spec.keyName",
        ),
        "volume": (
            {"volumes": [{"volume": "data"}]},
            f"Volume data does not exist in namespace {ns}: create it or remove it from "
            "spec.volumes",
        ),
    }
    for what, (spec, message) in cases.items():
        status, text = instance_refusal(cloud, **spec)
        assert (status, text) == (404, f"{WEBHOOK}: {message}"), what
    assert cloud.list("instances") == []


def test_all_problems_are_reported_at_once(admission_cloud):
    status, text = instance_refusal(
        admission_cloud, flavor="m1.nope", image="cirros", keyName="laptop"
    )
    assert status == 404
    assert text.count("does not exist") == 3
    assert "Flavor m1.nope" in text and "Image cirros" in text and "Keypair laptop" in text


def test_image_minimums_above_the_flavor(admission_cloud):
    cloud = admission_cloud
    small = cloud.flavor(vcpus=1, ram=512)  # diskGiB 1
    image(cloud, "big-ram", minRamMiB=2048)
    image(cloud, "big-disk", minDiskGiB=20)
    status, text = instance_refusal(cloud, flavor=small, image="big-ram")
    assert status == 400
    assert (
        f"Flavor {small}'s memory (512 MiB) is too small for image big-ram, which needs "
        "minRamMiB 2048: pick a flavor with at least 2048 MiB" in text
    )
    status, text = instance_refusal(cloud, flavor=small, image="big-disk")
    assert (
        f"Flavor {small}'s disk (1 GiB) is too small for image big-disk, which needs "
        "minDiskGiB 20: pick a flavor with at least 20 GiB of disk" in text
    )


def test_user_data_over_novas_limit_in_bytes(admission_cloud):
    # 40,000 characters pass the schema's maxLength (65,535) but are 80,000 bytes.
    status, text = instance_refusal(admission_cloud, userData="é" * 40000)
    assert status == 400
    assert text.endswith(
        "spec.userData is 80000 bytes, over Nova's limit of 65535 bytes: shrink it "
        "(let the guest fetch large files instead)"
    )


# -- fixed IPs -------------------------------------------------------------------------------
def test_fixed_ip_outside_the_cidr_on_the_gateway_or_held_by_a_port(admission_cloud):
    cloud = admission_cloud
    cloud.network("private", "10.20.0.0/24", gateway="10.20.0.1")
    outside = instance_refusal(cloud, networks=[{"network": "private", "fixedIp": "10.99.0.5"}])
    assert outside[0] == 400
    assert outside[1].endswith(
        "spec.networks[0].fixedIp: on network private, fixed IP 10.99.0.5 is outside the "
        "network's CIDR 10.20.0.0/24: pick another address or omit fixedIp"
    )
    gateway = instance_refusal(cloud, networks=[{"network": "private", "fixedIp": "10.20.0.1"}])
    assert "fixed IP 10.20.0.1 is the network's gateway, DHCP server or a DNS server" in gateway[1]

    # A Port holds 10.20.0.10 (as the operator's IPAM names them: <network>-<ip>).
    cloud.create(
        "ports",
        "Port",
        "private-10-20-0-10",
        {"network": "private", "ipAddress": "10.20.0.10", "macAddress": "fa:16:3e:00:00:0a"},
    )
    # neutron's NetworkInUse: the Network cannot be deleted while the Port is on it
    code, text = refusal(lambda: cloud.delete("private", "networks"))
    assert code == 409
    assert text.endswith(
        "network private is in use by 1 port(s) (private-10-20-0-10): delete their instances "
        "first; the network is removed once they are gone"
    )
    status, text = instance_refusal(
        cloud, networks=[{"network": "private", "fixedIp": "10.20.0.10"}]
    )
    assert status == 409
    assert text.endswith(
        "spec.networks[0].fixedIp: fixed IP 10.20.0.10 is already in use on network private "
        "(Port private-10-20-0-10): pick another address or omit fixedIp"
    )


# -- quota -----------------------------------------------------------------------------------
def test_over_quota_instances_cores_and_ram(admission_cloud):
    cloud = admission_cloud
    ns = cloud.ns
    quota(cloud, instances=0)
    status, text = refused_once_seen(cloud, "for instances")
    assert status == 403
    assert text.startswith(
        f"{WEBHOOK}: Quota exceeded for instances: Requested 1, but already used 0 of 0 instances"
    )
    assert f"raise spec.instances of Quota default in {ns}" in text

    big = cloud.flavor(vcpus=4, ram=512)
    set_quota(cloud, instances=10, cores=2)
    status, text = refused_once_seen(cloud, "for cores", flavor=big)
    assert status == 403
    assert "Quota exceeded for cores: Requested 4, but already used 0 of 2 cores" in text

    fat = cloud.flavor(vcpus=1, ram=2048)
    set_quota(cloud, cores=20, ramMiB=1024)
    status, text = refused_once_seen(cloud, "for ramMiB", flavor=fat)
    assert "Quota exceeded for ramMiB: Requested 2048, but already used 0 of 1024 ramMiB" in text
    assert cloud.list("instances") == []


def set_quota(cloud: Cloud, **limits: int) -> None:
    cloud.custom.patch_namespaced_custom_object(
        GROUP, VERSION, cloud.ns, "quotas", "default", {"spec": limits}
    )


def test_volume_quota_and_source_image(admission_cloud):
    cloud = admission_cloud
    quota(cloud, volumes=0, gigabytes=10)

    def volume_refused(expected: str, name: str, size: int, **spec) -> tuple[int, str]:
        def seen():
            try:
                volume(cloud, name, size, dry_run=True, **spec)
            except client.ApiException as err:
                return expected in err.body
            return False

        wait_for(seen, 15, f"the webhook to refuse with {expected!r}")
        return refusal(lambda: volume(cloud, name, size, **spec))

    status, text = volume_refused("for volumes", "one", 1)
    assert status == 403
    assert "Quota exceeded for volumes: Requested 1, but already used 0 of 0 volumes" in text
    set_quota(cloud, volumes=10)
    status, text = volume_refused("for gigabytes", "huge", 11)
    assert status == 403
    assert "Quota exceeded for gigabytes: Requested 11, but already used 0 of 10 gigabytes" in text
    status, text = refusal(lambda: volume(cloud, "copy", sourceImage="golden"))
    assert status == 404
    assert f"Image golden does not exist in namespace {cloud.ns}: create it or fix " in text

    volume(cloud, "data", size=4)
    status, text = refusal(
        lambda: cloud.custom.patch_namespaced_custom_object(
            GROUP, VERSION, cloud.ns, "volumes", "data", {"spec": {"sizeGiB": 11}}
        )
    )
    assert status == 403
    assert "Quota exceeded for gigabytes: Requested 11, but already used 0 of 10" in text
    assert [v["metadata"]["name"] for v in cloud.list("volumes")] == ["data"]


# -- volumes in use --------------------------------------------------------------------------
def test_in_use_volume_cannot_be_deleted_or_attached_twice(admission_cloud):
    cloud = admission_cloud
    cloud.node("h0", cpu="8", memory="16Gi")
    volume(cloud, "data")
    wait_for(lambda: _volume(cloud, "data").get("phase") == "available", 60, "data available")
    cloud.instance("db", spec={"volumes": [{"volume": "data"}]})
    status = cloud.settled("db")
    assert status["vmState"] == "ACTIVE", status.get("fault")
    assert _volume(cloud, "data")["attachedTo"] == "db"

    code, text = refusal(lambda: cloud.delete("data", "volumes"))
    assert code == 409
    assert text.endswith(
        "volume data is attached to instance db; delete or detach the instance first"
    )
    code, text = instance_refusal(cloud, volumes=[{"volume": "data"}])
    assert code == 409
    assert text.endswith(
        "Volume data is in use by instance db: delete that instance first or attach another volume"
    )

    cloud.delete("db")
    wait_for(lambda: _volume(cloud, "data").get("phase") == "available", 60, "data detached")
    cloud.delete("data", "volumes")  # no longer refused


def _volume(cloud: Cloud, name: str) -> dict:
    obj = cloud.custom.get_namespaced_custom_object(GROUP, VERSION, cloud.ns, "volumes", name)
    return obj.get("status") or {}


# -- dry run and the kubectl path ------------------------------------------------------------
def test_dry_run_is_checked_and_changes_nothing(admission_cloud, kubectl):
    cloud = admission_cloud
    manifest = yaml.safe_dump(
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "Instance",
            "metadata": {"name": "dry", "namespace": cloud.ns},
            "spec": {"flavor": cloud.flavor_name, "image": "tiny"},
        }
    )
    done = kubectl("apply", "--dry-run=server", "-f", "-", stdin=manifest)
    assert done.returncode == 0, done.stderr
    assert "created (server dry run)" in done.stdout
    time.sleep(1)  # an operator that saw the object would have reserved quota by now
    assert cloud.list("instances") == []
    assert cloud.list("quotas") == []  # nothing reserved, no ledger made

    bad = kubectl("apply", "--dry-run=server", "-f", "-", stdin=manifest.replace("tiny", "nope"))
    assert bad.returncode != 0
    assert f"{WEBHOOK}: Image nope does not exist in namespace {cloud.ns}" in bad.stderr

    over = yaml.safe_dump(
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "Quota",
            "metadata": {"name": "default", "namespace": cloud.ns},
            "spec": {"instances": 0},
        }
    )
    assert kubectl("apply", "-f", "-", stdin=over).returncode == 0
    wait_for(
        lambda: kubectl("apply", "--dry-run=server", "-f", "-", stdin=manifest).returncode,
        15,
        "the quota to be seen",
    )
    refused = kubectl("apply", "-f", "-", stdin=manifest)
    assert refused.returncode != 0
    assert f'Error from server: error when creating "STDIN": {WEBHOOK}' in refused.stderr
    assert "Quota exceeded for instances: Requested 1, but already used 0 of 0" in refused.stderr


def test_webhook_configuration_managed_by_kopf(admission_operator, api):
    config = client.AdmissionregistrationV1Api(api).read_validating_webhook_configuration(
        "kubenova.compute.kubenova.io"
    )
    hooks = {h.name: h for h in config.webhooks}
    assert set(hooks) == {
        f"{name}.kubenova.compute.kubenova.io"
        for name in (
            "image-create",
            "instance-create",
            "instance-action",  # a reboot or power change the instance's state refuses
            "volume-create",
            "volume-grow",
            "volume-delete",
            "network-delete",  # a Network with Ports (neutron's NetworkInUse)
        )
    }
    for hook in hooks.values():
        assert (hook.failure_policy, hook.side_effects) == ("Fail", "None"), hook.name
        assert hook.client_config.url.startswith("https://127.0.0.1:"), hook.name
        assert hook.client_config.ca_bundle, hook.name
        (rule,) = hook.rules
        assert rule.api_groups == [GROUP]
        assert rule.resources[0] in ("images", "instances", "volumes", "networks")
    assert hooks["volume-delete.kubenova.compute.kubenova.io"].rules[0].operations == ["DELETE"]
