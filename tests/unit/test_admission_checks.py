"""The admission checks as pure functions: each refusal says what to fix."""

from kubenova.admission.instance import instance_problems
from kubenova.admission.refs import InstanceRefs, QuotaView
from kubenova.admission.volume import (
    volume_create_problems,
    volume_delete_problems,
    volume_grow_problems,
)
from kubenova.quota.usage import Usage, limits_of

FLAVOR = {"vcpus": 2, "ramMiB": 1024, "diskGiB": 10}
IMAGE = {"spec": {"source": "/x", "checksum": "0" * 64}, "status": {"phase": "active"}}
NETWORK = {"cidr": "10.0.0.0/24", "gateway": "10.0.0.1"}


def refs(**overrides) -> InstanceRefs:
    base = {"flavor": FLAVOR, "image": IMAGE}
    return InstanceRefs(**{**base, **overrides})


def messages(spec, r, namespace="proj"):
    return [
        p.message
        for p in instance_problems(namespace, {"flavor": "m1", "image": "cirros", **spec}, r)
    ]


def test_a_good_request_passes():
    spec = {
        "networks": [{"network": "private", "fixedIp": "10.0.0.5"}],
        "keyName": "mine",
        "volumes": [{"volume": "data"}],
        "userData": "#cloud-config\n",
    }
    r = refs(
        networks={"private": NETWORK},
        keypair=True,
        volumes={"data": {"spec": {"sizeGiB": 1}, "status": {"phase": "available"}}},
    )
    assert messages(spec, r) == []


def test_missing_references_are_named_with_the_fix():
    spec = {
        "networks": [{"network": "nope"}],
        "keyName": "lost",
        "volumes": [{"volume": "gone"}],
    }
    found = messages(
        spec,
        refs(
            flavor=None, image=None, networks={"nope": None}, keypair=False, volumes={"gone": None}
        ),
    )
    assert found == [
        "Flavor m1 does not exist: set spec.flavor to one of `kubectl get flavors`",
        "Image cirros does not exist in namespace proj: create it or set spec.image to one of "
        "`kubectl get images -n proj`",
        "Network nope does not exist in namespace proj: create it or remove it from spec.networks",
        "Keypair lost does not exist in namespace proj: create it or fix spec.keyName",
        "Volume gone does not exist in namespace proj: create it or remove it from spec.volumes",
    ]
    codes = {
        p.code
        for p in instance_problems("proj", {"flavor": "m1", "image": "cirros"}, refs(flavor=None))
    }
    assert codes == {404}


def test_image_minimums_against_the_flavor():
    image = {
        "spec": {**IMAGE["spec"], "minRamMiB": 2048, "minDiskGiB": 20},
        "status": {"phase": "active"},
    }
    found = messages({}, refs(image=image))
    assert any("memory (1024 MiB) is too small" in m and "at least 2048 MiB" in m for m in found)
    assert any("disk (10 GiB) is too small" in m and "at least 20 GiB" in m for m in found)
    # diskGiB 0 takes the image's size, as in Nova: no disk minimum to compare with.
    assert messages({}, refs(flavor={**FLAVOR, "diskGiB": 0, "ramMiB": 4096}, image=image)) == []


def test_fixed_ips_must_be_usable_and_free():
    def one(ip, held=()):
        spec = {"networks": [{"network": "private", "fixedIp": ip}]}
        return messages(spec, refs(networks={"private": NETWORK}, held_ips={"private": list(held)}))

    assert "outside the network's CIDR 10.0.0.0/24" in one("10.9.0.5")[0]
    assert "gateway" in one("10.0.0.1")[0]
    assert "broadcast" in one("10.0.0.255")[0]
    held = one("10.0.0.7", held=["10.0.0.7"])[0]
    assert "fixed IP 10.0.0.7 is already in use on network private (Port private-10-0-0-7)" in held
    assert held.endswith("pick another address or omit fixedIp")


def test_in_use_volume_is_refused():
    busy = {"spec": {"sizeGiB": 1}, "status": {"phase": "in-use", "attachedTo": "db"}}
    found = messages({"volumes": [{"volume": "data"}]}, refs(volumes={"data": busy}))
    assert found == [
        "Volume data is in use by instance db: delete that instance first or attach another volume"
    ]


def test_user_data_is_limited_in_bytes_not_characters():
    fits = "é" * 32767  # 65534 bytes
    assert messages({"userData": fits}, refs()) == []
    found = messages({"userData": "é" * 40000}, refs())
    assert found == [
        "spec.userData is 80000 bytes, over Nova's limit of 65535 bytes: shrink it "
        "(let the guest fetch large files instead)"
    ]


def test_quota_from_the_ledger_plus_the_request():
    quota = QuotaView(limits=limits_of({"cores": 4}), used=Usage(instances=1, cores=3))
    problems = instance_problems("proj", {"flavor": "m1", "image": "cirros"}, refs(quota=quota))
    assert [p.code for p in problems] == [403]
    assert problems[0].message.startswith(
        "Quota exceeded for cores: Requested 2, but already used 3 of 4 cores."
    )


def test_volume_quota_grow_and_delete():
    quota = QuotaView(limits=limits_of({"gigabytes": 10}), used=Usage(volumes=1, gigabytes=8))
    created = volume_create_problems("proj", {"sizeGiB": 3}, quota)
    assert created[0].message.startswith(
        "Quota exceeded for gigabytes: Requested 3, but already used 8 of 10 gigabytes"
    )
    assert volume_create_problems("proj", {"sizeGiB": 2}, quota) == []
    missing = volume_create_problems("proj", {"sizeGiB": 1, "sourceImage": "x"}, quota, False)
    assert "Image x does not exist in namespace proj" in missing[0].message
    assert volume_grow_problems("proj", {"sizeGiB": 8}, {"sizeGiB": 10}, quota) == []
    assert volume_grow_problems("proj", {"sizeGiB": 8}, {"sizeGiB": 11}, quota)
    status = {"phase": "in-use", "attachedTo": "db"}
    assert [p.message for p in volume_delete_problems("data", status, True)] == [
        "volume data is attached to instance db; delete or detach the instance first"
    ]
    assert volume_delete_problems("data", status, instance_exists=False) == []
    assert volume_delete_problems("data", {"phase": "available"}, True) == []
