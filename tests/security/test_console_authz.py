"""The console endpoint authorizes as the apiserver would: it authenticates the caller (a client
certificate of the cluster's CA, or a token the apiserver vouches for) and asks the apiserver
whether they may `get instances/console` of that instance (SubjectAccessReview). A member reads
their own project's consoles; a viewer cannot (Nova's os-console-output is a member's); nobody
reads another project's, nor learns whether an instance exists there; no credentials, a forged
token or a certificate of another CA get nothing."""

from __future__ import annotations

import ssl
import urllib.error
import urllib.request

import pytest

from kubenova.console.client import ConsoleClient, ConsoleError, Credentials
from kubenova.pki import CertificateAuthority
from tests.cloud import Cloud
from tests.security.kit import ATTACKS, Projects, SecurityOperator, User, console_refusal

pytestmark = [pytest.mark.integration, pytest.mark.security]


@pytest.fixture(scope="module")
def consoles(operator, api, projects: Projects, tmp_path_factory) -> dict[str, str]:
    """An ACTIVE instance in each project: namespace -> its uid."""
    uids = {}
    for ns, name in ((projects.a, "vm-a"), (projects.b, "vm-b")):
        cloud = Cloud(api, ns, tmp_path_factory.mktemp(ns))
        cloud.node("host")
        cloud.instance(name)
        assert cloud.host_of(name) == f"{ns}-host"
        uids[ns] = cloud.get(name)["metadata"]["uid"]
    return uids


def read(operator: SecurityOperator, user: User, namespace: str, name: str) -> str:
    text, _ = user.console(operator.console_url, operator.console_ca).read(namespace, name)
    return text


def cannot(user: User, name: str, namespace: str) -> str:
    return (
        f'403: user "{user.name}" cannot get instances/console of {name} in namespace {namespace}'
    )


def test_members_read_their_own_projects_console(operator, consoles, projects: Projects):
    for user in projects.attackers:  # certificate and token alike
        assert (
            read(operator, user, projects.a, "vm-a") == f"fake console of {consoles[projects.a]}\n"
        )
    assert read(operator, projects.bob, projects.b, "vm-b") == (
        f"fake console of {consoles[projects.b]}\n"
    )


def test_viewers_cannot_read_the_console(operator, consoles, projects: Projects):
    for user in (projects.carol, projects.peeker):
        status, message = console_refusal(
            f"{user.name} (viewer of A): console of A's vm-a",
            lambda u=user: read(operator, u, projects.a, "vm-a"),
        )
        assert (status, message) == (403, cannot(user, "vm-a", projects.a))


def test_nobody_reads_another_projects_console(operator, consoles, projects: Projects):
    outsiders = (
        (projects.alice, "member of A"),
        (projects.robot, "member of A"),
        (projects.carol, "viewer of A"),
        (projects.mallory, "in no project"),
    )
    for user, who in outsiders:
        status, message = console_refusal(
            f"{user.name} ({who}): console of B's vm-b",
            lambda u=user: read(operator, u, projects.b, "vm-b"),
        )
        assert (status, message) == (403, cannot(user, "vm-b", projects.b))
    # An instance B does not have is refused the same way: nothing to learn from a 404.
    status, message = console_refusal(
        "alice (member of A): console of an instance B does not have",
        lambda: read(operator, projects.alice, projects.b, "no-such-vm"),
    )
    assert (status, message) == (403, cannot(projects.alice, "no-such-vm", projects.b))


def test_no_credentials_or_forged_ones_get_nothing(
    operator, consoles, projects: Projects, tmp_path
):
    url = f"{operator.console_url}/instances/{projects.a}/vm-a/console"
    context = ssl.create_default_context(cafile=str(operator.console_ca))

    def plain(headers: dict[str, str]) -> tuple[int, str]:
        request = urllib.request.Request(url, headers=headers)
        try:
            urllib.request.urlopen(request, context=context, timeout=10)
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode().strip()
        raise AssertionError("the console was read")

    anonymous = plain({})
    assert anonymous == (401, "Unauthorized: present a client certificate or a bearer token")
    forged = plain({"Authorization": "Bearer not-a-real-token"})
    assert forged == anonymous
    ATTACKS.append(("anonymous: console of A's vm-a", f"{anonymous[0]} {anonymous[1]}"))
    ATTACKS.append(("a forged bearer token: console of A's vm-a", f"{forged[0]} {forged[1]}"))

    # A certificate claiming to be a cluster admin, from a CA the cluster does not trust: the
    # TLS handshake itself fails.
    rogue = CertificateAuthority.create("rogue-ca")
    cert, key = rogue.client("kubenova-admin", ("system:masters",)).write(tmp_path, "rogue")
    impostor = ConsoleClient(
        operator.console_url, operator.console_ca, Credentials(str(cert), str(key))
    )
    status, message = console_refusal(
        "a certificate of another CA (CN=kubenova-admin, O=system:masters): console of A's vm-a",
        lambda: impostor.read(projects.a, "vm-a"),
    )
    assert status is None and message.startswith("cannot reach the console endpoint"), message
    with pytest.raises(ConsoleError):
        impostor.read(projects.b, "vm-b")


def test_a_name_cannot_climb_into_another_namespace(operator, consoles, projects: Projects):
    """The endpoint authorizes (namespace, name) as given, so it only takes Kubernetes names:
    a name with slashes, dots or `%` (aimed at B's vm-b through the path the operator reads
    it from) is refused before anything is authorized or read."""
    b = projects.b
    for namespace, name in (
        (projects.a, f"../../{b}/instances/vm-b"),
        (projects.a, f"..%2F..%2F{b}%2Finstances%2Fvm-b"),
        (projects.a, f"vm-a/../../../namespaces/{b}/instances/vm-b"),
        (f"{projects.a}/../{b}", "vm-b"),
    ):
        status, message = console_refusal(
            f"alice (member of A): console of {namespace}/{name}",
            lambda ns=namespace, n=name: read(operator, projects.alice, ns, n),
        )
        assert (status, message) == (
            400,
            "400: not an instance: the namespace and name must be Kubernetes names",
        ), name
