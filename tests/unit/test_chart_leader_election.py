"""The chart's leader election (values `replicas`, `leaderElection`), rendered with `helm template`:
the flags, the downward-API identity, the one Lease's (and the webhook CA Secret's) RBAC on top of
what the operator checks it needs, the update strategy, and the combinations it refuses."""

from __future__ import annotations

import pytest

from kubenova.cli import build_parser
from kubenova.kube import permissions
from kubenova.kube.permissions import Permission
from tests.chart import (
    CHART,
    KUBE_VERSION,
    find,
    helm,
    operator_config,
    operator_container,
    ours,
    render,
)

ELECTED = {"leaderElection.enabled": True}
TWO = {**ELECTED, "replicas": 2, "persistence.enabled": False}
LEASE = "nova-kubenova"
SECRET = "nova-kubenova-webhook-ca"


def granted(objects: list[dict]) -> set[Permission]:
    """What the release's ClusterRole and Roles grant, as single permissions."""
    perms: set[Permission] = set()
    for obj in ours(objects):
        if obj["kind"] == "ClusterRole":
            perms |= permissions.expand(obj["rules"])
        elif obj["kind"] == "Role":
            perms |= permissions.expand(obj["rules"], obj["metadata"]["namespace"])
    return perms


def lease_permissions(namespace: str = "nova-system") -> set[Permission]:
    return {
        Permission("coordination.k8s.io", "leases", "create", namespace),
        Permission("coordination.k8s.io", "leases", "get", namespace, LEASE),
        Permission("coordination.k8s.io", "leases", "update", namespace, LEASE),
    }


def secret_permissions(namespace: str = "nova-system") -> set[Permission]:
    return {
        Permission("", "secrets", "get", namespace, SECRET),
        Permission("", "secrets", "update", namespace, SECRET),
    }


def env_of(objects) -> dict:
    return {e["name"]: e for e in operator_container(objects)["env"]}


def test_off_by_default_one_replica_recreate_and_the_pod_knows_its_name():
    objects = render({})
    deployment = find(objects, "Deployment")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    args = operator_container(objects)["args"]
    assert not [a for a in args if a.startswith(("--leader-elect", "--webhook-ca-secret"))]
    assert not [o for o in ours(objects) if o["metadata"]["name"].endswith("-leader-election")]
    env = env_of(objects)
    assert env["POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["POD_NAMESPACE"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}


def test_extra_env_still_comes_after_the_downward_api():
    env = env_of(render({"extraEnv.KUBENOVA_ACCEL": "tcg"}))
    assert list(env) == ["POD_NAME", "POD_NAMESPACE", "KUBENOVA_ACCEL"]
    assert env["KUBENOVA_ACCEL"]["value"] == "tcg"


def test_the_flags_name_the_releases_lease_and_clients_go_durations():
    args = operator_container(render(ELECTED))["args"]
    parsed = build_parser().parse_args(args)
    assert parsed.leader_elect is True
    assert parsed.leader_elect_resource_name == LEASE
    assert parsed.leader_elect_resource_namespace is None, "POD_NAMESPACE: the release's"
    durations = (
        parsed.leader_elect_lease_duration,
        parsed.leader_elect_renew_deadline,
        parsed.leader_elect_retry_period,
    )
    assert durations == (15, 10, 2)
    assert parsed.webhook_ca_secret is None, "no webhook, no CA to share"


def test_durations_from_the_values(tmp_path):
    values = tmp_path / "values.yaml"
    values.write_text(
        "leaderElection: {enabled: true, leaseDuration: 7.5, renewDeadline: 5, retryPeriod: 1.5}\n"
    )
    out = helm(
        "template",
        "nova",
        str(CHART),
        "-n",
        "nova-system",
        f"--kube-version={KUBE_VERSION}",
        "-f",
        str(values),
    )
    assert "--leader-elect-lease-duration=7.5" in out
    assert "--leader-elect-renew-deadline=5" in out
    assert "--leader-elect-retry-period=1.5" in out


@pytest.mark.parametrize("admission", [False, True])
def test_rbac_adds_only_the_one_lease_and_the_one_secret(admission, monkeypatch):
    """What the operator checks it needs at start-up (kube/permissions.py; the chart's test
    keeps that equal to the ClusterRole and Roles) includes the Lease: create in the release's
    namespace, get and update of that one; with admission, get and update of the webhook CA
    Secret, no list, no other Secret."""
    objects = render({**ELECTED, "admission.enabled": admission})
    monkeypatch.setenv("POD_NAMESPACE", "nova-system")  # the downward API's, in the pod
    config = operator_config(operator_container(objects)["args"])
    extra = lease_permissions() | (secret_permissions() if admission else set())
    required = set(permissions.required(config))
    assert extra <= required
    assert granted(objects) == required
    role = find(ours(objects), "Role", "nova-kubenova-leader-election")
    assert role["metadata"]["namespace"] == "nova-system"
    binding = find(ours(objects), "RoleBinding", "nova-kubenova-leader-election")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": "nova-kubenova-leader-election",
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "nova-kubenova", "namespace": "nova-system"}
    ]


def test_with_admission_the_replicas_share_the_webhook_ca_through_the_charts_empty_secret():
    objects = render({**TWO, "admission.enabled": True})
    secret = find(ours(objects), "Secret", SECRET)
    assert secret["metadata"]["namespace"] == "nova-system"
    assert "data" not in secret and "stringData" not in secret, "the operator fills it"
    args = operator_container(objects)["args"]
    assert f"--webhook-ca-secret={SECRET}" in args
    parsed = build_parser().parse_args(args)
    assert parsed.webhook_ca_secret == SECRET
    assert not [o for o in ours(render(TWO)) if o["kind"] == "Secret"]


def test_two_replicas_on_emptydirs_roll_an_upgrade():
    """The new pod stands by until the old leader, stopping, gives the Lease up."""
    deployment = find(render(TWO), "Deployment")
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
    }
    shared = {**ELECTED, "replicas": 2, "persistence.accessMode": "ReadWriteMany"}
    assert find(render(shared), "Deployment")["spec"]["strategy"]["type"] == "RollingUpdate"


def test_one_readwriteonce_claim_keeps_recreate_even_with_leader_election():
    deployment = find(render(ELECTED), "Deployment")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}


@pytest.mark.parametrize(
    ("values", "refusal"),
    [
        ({"replicas": 2}, "needs leaderElection.enabled=true"),
        ({**ELECTED, "replicas": 2}, "persistence.enabled=false"),
        (
            {**ELECTED, "replicas": 2, "persistence.accessMode": "ReadWriteOncePod"},
            "ReadWriteOnce claim",
        ),
        ({**TWO, "driver": "qemu"}, "driver pod or kubevirt"),
        ({**ELECTED, "leaderElection.renewDeadline": 15}, "greater than leaderElection.renew"),
        ({**ELECTED, "leaderElection.retryPeriod": 9}, "1.2 x leaderElection.retryPeriod"),
        ({"replicas": 0}, "minimum"),
        ({"leaderElection.retryPeriod": 0}, "retryPeriod"),
        ({"leaderElection.enable": True}, "enable"),
    ],
)
def test_refused(values, refusal):
    args = [a for k, v in values.items() for a in ("--set", f"{k}={v}")]
    out = helm("template", "nova", str(CHART), f"--kube-version={KUBE_VERSION}", *args, check=False)
    assert "Error" in out and refusal in out, out


def test_the_lease_namespace_is_the_pods():
    """Without --leader-elect-resource-namespace the operator takes $POD_NAMESPACE, which the
    chart sets to the pod's (the release's) namespace: where the Role grants the Lease."""
    from kubenova.leader import default_namespace

    env = env_of(render(ELECTED))
    assert env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    assert default_namespace({"POD_NAMESPACE": "nova-system"}) == "nova-system"
