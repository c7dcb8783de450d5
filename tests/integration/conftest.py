"""Fixtures of the integration tests: the operator as a real process with Nova's FakeDriver
standing in for hypervisors (the API, claims, ports and state machine are all real)."""

from __future__ import annotations

import pytest

from kubenova.devcluster.cluster import free_port
from tests.cloud import Cloud, remove_test_hosts
from tests.kit import remove_webhooks, running_operator, wait_for, webhook_answers

#: fake_operator's --boot-timeout (seconds)
BOOT_TIMEOUT = 6


@pytest.fixture(scope="module")
def fake_operator(cluster, api, crds, tmp_path_factory):
    work = tmp_path_factory.mktemp("fake-op")
    # As in Nova, soft (anti-)affinity only wins when its multiplier outweighs the resource
    # weighers: each is normalised to 0..1, so with equal multipliers they can tie.
    config = work / "scheduler.yaml"
    config.write_text(
        "weight_multipliers:\n"
        "  ServerGroupSoftAffinityWeigher: 10\n"
        "  ServerGroupSoftAntiAffinityWeigher: 10\n"
    )
    # A short boot timeout: the fake guests are up at once, except a silent one
    # (compute.kubenova.io/fake-fail=guest), whose GuestBootTimeout a test waits for.
    args = ("--driver=fake", f"--scheduler-config={config}", f"--boot-timeout={BOOT_TIMEOUT}")
    with running_operator(cluster, api, work, *args) as op:
        yield op
    remove_test_hosts(api)


@pytest.fixture
def cloud(fake_operator, api, namespace, tmp_path) -> Cloud:
    return Cloud(api, namespace, tmp_path)


@pytest.fixture(scope="module")
def admission_operator(cluster, api, crds, tmp_path_factory):
    """The operator with `--admission`, its webhook on a free loopback port, once the
    apiserver really calls it (ValidatingAdmissionWebhook is on, loopback is reachable)."""
    work = tmp_path_factory.mktemp("admission-op")
    args = ("--driver=fake", "--admission", f"--webhook-listen=127.0.0.1:{free_port()}")
    try:
        with running_operator(cluster, api, work, *args) as op:
            wait_for(lambda: webhook_answers(api), 60, "the apiserver to call the webhook")
            yield op
    finally:
        remove_webhooks(api)
        remove_test_hosts(api)


@pytest.fixture
def admission_cloud(admission_operator, api, namespace, tmp_path) -> Cloud:
    """No Quota object: the tests set the limits they check (or take Nova's defaults)."""
    return Cloud(api, namespace, tmp_path, quota=None)
