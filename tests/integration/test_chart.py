"""The Helm chart against the real control plane: `helm install` succeeds, the operator's pod is
admitted under PodSecurity "restricted", and an operator whose ServiceAccount lacks one of the
chart's rules stops at start-up naming it.

The dev control plane is etcd + kube-apiserver only: no controller-manager turns the Deployment
into a pod, and no scheduler or kubelet would run one. That the Deployment's pod never appears
is expected; the operator runs out of cluster instead, with a token of the chart's
ServiceAccount (tests/e2e/test_chart_rbac.py boots an instance that way).
"""

from __future__ import annotations

import copy
import json
import uuid

import pytest
from kubernetes import client

from kubenova.kube import permissions
from tests.chart import find, installed, local_operator, ours, render, service_account_kubeconfig
from tests.kit import wait_for

pytestmark = pytest.mark.integration

VALUES = {"driver": "qemu", "persistence.storageClass": "kubenova-test", "persistence.size": "3Gi"}
RESTRICTED = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/warn": "restricted",
}


@pytest.fixture(scope="module")
def release(cluster, api, crds):
    with installed(cluster, api, VALUES, labels=RESTRICTED) as rel:
        yield rel


def test_helm_install_creates_the_release(release, api):
    assert "STATUS: deployed" in release.output, release.output
    # The apiserver's PodSecurity admission warns about a Deployment whose pods would be refused.
    assert "would violate PodSecurity" not in release.output, release.output
    # NOTES.txt, rendered: how to boot the example and where the metrics are.
    assert "kubectl wait --for=condition=Ready instance/demo" in release.output
    assert f"{release.name}-kubenova-metrics.{release.namespace}.svc:9464/metrics" in release.output

    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    deployment = apps.read_namespaced_deployment(f"{release.name}-kubenova", release.namespace)
    assert deployment.spec.replicas == 1 and deployment.spec.strategy.type == "Recreate"
    core.read_namespaced_service_account(release.service_account, release.namespace)
    rbac = client.RbacAuthorizationV1Api(api)
    role = rbac.read_cluster_role(f"{release.name}-kubenova")
    assert any("instances/status" in rule.resources for rule in role.rules)
    rbac.read_namespaced_role(f"{release.name}-kubenova-node-lease", "kube-node-lease")
    # No controller-manager here: the Deployment never gets a pod (see the module docstring).
    assert core.list_namespaced_pod(release.namespace).items == []


def test_state_directory_claim_is_created_and_mounted(release, api):
    """The operator's state (--state-dir: instances, volumes, certificates) is on the chart's
    PersistentVolumeClaim, of the values' class and size, kept by `helm uninstall`."""
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    claim = core.read_namespaced_persistent_volume_claim(
        f"{release.name}-kubenova-state", release.namespace
    )
    assert claim.spec.access_modes == ["ReadWriteOnce"]
    assert claim.spec.storage_class_name == "kubenova-test"
    assert claim.spec.resources.requests == {"storage": "3Gi"}
    assert claim.metadata.annotations["helm.sh/resource-policy"] == "keep"
    deployment = apps.read_namespaced_deployment(f"{release.name}-kubenova", release.namespace)
    pod = deployment.spec.template.spec
    (state,) = [v for v in pod.volumes if v.persistent_volume_claim]
    assert state.persistent_volume_claim.claim_name == claim.metadata.name
    mounts = {m.name: m.mount_path for m in pod.containers[0].volume_mounts}
    state_dir = next(a for a in pod.containers[0].args if a.startswith("--state-dir="))
    assert state_dir.split("=", 1)[1].startswith(mounts[state.name] + "/")
    assert deployment.spec.strategy.type == "Recreate"


def test_operator_pod_is_admitted_under_pod_security_restricted(release, api):
    """The real PodSecurity admission plugin judges the Deployment's pod template (dry run);
    a variant on the host's network is refused, so the namespace's policy is really enforced."""
    core = client.CoreV1Api(api)
    deployment = find(release.objects(), "Deployment")
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "operator-dry-run", **deployment["spec"]["template"]["metadata"]},
        "spec": deployment["spec"]["template"]["spec"],
    }
    core.create_namespaced_pod(release.namespace, pod, dry_run="All")

    host_network = copy.deepcopy(pod)
    host_network["spec"]["hostNetwork"] = True
    with pytest.raises(client.ApiException) as refused:
        core.create_namespaced_pod(release.namespace, host_network, dry_run="All")
    assert refused.value.status == 403 and "PodSecurity" in refused.value.body


@pytest.mark.parametrize(
    ("resource", "expect_missing"),
    [
        ("instances/status", ["patch instances/status (compute.kubenova.io)"]),
        (
            "resourceproviders",
            [
                f"{verb} resourceproviders (compute.kubenova.io)"
                for verb in ("create", "get", "list", "patch", "update", "watch")
            ],
        ),
    ],
)
def test_operator_without_one_rule_stops_naming_it(
    cluster, api, crds, release, tmp_path, resource, expect_missing
):
    """The chart's RBAC, rendered for another ServiceAccount with one resource dropped from
    its ClusterRole, applied; the operator run as that account exits at start-up and its log
    lists exactly what is missing (kube/permissions.py)."""
    name = f"crippled-{uuid.uuid4().hex[:6]}"
    objects = ours(
        render(
            {**VALUES, "fullnameOverride": name}, release=release.name, namespace=release.namespace
        ),
        release=release.name,
    )
    role = find(objects, "ClusterRole")
    kept = []
    for rule in role["rules"]:
        rest = [r for r in rule["resources"] if r != resource]
        if rest:
            kept.append({**rule, "resources": rest})
    assert kept != role["rules"]
    role["rules"] = kept
    created = _apply(api, [o for o in objects if o["kind"] in RBAC_KINDS])
    try:
        kubeconfig = service_account_kubeconfig(
            cluster, api, release.namespace, name, tmp_path / "kubeconfig"
        )
        process, _ = local_operator(objects, tmp_path / "op", kubeconfig)
        process.start()
        try:
            wait_for(lambda: not process.alive(), 90, "the operator to stop")
        finally:
            process.stop()
        log = (tmp_path / "op" / "operator.log").read_text()
        user = f"system:serviceaccount:{release.namespace}:{name}"
        header = f'user "{user}" lacks {len(expect_missing)} permission(s) the operator needs'
        assert header in log, log[-3000:]
        listed = [line.strip()[2:].split(":")[0] for line in log.splitlines() if "  - " in line]
        assert listed == expect_missing, log[-3000:]
        # It stopped before touching anything: its embedded host was never registered by it.
        assert "registered compute host" not in log
    finally:
        _delete(api, created)


RBAC_KINDS = ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")


def _apply(api: client.ApiClient, objects: list[dict]) -> list[dict]:
    core, rbac = client.CoreV1Api(api), client.RbacAuthorizationV1Api(api)
    create = {
        "ServiceAccount": lambda o: core.create_namespaced_service_account(
            o["metadata"]["namespace"], o
        ),
        "ClusterRole": rbac.create_cluster_role,
        "ClusterRoleBinding": rbac.create_cluster_role_binding,
        "Role": lambda o: rbac.create_namespaced_role(o["metadata"]["namespace"], o),
        "RoleBinding": lambda o: rbac.create_namespaced_role_binding(o["metadata"]["namespace"], o),
    }
    done = []
    for obj in sorted(objects, key=lambda o: RBAC_KINDS.index(o["kind"])):
        create[obj["kind"]](obj)
        done.append(obj)
    return done


def _delete(api: client.ApiClient, objects: list[dict]) -> None:
    core, rbac = client.CoreV1Api(api), client.RbacAuthorizationV1Api(api)
    for obj in objects:
        meta = obj["metadata"]
        delete = {
            "ServiceAccount": lambda m: core.delete_namespaced_service_account(
                m["name"], m["namespace"]
            ),
            "ClusterRole": lambda m: rbac.delete_cluster_role(m["name"]),
            "ClusterRoleBinding": lambda m: rbac.delete_cluster_role_binding(m["name"]),
            "Role": lambda m: rbac.delete_namespaced_role(m["name"], m["namespace"]),
            "RoleBinding": lambda m: rbac.delete_namespaced_role_binding(m["name"], m["namespace"]),
        }[obj["kind"]]
        try:
            delete(meta)
        except client.ApiException as err:
            if err.status != 404:
                raise


def test_every_permission_the_operator_checks_is_one_the_apiserver_knows(release, kubectl):
    """The start-up check asks about real resources: each (group, resource) in the chart's
    rules, subresources included, is in the apiserver's discovery (kubevirt.io aside: KubeVirt
    is not installed here). A misspelt resource would otherwise be granted and checked in vain."""

    def raw(path: str) -> dict:
        result = kubectl("get", "--raw", path)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    discovered = {("", r["name"]) for r in raw("/api/v1")["resources"]}
    for group in raw("/apis")["groups"]:
        version = group["preferredVersion"]["groupVersion"]
        discovered |= {(group["name"], r["name"]) for r in raw(f"/apis/{version}")["resources"]}
    for values in ({"driver": d, "admission.enabled": True} for d in ("pod", "kubevirt", "qemu")):
        rules = [rule for o in ours(render(values)) for rule in o.get("rules", [])]
        for perm in permissions.expand(rules):
            if perm.group != "kubevirt.io":
                assert (perm.group, perm.resource) in discovered, perm
