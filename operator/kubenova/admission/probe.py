"""Whether the apiserver really calls the webhook: kopf registers the configuration at start-up,
and until the apiserver dials it every create would go through unchecked (or, with
failurePolicy Fail, fail). `kubenova run` and the tests wait for this before applying."""

from __future__ import annotations

from kubernetes import client

from kubenova import GROUP, VERSION

PROBE_FLAVOR = "no-such-flavor-probe"


def webhook_answers(api: client.ApiClient, namespace: str = "default") -> bool:
    """A server-side dry run naming a flavor that cannot exist is refused by the webhook
    (nothing is created either way)."""
    probe = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Instance",
        "metadata": {"name": "probe"},
        "spec": {"flavor": PROBE_FLAVOR, "image": "none"},
    }
    try:
        client.CustomObjectsApi(api).create_namespaced_custom_object(
            GROUP, VERSION, namespace, "instances", probe, dry_run="All"
        )
    except client.ApiException as err:
        return f"{PROBE_FLAVOR} does not exist" in (err.body or "")
    return False
