"""The embedded default (`kubenova run`, `make run`) runs the admission webhook: what a
cluster refuses at apply is refused there too, with the webhook's message, and nothing is
created. The operator here is started by the same code as `kubenova run`'s
(embedded_operator, start_admitting_operator), on the fake driver."""

from __future__ import annotations

import pytest
from kubernetes import client

from kubenova import GROUP, VERSION
from tests.cloud import Cloud
from tests.security.kit import refusal, refused_once_seen

pytestmark = [pytest.mark.integration, pytest.mark.security]
WEBHOOK = 'admission webhook "instance-create.kubenova.compute.kubenova.io" denied the request'


def instance(name: str, **spec) -> dict:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Instance",
        "metadata": {"name": name},
        "spec": spec,
    }


def test_missing_flavor_is_refused_at_apply(operator, api, namespace, tmp_path):
    cloud = Cloud(api, namespace, tmp_path)
    custom = client.CustomObjectsApi(api)
    status, message = refusal(
        "embedded run: an Instance naming a missing flavor",
        lambda: custom.create_namespaced_custom_object(
            GROUP, VERSION, namespace, "instances", instance("web", flavor="m1.nope", image="tiny")
        ),
    )
    assert (status, message) == (
        404,
        f"{WEBHOOK}: Flavor m1.nope does not exist: set spec.flavor to one of "
        "`kubectl get flavors`",
    )
    status, message = refusal(
        "embedded run: an Instance naming a missing image",
        lambda: custom.create_namespaced_custom_object(
            GROUP,
            VERSION,
            namespace,
            "instances",
            instance("web", flavor=cloud.flavor_name, image="cirros"),
        ),
    )
    assert (status, message) == (
        404,
        f"{WEBHOOK}: Image cirros does not exist in namespace {namespace}: create it or set "
        f"spec.image to one of `kubectl get images -n {namespace}`",
    )
    assert cloud.list("instances") == []


def test_over_quota_is_refused_at_apply(operator, api, namespace, tmp_path):
    cloud = Cloud(api, namespace, tmp_path, quota={"instances": 0})
    status, message = refused_once_seen(
        "embedded run: an Instance over the namespace's quota",
        lambda **extra: cloud.custom.create_namespaced_custom_object(
            GROUP,
            VERSION,
            namespace,
            "instances",
            instance("web", flavor=cloud.flavor_name, image="tiny"),
            **extra,
        ),
        "Quota exceeded for instances",
    )
    assert status == 403
    assert message.startswith(
        f"{WEBHOOK}: Quota exceeded for instances: Requested 1, but already used 0 of 0 instances"
    ), message
    assert cloud.list("instances") == []
