"""Projects (namespaces) and their users for tests: the tenant roles of examples/rbac bound per
namespace, and real credentials for them (client certificates from the dev cluster's CA, or
ServiceAccount tokens from the TokenRequest API): nothing is faked, the apiserver decides."""

from __future__ import annotations

from pathlib import Path

from kubernetes import client

from tests.chart import service_account_kubeconfig

ROLES = Path(__file__).resolve().parents[1] / "examples" / "rbac" / "tenant-roles.yaml"
MEMBER = "kubenova-member"
VIEWER = "kubenova-viewer"
RBAC_GROUP = "rbac.authorization.k8s.io"


def install_tenant_roles(kubectl) -> None:
    """The ClusterRoles kubenova-member, kubenova-viewer and kubenova-flavor-reader."""
    applied = kubectl("apply", "-f", str(ROLES))
    assert applied.returncode == 0, applied.stderr


def group(name: str) -> dict:
    return {"apiGroup": RBAC_GROUP, "kind": "Group", "name": name}


def service_account(namespace: str, name: str) -> dict:
    return {"kind": "ServiceAccount", "name": name, "namespace": namespace}


def bind(api: client.ApiClient, namespace: str, name: str, role: str, subject: dict) -> None:
    """A RoleBinding of the ClusterRole `role` in `namespace` to `subject`."""
    client.RbacAuthorizationV1Api(api).create_namespaced_role_binding(
        namespace,
        {
            "metadata": {"name": name},
            "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": role},
            "subjects": [subject],
        },
    )


def make_projects(api: client.ApiClient, *names: str) -> None:
    core = client.CoreV1Api(api)
    for name in names:
        core.create_namespace({"metadata": {"name": name}})


def remove_projects(api: client.ApiClient, *names: str) -> None:
    core = client.CoreV1Api(api)
    for name in names:
        core.delete_namespace(name)


def token_kubeconfig(
    cluster, api: client.ApiClient, namespace: str, account: str, role: str, path: Path
) -> Path:
    """A ServiceAccount in `namespace` bound to `role` there, and a kubeconfig with its token."""
    client.CoreV1Api(api).create_namespaced_service_account(
        namespace, {"metadata": {"name": account}}
    )
    bind(api, namespace, f"{account}-{role}", role, service_account(namespace, account))
    return service_account_kubeconfig(cluster, api, namespace, account, path)
