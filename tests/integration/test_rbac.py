"""The control plane really authenticates and authorizes (RBAC), as keystone + policy would."""

from __future__ import annotations

import pytest
from kubernetes import client

pytestmark = pytest.mark.integration


def test_non_admin_certificate_is_refused_until_bound(cluster, api, kubectl, namespace):
    alice = cluster.write_kubeconfig_for("alice", ("project-members",))
    whoami = kubectl(
        "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}", kubeconfig=alice
    )
    assert whoami.stdout == "alice", whoami.stderr

    refused = kubectl("get", "instances", "-n", namespace, kubeconfig=alice)
    assert refused.returncode != 0
    assert "Forbidden" in refused.stderr and 'User "alice"' in refused.stderr

    rbac = client.RbacAuthorizationV1Api(api)
    rbac.create_namespaced_role(
        namespace,
        {
            "metadata": {"name": "instance-reader"},
            "rules": [
                {
                    "apiGroups": ["compute.kubenova.io"],
                    "resources": ["instances"],
                    "verbs": ["get", "list"],
                }
            ],
        },
    )
    rbac.create_namespaced_role_binding(
        namespace,
        {
            "metadata": {"name": "members-read-instances"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": "instance-reader",
            },
            "subjects": [
                {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "Group",
                    "name": "project-members",
                }
            ],
        },
    )
    allowed = kubectl("get", "instances", "-n", namespace, kubeconfig=alice)
    assert allowed.returncode == 0, allowed.stderr
    still_refused = kubectl("delete", "instance", "demo", "-n", namespace, kubeconfig=alice)
    assert still_refused.returncode != 0 and "Forbidden" in still_refused.stderr
