"""A member of project A, with real credentials (a client certificate and a ServiceAccount
token, each bound to kubenova-member in A), tries to read, list, watch or change anything of
project B: every request is refused by the apiserver (RBAC), with its exact message, and B's
objects are untouched. A viewer of A and a user in no project fare no better. The scheduler's
hints resolve names in the instance's own namespace: A cannot place itself by B's instances."""

from __future__ import annotations

import pytest
from kubernetes import client, watch

from kubenova import GROUP, VERSION, WEBHOOK_CONFIGURATION
from tests.cloud import Cloud
from tests.security.kit import Projects, User, refusal

pytestmark = [pytest.mark.integration, pytest.mark.security]
API = f"{GROUP}/{VERSION}"
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKb3bX0 bob@laptop"
LABEL = {"metadata": {"labels": {"owned-by": "attacker"}}}


@pytest.fixture(scope="module")
def victim(operator, api, projects: Projects, tmp_path_factory) -> dict[str, str]:
    """B's cloud: an ACTIVE instance on a network (so a Port), with a keypair and a volume
    attached, in a server group; B's Quota and Image. Returns plural -> an object's name."""
    work = tmp_path_factory.mktemp("victim")
    cloud = Cloud(api, projects.b, work)
    cloud.node("host", cpu="16", memory="32Gi")
    cloud.network("private", "10.20.0.0/24")
    cloud.create("keypairs", "Keypair", "bob", {"publicKey": KEY})
    cloud.create("volumes", "Volume", "data", {"sizeGiB": 1})
    cloud.group("web", "anti-affinity")
    cloud.instance(
        "vm-b",
        spec={
            "networks": [{"network": "private"}],
            "keyName": "bob",
            "volumes": [{"volume": "data"}],
        },
        group="web",
    )
    assert cloud.host_of("vm-b") == f"{projects.b}-host"
    (port,) = cloud.list("ports")
    return {
        "instances": "vm-b",
        "ports": port["metadata"]["name"],
        "volumes": "data",
        "keypairs": "bob",
        "networks": "private",
        "quotas": "default",
        "images": "tiny",
        "servergroups": "web",
    }


def denied(user: User, verb: str, plural: str, namespace: str, name: str | None = None) -> str:
    """The apiserver's RBAC refusal, word for word."""
    resource = f"{plural.split('/')[0]}.{GROUP}"
    subject = f'{resource} "{name}"' if name else resource
    return (
        f'{subject} is forbidden: User "{user.name}" cannot {verb} resource "{plural}" in API '
        f'group "{GROUP}" in the namespace "{namespace}"'
    )


PORT = {"network": "private", "ipAddress": "10.20.0.9", "macAddress": "fa:16:3e:00:00:09"}
KINDS = {
    "instances": ("Instance", {"flavor": "m1.tiny", "image": "tiny"}),
    "ports": ("Port", PORT),
    "volumes": ("Volume", {"sizeGiB": 1}),
    "keypairs": ("Keypair", {"publicKey": KEY}),
    "networks": ("Network", {"cidr": "10.30.0.0/24"}),
    "quotas": ("Quota", {"instances": 1000}),
    "images": ("Image", {"source": "/etc/shadow", "checksum": "0" * 64}),
    "servergroups": ("ServerGroup", {"policy": "affinity"}),
}


def attacks(custom: client.CustomObjectsApi, ns: str, plural: str, name: str):
    """(verb, the object's name in the refusal, the request) for each way in."""
    kind, spec = KINDS[plural]
    body = {"apiVersion": API, "kind": kind, "metadata": {"name": "evil"}, "spec": spec}
    replace = {"apiVersion": API, "kind": kind, "metadata": {"name": name}, "spec": spec}
    args = (GROUP, VERSION, ns, plural)

    def watch_once():
        stream = watch.Watch().stream(
            custom.list_namespaced_custom_object, *args, timeout_seconds=2
        )
        for _ in stream:
            raise AssertionError(f"watched {plural} in {ns}")

    return [
        ("get", name, lambda: custom.get_namespaced_custom_object(*args, name)),
        ("list", None, lambda: custom.list_namespaced_custom_object(*args)),
        ("watch", None, watch_once),
        ("create", None, lambda: custom.create_namespaced_custom_object(*args, body)),
        ("patch", name, lambda: custom.patch_namespaced_custom_object(*args, name, LABEL)),
        ("update", name, lambda: custom.replace_namespaced_custom_object(*args, name, replace)),
        ("delete", name, lambda: custom.delete_namespaced_custom_object(*args, name)),
        (
            "deletecollection",
            None,
            lambda: custom.delete_collection_namespaced_custom_object(*args),
        ),
    ]


@pytest.mark.parametrize("plural", list(KINDS))
def test_members_of_a_cannot_touch_b(victim, projects: Projects, api, plural):
    before = client.CustomObjectsApi(api).get_namespaced_custom_object(
        GROUP, VERSION, projects.b, plural, victim[plural]
    )
    for user in projects.attackers:
        for verb, name, request in attacks(user.custom, projects.b, plural, victim[plural]):
            status, message = refusal(f"{user.name} (member of A): {verb} {plural} in B", request)
            assert (status, message) == (403, denied(user, verb, plural, projects.b, name)), verb
        status, message = refusal(
            f"{user.name} (member of A): patch {plural}/status in B",
            lambda u=user: u.custom.patch_namespaced_custom_object_status(
                GROUP, VERSION, projects.b, plural, victim[plural], {"status": {"x": 1}}
            ),
        )
        assert (status, message) == (
            403,
            denied(user, "patch", f"{plural}/status", projects.b, victim[plural]),
        )
    after = client.CustomObjectsApi(api).get_namespaced_custom_object(
        GROUP, VERSION, projects.b, plural, victim[plural]
    )
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert "evil" not in {
        o["metadata"]["name"]
        for o in client.CustomObjectsApi(api).list_namespaced_custom_object(
            GROUP, VERSION, projects.b, plural
        )["items"]
    }


def test_viewers_and_strangers_cannot_read_b(victim, projects: Projects):
    outsiders = (
        (projects.carol, "viewer of A"),
        (projects.peeker, "viewer of A"),
        (projects.mallory, "in no project"),
    )
    for user, who in outsiders:
        for plural in ("instances", "ports", "keypairs"):
            status, message = refusal(
                f"{user.name} ({who}): get {plural} in B",
                lambda u=user, p=plural: u.custom.get_namespaced_custom_object(
                    GROUP, VERSION, projects.b, p, victim[p]
                ),
            )
            assert (status, message) == (
                403,
                denied(user, "get", plural, projects.b, victim[plural]),
            )


@pytest.mark.parametrize("plural", ["instances", "ports", "volumes", "keypairs", "quotas"])
def test_members_cannot_list_or_watch_all_namespaces(victim, projects: Projects, plural):
    for user in projects.attackers:
        for verb in ("list", "watch"):
            status, message = refusal(
                f"{user.name} (member of A): {verb} {plural} in all namespaces",
                lambda u=user, v=verb: u.custom.list_cluster_custom_object(
                    GROUP, VERSION, plural, watch=v == "watch", timeout_seconds=2
                ),
            )
            assert (status, message) == (
                403,
                f'{plural}.{GROUP} is forbidden: User "{user.name}" cannot {verb} resource '
                f'"{plural}" in API group "{GROUP}" at the cluster scope',
            )


def cluster_wide(user: User, node: str, b: str) -> list[tuple[str, object, str]]:
    core = client.CoreV1Api(user.api)
    custom = user.custom
    hooks = client.AdmissionregistrationV1Api(user.api)
    who = f'User "{user.name}"'
    flavor = {
        "apiVersion": API,
        "kind": "Flavor",
        "metadata": {"name": "huge"},
        "spec": {"vcpus": 64, "ramMiB": 1},
    }
    hook = "validatingwebhookconfigurations"
    return [
        (
            "list nodes",
            lambda: core.list_node(),
            f'nodes is forbidden: {who} cannot list resource "nodes" in API group "" at the '
            "cluster scope",
        ),
        (
            "label B's host",
            lambda: core.patch_node(node, LABEL),
            f'nodes "{node}" is forbidden: {who} cannot patch resource "nodes" in API group "" '
            "at the cluster scope",
        ),
        (
            "list resourceproviders (every tenant's placement claims)",
            lambda: custom.list_cluster_custom_object(GROUP, VERSION, "resourceproviders"),
            f"resourceproviders.{GROUP} is forbidden: {who} cannot list resource "
            f'"resourceproviders" in API group "{GROUP}" at the cluster scope',
        ),
        (
            "drop the claims on B's host",
            lambda: custom.patch_cluster_custom_object(
                GROUP, VERSION, "resourceproviders", node, {"spec": {"claims": {}}}
            ),
            f'resourceproviders.{GROUP} "{node}" is forbidden: {who} cannot patch resource '
            f'"resourceproviders" in API group "{GROUP}" at the cluster scope',
        ),
        (
            "create a flavor",
            lambda: custom.create_cluster_custom_object(GROUP, VERSION, "flavors", flavor),
            f'flavors.{GROUP} is forbidden: {who} cannot create resource "flavors" in API group '
            f'"{GROUP}" at the cluster scope',
        ),
        (
            "delete the webhook configuration (switch admission off)",
            lambda: hooks.delete_validating_webhook_configuration(WEBHOOK_CONFIGURATION),
            f'{hook}.admissionregistration.k8s.io "{WEBHOOK_CONFIGURATION}" is forbidden: {who} '
            f'cannot delete resource "{hook}" in API group "admissionregistration.k8s.io" at the '
            "cluster scope",
        ),
        (
            "delete namespace B",
            lambda: core.delete_namespace(b),
            f'namespaces "{b}" is forbidden: {who} cannot delete resource "namespaces" in API '
            f'group "" in the namespace "{b}"',
        ),
    ]


def test_members_cannot_touch_cluster_wide_objects(victim, projects: Projects, api):
    """Hosts (Nodes), their placement claims (ResourceProviders), flavors, the webhook
    configuration (switching off admission) and B's namespace itself."""
    node = f"{projects.b}-host"
    for user in projects.attackers:
        for what, request, expected in cluster_wide(user, node, projects.b):
            status, message = refusal(f"{user.name} (member of A): {what}", request)
            assert (status, message) == (403, expected), what
    assert client.CoreV1Api(api).read_node(node).metadata.labels.get("owned-by") is None
    hooks = client.AdmissionregistrationV1Api(api)
    assert hooks.read_validating_webhook_configuration(WEBHOOK_CONFIGURATION).webhooks


def test_scheduler_hints_do_not_reach_into_b(victim, projects: Projects, api, tmp_path):
    """differentHost names an instance of A's namespace only: naming B's vm-b (on the only
    host there is) constrains nothing, so A's instance is placed on that very host; were the
    name looked up in B, it would fail with NoValidHost (and tell A where vm-b runs)."""
    host = f"{projects.b}-host"
    cloud = Cloud(api, projects.a, tmp_path)
    flavor = cloud.flavor_name
    projects.alice.custom.create_namespaced_custom_object(
        GROUP,
        VERSION,
        projects.a,
        "instances",
        {
            "apiVersion": API,
            "kind": "Instance",
            "metadata": {"name": "probe"},
            "spec": {
                "flavor": flavor,
                "image": "tiny",
                "availabilityZone": projects.b,
                "schedulerHints": {"differentHost": ["vm-b"]},
            },
        },
    )
    status = cloud.settled("probe")
    assert (status["vmState"], status.get("host")) == ("ACTIVE", host), status.get("fault")
    cloud.delete("probe")


def test_events_are_read_in_the_own_project_only(victim, projects: Projects):
    """`kubenova events`: members and viewers read their project's events (B's bob sees what
    the operator reported about vm-b), no one else's."""
    seen = client.CoreV1Api(projects.bob.api).list_namespaced_event(projects.b)
    assert any(e.involved_object.name == "vm-b" for e in seen.items)
    for user in (*projects.attackers, projects.carol):
        core = client.CoreV1Api(user.api)
        assert core.list_namespaced_event(projects.a).items is not None
        status, message = refusal(
            f"{user.name} (of A): list events in B",
            lambda c=core: c.list_namespaced_event(projects.b),
        )
        assert (status, message) == (
            403,
            f'events is forbidden: User "{user.name}" cannot list resource "events" in API '
            f'group "" in the namespace "{projects.b}"',
        )
