"""Fixtures of the integration tests: the operator as a real process with Nova's FakeDriver
standing in for hypervisors (the API, claims, ports and state machine are all real)."""

from __future__ import annotations

import contextlib

import pytest
from kubernetes import client

from kubenova import GROUP, VERSION
from kubenova.devcluster.cluster import free_port
from tests.cloud import Cloud, remove_test_hosts
from tests.kit import running_operator, wait_for


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
    args = ("--driver=fake", f"--scheduler-config={config}")
    with running_operator(cluster, api, work, *args) as op:
        yield op
    remove_test_hosts(api)


@pytest.fixture
def cloud(fake_operator, api, namespace, tmp_path) -> Cloud:
    return Cloud(api, namespace, tmp_path)


WEBHOOK_CONFIGURATION = "kubenova.compute.kubenova.io"


@pytest.fixture(scope="module")
def admission_operator(cluster, api, crds, tmp_path_factory):
    """The operator with `--admission`, its webhook on a free loopback port, once the
    apiserver really calls it (ValidatingAdmissionWebhook is on, loopback is reachable)."""
    work = tmp_path_factory.mktemp("admission-op")
    args = ("--driver=fake", "--admission", f"--webhook-listen=127.0.0.1:{free_port()}")
    admission = client.AdmissionregistrationV1Api(api)
    try:
        with running_operator(cluster, api, work, *args) as op:
            wait_for(lambda: _webhook_answers(api), 60, "the apiserver to call the webhook")
            yield op
    finally:
        # kopf removes its webhooks when it stops cleanly; a crashed operator's must not make
        # every later create in the session fail (failurePolicy Fail).
        with contextlib.suppress(client.ApiException):
            admission.delete_validating_webhook_configuration(WEBHOOK_CONFIGURATION)
        with contextlib.suppress(client.ApiException):
            admission.delete_mutating_webhook_configuration(WEBHOOK_CONFIGURATION)
        remove_test_hosts(api)


def _webhook_answers(api) -> bool:
    """A server-side dry run naming a flavor that cannot exist is refused by the webhook."""
    probe = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Instance",
        "metadata": {"name": "probe"},
        "spec": {"flavor": "no-such-flavor-probe", "image": "none"},
    }
    try:
        client.CustomObjectsApi(api).create_namespaced_custom_object(
            GROUP, VERSION, "default", "instances", probe, dry_run="All"
        )
    except client.ApiException as err:
        return "no-such-flavor-probe does not exist" in (err.body or "")
    return False


@pytest.fixture
def admission_cloud(admission_operator, api, namespace, tmp_path) -> Cloud:
    """No Quota object: the tests set the limits they check (or take Nova's defaults)."""
    return Cloud(api, namespace, tmp_path, quota=None)
