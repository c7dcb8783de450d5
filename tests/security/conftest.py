"""The attacker's suite: the operator as `kubenova run` starts it (admission webhook on
loopback, console endpoint), with Nova's FakeDriver serving every compute Node so that
instances boot at once; two projects, A (the attacker's) and B (the victim's), and real
credentials bound to the tenant roles: client certificates and ServiceAccount tokens.

One operator per module; the apiserver is the session's.
"""

from __future__ import annotations

import contextlib
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import config

from kubenova.devcluster.cluster import LOOPBACK, free_port
from kubenova.embedded import embedded_operator, start_admitting_operator
from tests.cloud import remove_test_hosts
from tests.kit import (
    all_instances,
    delete_all,
    delete_networks,
    image_dir_args,
    remove_webhooks,
    wait_for,
)
from tests.security.kit import ATTACKS, Projects, SecurityOperator, User
from tests.tenants import (
    MEMBER,
    VIEWER,
    bind,
    group,
    install_tenant_roles,
    make_projects,
    remove_projects,
    token_kubeconfig,
)


def _accepts(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((LOOPBACK, port), timeout=1):
        return True
    return False


@pytest.fixture(scope="module")
def operator(cluster, api, crds, tmp_path_factory) -> Iterator[SecurityOperator]:
    """`kubenova run`'s operator (embedded_operator + start_admitting_operator: the webhook
    answers before anything is applied), on the fake driver and a free console port."""
    work = tmp_path_factory.mktemp("security-op")
    console_port = free_port()
    process = embedded_operator(
        cluster,
        work,
        hosts=0,
        metrics_port=0,
        extra_args=(
            "--driver=fake",
            f"--console-listen={LOOPBACK}:{console_port}",
            *image_dir_args(work),
        ),
    )
    try:
        start_admitting_operator(api, process)
        handle = SecurityOperator(
            work / "operator", work / "operator.log", f"https://{LOOPBACK}:{console_port}"
        )
        wait_for(
            lambda: handle.console_ca.is_file() and _accepts(console_port),
            30,
            "the console endpoint",
        )
        yield handle
        delete_all(api, "instances")
        wait_for(lambda: not all_instances(api), 120, "instances to be deleted")
        delete_networks(api)
    finally:
        process.stop()
        remove_webhooks(api)
        remove_test_hosts(api)


def _user(name: str, path: Path) -> User:
    return User(name, path, config.new_client_from_config(str(path)))


@pytest.fixture(scope="module")
def projects(cluster, api, kubectl, crds, tmp_path_factory) -> Iterator[Projects]:
    install_tenant_roles(kubectl)
    suffix = uuid.uuid4().hex[:6]
    a, b = f"t-sec-a-{suffix}", f"t-sec-b-{suffix}"
    make_projects(api, a, b)
    bind(api, a, "a-members", MEMBER, group("a-members"))
    bind(api, a, "a-viewers", VIEWER, group("a-viewers"))
    bind(api, b, "b-members", MEMBER, group("b-members"))
    work = tmp_path_factory.mktemp("credentials")

    def cert(user: str, *groups: str) -> User:
        path = work / f"kubeconfig-{user}"
        path.write_text(cluster.kubeconfig_for(user, groups))
        return _user(user, path)

    def token(account: str, role: str) -> User:
        path = token_kubeconfig(cluster, api, a, account, role, work / f"kubeconfig-{account}")
        return _user(f"system:serviceaccount:{a}:{account}", path)

    users = Projects(
        a,
        b,
        alice=cert("alice", "a-members"),
        robot=token("robot", MEMBER),
        carol=cert("carol", "a-viewers"),
        peeker=token("peeker", VIEWER),
        bob=cert("bob", "b-members"),
        mallory=cert("mallory"),
    )
    try:
        yield users
    finally:
        for user in (users.alice, users.robot, users.carol, users.peeker, users.bob):
            user.api.close()
        users.mallory.api.close()
        remove_projects(api, a, b)


def pytest_terminal_summary(terminalreporter):
    """How many attacks were refused; with $KUBENOVA_ATTACK_LOG, each one and its exact
    refusal, written there as Markdown (for the record: the closing note quotes them)."""
    if not ATTACKS:
        return
    path = os.environ.get("KUBENOVA_ATTACK_LOG")
    if path:
        lines = [f"- {what}: `{message}`" for what, message in ATTACKS]
        Path(path).write_text("\n".join(["# Attacks tried and their refusals", "", *lines, ""]))
    where = f" (each in {path})" if path else " (set KUBENOVA_ATTACK_LOG=FILE to list them)"
    terminalreporter.write_line(f"security: {len(ATTACKS)} attacks refused{where}")
