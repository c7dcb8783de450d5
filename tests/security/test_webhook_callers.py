"""The admission webhook answers the apiserver only. Its answers say what exists in a namespace
("Keypair bob does not exist in namespace B", "already used 3 of 10 instances"), so anyone who
could post an AdmissionReview to it directly (a local user in the embedded run; in a cluster,
any pod or pod-driver guest that reaches its Service) would learn about every tenant's objects
without RBAC ever being asked. With `--webhook-client-ca` it requires the client certificate
the apiserver presents to webhooks (its AdmissionConfiguration's kubeConfigFile, which the dev
cluster sets up): a caller without one, or with a tenant's certificate, is refused at the TLS
handshake, while the apiserver's own calls go through."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request

import pytest
from kubernetes import client

from kubenova import GROUP, VERSION, WEBHOOK_CONFIGURATION
from tests.security.kit import ATTACKS, Projects

pytestmark = [pytest.mark.integration, pytest.mark.security]


def review(namespace: str) -> bytes:
    """What the apiserver would send for an Instance in `namespace` naming keypair `bob`."""
    gvk = {"group": GROUP, "version": VERSION}
    body = {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "00000000-0000-0000-0000-000000000000",
            "kind": {**gvk, "kind": "Instance"},
            "resource": {**gvk, "resource": "instances"},
            "requestKind": {**gvk, "kind": "Instance"},
            "requestResource": {**gvk, "resource": "instances"},
            "name": "probe",
            "namespace": namespace,
            "operation": "CREATE",
            "userInfo": {"username": "alice"},
            "object": {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "Instance",
                "metadata": {"name": "probe", "namespace": namespace},
                "spec": {"flavor": "m1.nope", "image": "none", "keyName": "bob"},
            },
            "dryRun": True,
        },
    }
    return json.dumps(body).encode()


def instance_webhook_url(api) -> tuple[str, bytes]:
    hooks = client.AdmissionregistrationV1Api(api).read_validating_webhook_configuration(
        WEBHOOK_CONFIGURATION
    )
    hook = next(h for h in hooks.webhooks if h.name.startswith("instance-create."))
    import base64

    return hook.client_config.url, base64.b64decode(hook.client_config.ca_bundle)


def post(url: str, context: ssl.SSLContext, body: bytes) -> str:
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, context=context, timeout=10) as response:
        return response.read().decode()


def test_only_the_apiserver_may_call_the_webhook(
    operator, api, projects: Projects, cluster, tmp_path
):
    url, ca = instance_webhook_url(api)
    anonymous = ssl.create_default_context(cadata=ca.decode())
    tenant = ssl.create_default_context(cadata=ca.decode())
    cert, key = cluster.ca.client("alice", ("a-members",)).write(tmp_path, "alice")
    tenant.load_cert_chain(cert, key)
    for who, context in (("no client certificate", anonymous), ("alice's certificate", tenant)):
        try:
            answer = post(url, context, review(projects.b))
        except (urllib.error.URLError, ConnectionError, ssl.SSLError) as err:
            reason = getattr(err, "reason", err)
            ATTACKS.append((f"{who}: an AdmissionReview posted to the webhook for B", str(reason)))
            continue
        raise AssertionError(f"the webhook answered a caller with {who}: {answer}")

    # ...while the apiserver's own calls are still checked (and refused, here).
    try:
        client.CustomObjectsApi(projects.alice.api).create_namespaced_custom_object(
            GROUP,
            VERSION,
            projects.a,
            "instances",
            json.loads(review(projects.a))["request"]["object"],
            dry_run="All",
        )
    except client.ApiException as err:
        assert err.status == 404 and "Flavor m1.nope does not exist" in err.body, err.body
    else:
        raise AssertionError("the apiserver did not call the webhook")
