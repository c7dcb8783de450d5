"""One tenant exhausting its quota does not block another: A fills its instance and volume
quotas (and then floods the API with more, all at once, past the webhook's view where it can),
and B, on the same hosts, still boots and still gets its volume; each namespace's count holds
only its own."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from kubernetes import client

from kubenova import GROUP, VERSION
from tests.cloud import Cloud
from tests.kit import wait_for
from tests.security.kit import Projects, User, refused_once_seen

pytestmark = [pytest.mark.integration, pytest.mark.security]
API = f"{GROUP}/{VERSION}"
ZONE = "shared"


def create(user: User, namespace: str, plural: str, kind: str, name: str, spec: dict, **extra):
    body = {"apiVersion": API, "kind": kind, "metadata": {"name": name}, "spec": spec}
    return user.custom.create_namespaced_custom_object(
        GROUP, VERSION, namespace, plural, body, **extra
    )


def used(api, namespace: str) -> dict:
    quota = client.CustomObjectsApi(api).get_namespaced_custom_object(
        GROUP, VERSION, namespace, "quotas", "default"
    )
    return (quota.get("status") or {}).get("used") or {}


def published(api, namespace: str, **expected: int) -> dict:
    """The namespace's Quota status.used once it shows `expected`: the operator publishes its
    count within about a second of a change, so a read straight after a change may be older."""
    seen: dict = {}

    def shows() -> bool:
        seen.clear()
        seen.update(used(api, namespace))
        return all(seen.get(k) == v for k, v in expected.items())

    try:
        wait_for(shows, 15, f"{namespace}'s Quota to show {expected}")
    except AssertionError as err:
        raise AssertionError(f"{err}; last seen {seen}") from None
    return dict(seen)


def test_a_full_quota_does_not_block_b(operator, api, projects: Projects, tmp_path_factory):
    a = Cloud(api, projects.a, tmp_path_factory.mktemp("a"), quota={"instances": 2, "volumes": 1})
    b = Cloud(api, projects.b, tmp_path_factory.mktemp("b"), quota={"instances": 2, "volumes": 1})
    for suffix in ("h1", "h2"):  # hosts both tenants share
        a.node(suffix, cpu="32", memory="64Gi", zone=f"{projects.a}-{ZONE}")
    zone = f"{projects.a}-{ZONE}"

    def instance(user: User, cloud: Cloud, name: str, **extra):
        spec = {"flavor": cloud.flavor_name, "image": "tiny", "availabilityZone": zone}
        return create(user, cloud.ns, "instances", "Instance", name, spec, **extra)

    alice, bob = projects.alice, projects.bob

    # A floods: twelve creates at once where two fit. Some may pass the webhook before its
    # watch sees the first reservations; the operator's count (one check at a time per
    # namespace) then refuses them with a quota fault.
    def attempt(i: int) -> bool:
        try:
            instance(alice, a, f"flood-{i}")
        except client.ApiException as err:
            assert err.status == 403 and "Quota exceeded for instances" in err.body, err.body
            return False
        return True

    with ThreadPoolExecutor(6) as pool:
        accepted = [f"flood-{i}" for i, ok in enumerate(pool.map(attempt, range(12))) if ok]
    states = {name: a.settled(name) for name in accepted}
    active = [n for n, s in states.items() if s["vmState"] == "ACTIVE"]
    assert len(active) == 2, states
    for name, status in states.items():
        if name not in active:
            assert status["vmState"] == "ERROR"
            assert status["fault"]["message"].startswith("Quota exceeded for instances"), status
    published(api, projects.a, instances=2)
    status, message = refused_once_seen(
        "alice (member of A): one more instance over A's full quota",
        lambda **extra: instance(alice, a, "one-more", **extra),
        "Quota exceeded for instances",
    )
    assert status == 403
    assert message.startswith(
        'admission webhook "instance-create.kubenova.compute.kubenova.io" denied the request: '
        "Quota exceeded for instances: Requested 1, but already used 2 of 2 instances"
    ), message

    # A's volume quota, full too.
    create(alice, projects.a, "volumes", "Volume", "a-data", {"sizeGiB": 1})
    status, message = refused_once_seen(
        "alice (member of A): a volume over A's full quota",
        lambda **extra: create(
            alice, projects.a, "volumes", "Volume", "a-more", {"sizeGiB": 1}, **extra
        ),
        "Quota exceeded for volumes",
    )
    assert status == 403 and "Requested 1, but already used 1 of 1 volumes" in message

    # B, on the same hosts, is not held back by any of it.
    instance(bob, b, "b-vm")
    assert b.host_of("b-vm") in (f"{projects.a}-h1", f"{projects.a}-h2")
    create(bob, projects.b, "volumes", "Volume", "b-data", {"sizeGiB": 1})
    wait_for(
        lambda: (
            (
                bob.custom.get_namespaced_custom_object(
                    GROUP, VERSION, projects.b, "volumes", "b-data"
                ).get("status")
                or {}
            ).get("phase")
            == "available"
        ),
        60,
        "B's volume to be available",
    )
    expected = {"instances": 1, "cores": 1, "ramMiB": 512, "volumes": 1, "gigabytes": 1}
    assert published(api, projects.b, **expected) == expected
    assert published(api, projects.a, instances=2)["instances"] == 2
