"""Projects are namespaces, isolated by RBAC with the roles in examples/rbac (keystone's
projects and Nova's policy): real client certificates, real authorization, no operator needed.
"""

from __future__ import annotations

import uuid

import pytest
import yaml

from kubenova import GROUP, VERSION
from tests.tenants import (
    MEMBER,
    VIEWER,
    bind,
    group,
    install_tenant_roles,
    make_projects,
    remove_projects,
)

pytestmark = pytest.mark.integration
API = f"{GROUP}/{VERSION}"


def manifest(kind: str, name: str, namespace: str, spec: dict) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": API,
            "kind": kind,
            "metadata": {"name": name, "namespace": namespace},
            "spec": spec,
        }
    )


INSTANCE = {"flavor": "m1.tiny", "image": "cirros"}
VOLUME = {"sizeGiB": 1}
KEYPAIR = {"publicKey": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKb3bX0 bob@laptop"}
PORT = {"network": "private", "ipAddress": "10.0.0.5", "macAddress": "fa:16:3e:00:00:05"}


@pytest.fixture
def projects(api, kubectl, crds):
    """Two projects, each with a member (alice in A, bob in B) and a viewer of A (carol)."""
    install_tenant_roles(kubectl)
    suffix = uuid.uuid4().hex[:6]
    a, b = f"proj-a-{suffix}", f"proj-b-{suffix}"
    make_projects(api, a, b)
    bind(api, a, "a-members", MEMBER, group("a-members"))
    bind(api, b, "b-members", MEMBER, group("b-members"))
    bind(api, a, "a-viewers", VIEWER, group("a-viewers"))
    yield a, b
    remove_projects(api, a, b)


def forbidden(result) -> bool:
    return result.returncode != 0 and "Forbidden" in result.stderr


def test_members_are_confined_to_their_project(cluster, kubectl, projects):
    a, b = projects
    alice = cluster.write_kubeconfig_for("alice", ("a-members",))
    bob = cluster.write_kubeconfig_for("bob", ("b-members",))

    # Bob uses compute in B: instances, volumes, keypairs are his to create.
    for kind, spec in (("Instance", INSTANCE), ("Volume", VOLUME), ("Keypair", KEYPAIR)):
        made = kubectl("apply", "-f", "-", stdin=manifest(kind, "b-own", b, spec), kubeconfig=bob)
        assert made.returncode == 0, made.stderr
    # Ports are the operator's (neutron's) to make: an admin stands in for it here.
    port = manifest("Port", "private-10-0-0-5", b, PORT)
    assert forbidden(kubectl("apply", "-f", "-", stdin=port, kubeconfig=bob))
    assert kubectl("apply", "-f", "-", stdin=port).returncode == 0
    listed = kubectl("get", "ports", "-n", b, "-o", "name", kubeconfig=bob)
    assert listed.stdout.strip() == "port.compute.kubenova.io/private-10-0-0-5", listed.stderr

    # Alice, a member of A only, can do nothing with any of B's objects.
    for plural, name in (
        ("instances", "b-own"),
        ("volumes", "b-own"),
        ("keypairs", "b-own"),
        ("ports", "private-10-0-0-5"),
    ):
        assert forbidden(kubectl("get", plural, "-n", b, kubeconfig=alice)), plural
        assert forbidden(kubectl("get", plural, name, "-n", b, kubeconfig=alice)), plural
        patch = kubectl(
            "patch", plural, name, "-n", b, "--type=merge",
            "-p", '{"metadata":{"labels":{"owned-by":"alice"}}}', kubeconfig=alice,
        )  # fmt: skip
        assert forbidden(patch), plural
        assert forbidden(kubectl("delete", plural, name, "-n", b, kubeconfig=alice)), plural
        # ...and B's object is still there, untouched.
        still = kubectl("get", plural, name, "-n", b, "-o", "jsonpath={.metadata.labels}")
        assert still.returncode == 0 and "alice" not in still.stdout, plural
    # In her own project she can.
    mine = kubectl(
        "apply", "-f", "-", stdin=manifest("Instance", "a-own", a, INSTANCE), kubeconfig=alice
    )
    assert mine.returncode == 0, mine.stderr
    assert kubectl("get", "instances", "-n", a, "-o", "name", kubeconfig=alice).stdout.strip() == (
        "instance.compute.kubenova.io/a-own"
    )

    # Members read their Quota but cannot raise it.
    quota = manifest("Quota", "default", b, {"instances": 1000})
    assert forbidden(kubectl("apply", "-f", "-", stdin=quota, kubeconfig=bob))
    assert kubectl("apply", "-f", "-", stdin=quota).returncode == 0
    assert kubectl("get", "quota", "default", "-n", b, kubeconfig=bob).returncode == 0
    assert forbidden(
        kubectl(
            "patch",
            "quota",
            "default",
            "-n",
            b,
            "--type=merge",
            "-p",
            '{"spec":{"cores":999}}',
            kubeconfig=bob,
        )
    )


def test_viewer_reads_but_cannot_create(cluster, kubectl, projects):
    a, _ = projects
    carol = cluster.write_kubeconfig_for("carol", ("a-viewers",))
    assert (
        kubectl("apply", "-f", "-", stdin=manifest("Instance", "seen", a, INSTANCE)).returncode == 0
    )
    seen = kubectl("get", "instances", "-n", a, "-o", "name", kubeconfig=carol)
    assert seen.stdout.strip() == "instance.compute.kubenova.io/seen", seen.stderr
    for kind, spec in (
        ("Instance", INSTANCE),
        ("Volume", VOLUME),
        ("Keypair", KEYPAIR),
        ("Network", {"cidr": "10.0.0.0/24"}),
    ):
        made = kubectl("apply", "-f", "-", stdin=manifest(kind, "nope", a, spec), kubeconfig=carol)
        assert forbidden(made), kind
    assert forbidden(kubectl("delete", "instance", "seen", "-n", a, kubeconfig=carol))


def test_flavors_readable_by_all_writable_by_admins(cluster, kubectl, projects):
    name = f"m1-{uuid.uuid4().hex[:6]}"
    flavor = yaml.safe_dump(
        {
            "apiVersion": API,
            "kind": "Flavor",
            "metadata": {"name": name},
            "spec": {"vcpus": 1, "ramMiB": 512},
        }
    )
    member = cluster.write_kubeconfig_for("alice", ("a-members",))
    stranger = cluster.write_kubeconfig_for("dave", ())  # authenticated, in no project
    assert forbidden(kubectl("apply", "-f", "-", stdin=flavor, kubeconfig=member))
    assert kubectl("apply", "-f", "-", stdin=flavor).returncode == 0  # cluster admin
    try:
        for who in (member, stranger):
            got = kubectl("get", "flavor", name, "-o", "jsonpath={.spec.vcpus}", kubeconfig=who)
            assert got.stdout == "1", got.stderr
            assert forbidden(kubectl("delete", "flavor", name, kubeconfig=who))
    finally:
        kubectl("delete", "flavor", name)
