"""A member of A tries to become more than a member, in A itself: bind themselves a bigger role,
raise their Quota or rewrite its usage, make or take Ports (addresses the operator hands out),
write the status the operator owns (directly, or smuggled in through the main resource),
impersonate an administrator, mint tokens for other accounts, or read Secrets and run Pods.
All refused by the apiserver, each with its exact message; what the operator wrote is intact."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from kubernetes import client, config

from kubenova import GROUP, VERSION
from tests.cloud import Cloud
from tests.security.kit import Projects, User, refusal

pytestmark = [pytest.mark.integration, pytest.mark.security]
API = f"{GROUP}/{VERSION}"
RBAC = "rbac.authorization.k8s.io"
CLUSTER = "at the cluster scope"

Case = tuple[str, Callable[[], object], str]
"""What is tried, the request, the exact refusal expected."""


@pytest.fixture(scope="module")
def own(operator, api, projects: Projects, tmp_path_factory) -> dict:
    """A's own cloud: an ACTIVE instance on a network (so A has a Port) and a volume."""
    cloud = Cloud(api, projects.a, tmp_path_factory.mktemp("own"), quota={"instances": 1})
    cloud.node("host")
    cloud.network("private", "10.40.0.0/24")
    cloud.create("volumes", "Volume", "data", {"sizeGiB": 1})
    cloud.instance("vm", spec={"networks": [{"network": "private"}]})
    assert cloud.settled("vm")["vmState"] == "ACTIVE"
    (port,) = cloud.list("ports")
    return {"cloud": cloud, "port": port["metadata"]["name"]}


def forbidden(user: User, verb: str, resource: str, group: str, where: str, name=None) -> str:
    """The apiserver's RBAC refusal, word for word."""
    subject = resource.split("/")[0] + (f".{group}" if group else "")
    subject = f'{subject} "{name}"' if name else subject
    return (
        f'{subject} is forbidden: User "{user.name}" cannot {verb} resource "{resource}" in API '
        f'group "{group}" {where}'
    )


def in_namespace(ns: str) -> str:
    return f'in the namespace "{ns}"'


def check(user: User, cases: list[Case]) -> None:
    for what, request, expected in cases:
        status, message = refusal(f"{user.name} (member of A): {what}", request)
        assert (status, message) == (403, expected), what


# -- RBAC ------------------------------------------------------------------------------------
def grants(user: User, ns: str) -> list[Case]:
    rbac = client.RbacAuthorizationV1Api(user.api)
    here = in_namespace(ns)
    binding = {
        "metadata": {"name": "me-admin"},
        "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"apiGroup": RBAC, "kind": "User", "name": user.name}],
    }
    rules = [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]
    someone = {"subjects": [{"apiGroup": RBAC, "kind": "User", "name": user.name}]}
    return [
        (
            "create a RoleBinding to cluster-admin in A",
            lambda: rbac.create_namespaced_role_binding(ns, binding),
            forbidden(user, "create", "rolebindings", RBAC, here),
        ),
        (
            "add themselves to A's RoleBinding a-viewers",
            lambda: rbac.patch_namespaced_role_binding("a-viewers", ns, someone),
            forbidden(user, "patch", "rolebindings", RBAC, here, "a-viewers"),
        ),
        (
            "create a Role allowing everything in A",
            lambda: rbac.create_namespaced_role(ns, {"metadata": {"name": "all"}, "rules": rules}),
            forbidden(user, "create", "roles", RBAC, here),
        ),
        (
            "create a ClusterRoleBinding to cluster-admin",
            lambda: rbac.create_cluster_role_binding(binding),
            forbidden(user, "create", "clusterrolebindings", RBAC, CLUSTER),
        ),
        (
            "widen the ClusterRole kubenova-member",
            lambda: rbac.patch_cluster_role("kubenova-member", {"rules": rules}),
            forbidden(user, "patch", "clusterroles", RBAC, CLUSTER, "kubenova-member"),
        ),
    ]


def test_members_cannot_grant_themselves_more(own, projects: Projects):
    for user in projects.attackers:
        check(user, grants(user, projects.a))


# -- quota -----------------------------------------------------------------------------------
def quota_changes(user: User, ns: str, current: dict) -> list[Case]:
    c = user.custom
    here = in_namespace(ns)
    more = {"spec": {"instances": 1000}}
    extra = {"apiVersion": API, "kind": "Quota", "metadata": {"name": "extra"}, **more}
    ledger = {"status": {"used": {}}}

    def refused(verb: str, resource: str, name: str | None = "default") -> str:
        return forbidden(user, verb, resource, GROUP, here, name)

    return [
        (
            "raise A's Quota",
            lambda: c.patch_namespaced_custom_object(GROUP, VERSION, ns, "quotas", "default", more),
            refused("patch", "quotas"),
        ),
        (
            "replace A's Quota",
            lambda: c.replace_namespaced_custom_object(
                GROUP, VERSION, ns, "quotas", "default", {**current, **more}
            ),
            refused("update", "quotas"),
        ),
        (
            "delete A's Quota (to fall back to the defaults)",
            lambda: c.delete_namespaced_custom_object(GROUP, VERSION, ns, "quotas", "default"),
            refused("delete", "quotas"),
        ),
        (
            "create another Quota in A",
            lambda: c.create_namespaced_custom_object(GROUP, VERSION, ns, "quotas", extra),
            refused("create", "quotas", None),
        ),
        (
            "empty A's published quota usage (quotas/status)",
            lambda: c.patch_namespaced_custom_object_status(
                GROUP, VERSION, ns, "quotas", "default", ledger
            ),
            refused("patch", "quotas/status"),
        ),
    ]


def test_members_cannot_change_their_quota(own, projects: Projects, api):
    custom = client.CustomObjectsApi(api)
    before = custom.get_namespaced_custom_object(GROUP, VERSION, projects.a, "quotas", "default")
    for user in projects.attackers:
        check(user, quota_changes(user, projects.a, before))
    after = custom.get_namespaced_custom_object(GROUP, VERSION, projects.a, "quotas", "default")
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]


# -- what the operator writes ----------------------------------------------------------------
STATUS_WRITES = {
    "instances": ("vm", {"vmState": "ACTIVE", "host": "elsewhere"}),
    "volumes": ("data", {"phase": "available", "attachedTo": None}),
    "networks": ("private", {"phase": "ACTIVE"}),
    "images": ("tiny", {"phase": "active"}),
    "ports": (None, {"phase": "DOWN"}),
}


def operator_writes(user: User, ns: str, port: str) -> list[Case]:
    c = user.custom
    here = in_namespace(ns)
    squat = {
        "apiVersion": API,
        "kind": "Port",
        "metadata": {"name": "private-10-40-0-9"},
        "spec": {"network": "private", "ipAddress": "10.40.0.9", "macAddress": "fa:16:3e:0:0:9"},
    }
    moved = {"spec": {"ipAddress": "10.40.0.200"}}
    cases: list[Case] = [
        (
            "create a Port (take an address)",
            lambda: c.create_namespaced_custom_object(GROUP, VERSION, ns, "ports", squat),
            forbidden(user, "create", "ports", GROUP, here),
        ),
        (
            "move A's Port to another address",
            lambda: c.patch_namespaced_custom_object(GROUP, VERSION, ns, "ports", port, moved),
            forbidden(user, "patch", "ports", GROUP, here, port),
        ),
        (
            "delete A's Port (free an address in use)",
            lambda: c.delete_namespaced_custom_object(GROUP, VERSION, ns, "ports", port),
            forbidden(user, "delete", "ports", GROUP, here, port),
        ),
    ]
    for plural, (name, status) in STATUS_WRITES.items():
        name = name or port

        def write(p=plural, n=name, s=status):
            return c.patch_namespaced_custom_object_status(GROUP, VERSION, ns, p, n, {"status": s})

        cases.append(
            (
                f"patch {plural}/status",
                write,
                forbidden(user, "patch", f"{plural}/status", GROUP, here, name),
            )
        )
    return cases


def test_members_cannot_write_ports_or_any_status(own, projects: Projects, api):
    port = own["port"]
    custom = client.CustomObjectsApi(api)
    before = custom.get_namespaced_custom_object(GROUP, VERSION, projects.a, "ports", port)
    for user in projects.attackers:
        check(user, operator_writes(user, projects.a, port))
    after = custom.get_namespaced_custom_object(GROUP, VERSION, projects.a, "ports", port)
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]


def test_status_smuggled_through_the_main_resource_is_dropped(own, projects: Projects):
    """A member may patch their instance, but the status subresource makes the apiserver drop
    any status in such a write: the operator's vmState, host and addresses stay."""
    before = own["cloud"].get("vm")
    smuggled = {
        "metadata": {"labels": {"mine": "yes"}},
        "status": {"vmState": "ERROR", "host": "elsewhere", "addresses": []},
    }
    projects.alice.custom.patch_namespaced_custom_object(
        GROUP, VERSION, projects.a, "instances", "vm", smuggled
    )
    after = own["cloud"].get("vm")
    assert after["metadata"]["labels"]["mine"] == "yes"
    for key in ("vmState", "host", "addresses"):
        assert after["status"][key] == before["status"][key], key
    assert after["status"]["vmState"] == "ACTIVE"


# -- beyond kubenova's objects ---------------------------------------------------------------
def other_powers(user: User, ns: str, impersonating: client.ApiClient) -> list[Case]:
    core = client.CoreV1Api(user.api)
    here = in_namespace(ns)
    pod = {
        "metadata": {"name": "shell"},
        "spec": {"containers": [{"name": "sh", "image": "busybox"}]},
    }
    return [
        (
            "impersonate kubenova-admin in system:masters",
            lambda: client.CoreV1Api(impersonating).list_namespace(),
            f'users "kubenova-admin" is forbidden: User "{user.name}" cannot impersonate '
            f'resource "users" in API group "" {CLUSTER}',
        ),
        (
            "mint a token for A's ServiceAccount peeker",
            lambda: core.create_namespaced_service_account_token("peeker", ns, {"spec": {}}),
            forbidden(user, "create", "serviceaccounts/token", "", here, "peeker"),
        ),
        (
            "list Secrets in A",
            lambda: core.list_namespaced_secret(ns),
            forbidden(user, "list", "secrets", "", here),
        ),
        (
            "create a Pod in A",
            lambda: core.create_namespaced_pod(ns, pod),
            forbidden(user, "create", "pods", "", here),
        ),
    ]


def test_members_cannot_impersonate_mint_tokens_or_reach_secrets(own, projects: Projects):
    for user in projects.attackers:
        impersonating = config.new_client_from_config(str(user.kubeconfig))
        impersonating.set_default_header("Impersonate-User", "kubenova-admin")
        impersonating.set_default_header("Impersonate-Group", "system:masters")
        try:
            check(user, other_powers(user, projects.a, impersonating))
        finally:
            impersonating.close()
