"""The tenant roles exist once: examples/rbac and the chart's template are the same objects,
and they say what the README promises (members cannot write quotas, ports or flavors)."""

from pathlib import Path

import yaml

from kubenova.models.v1alpha1 import KINDS

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "rbac" / "tenant-roles.yaml"
CHART = ROOT / "charts" / "kubenova" / "templates" / "rbac-tenant-roles.yaml"
READ = {"get", "list", "watch"}
NAMESPACED = {k.crd.plural for k in KINDS if k.crd.scope == "Namespaced"}


def objects(path: Path) -> dict[str, dict]:
    return {f"{d['kind']}/{d['metadata']['name']}": d for d in yaml.safe_load_all(path.read_text())}


def verbs_on(role: dict, resource: str) -> set[str]:
    return {
        verb
        for rule in role["rules"]
        if "compute.kubenova.io" in rule["apiGroups"] and resource in rule["resources"]
        for verb in rule["verbs"]
    }


def test_chart_template_and_example_are_the_same_objects():
    assert objects(CHART) == objects(EXAMPLE)


def test_member_writes_tenant_kinds_but_only_reads_quotas_ports_and_flavors():
    member = objects(EXAMPLE)["ClusterRole/kubenova-member"]
    for plural in NAMESPACED - {"quotas", "ports"}:
        assert {"create", "delete", "patch"} <= verbs_on(member, plural), plural
    for plural in ("quotas", "ports", "flavors", "quotas/status", "instances/status"):
        assert verbs_on(member, plural) == READ, plural
    assert not verbs_on(member, "resourceproviders")


def test_viewer_only_reads_everything_a_tenant_has():
    viewer = objects(EXAMPLE)["ClusterRole/kubenova-viewer"]
    assert all(set(rule["verbs"]) == READ for rule in viewer["rules"])
    for plural in (*NAMESPACED, "flavors"):
        assert verbs_on(viewer, plural) == READ, plural


def test_flavors_readable_by_every_authenticated_user():
    docs = objects(EXAMPLE)
    assert verbs_on(docs["ClusterRole/kubenova-flavor-reader"], "flavors") == READ
    binding = docs["ClusterRoleBinding/kubenova-flavor-reader"]
    assert binding["roleRef"]["name"] == "kubenova-flavor-reader"
    assert binding["subjects"] == [
        {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "system:authenticated"}
    ]


def test_example_project_binds_the_tenant_roles():
    roles = {d["metadata"]["name"] for d in objects(EXAMPLE).values() if d["kind"] == "ClusterRole"}
    bindings = [
        d
        for d in yaml.safe_load_all((EXAMPLE.parent / "project-binding.yaml").read_text())
        if d["kind"] == "RoleBinding"
    ]
    assert {b["roleRef"]["name"] for b in bindings} == {"kubenova-member", "kubenova-viewer"}
    assert {b["roleRef"]["name"] for b in bindings} <= roles
