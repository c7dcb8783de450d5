"""A tenant makes the operator read for them: Images whose source is a host file outside the
allowed directories (`/etc/shadow`, a `..` escape, a symlink out of the allowed directory) or a
URL to a loopback, link-local (the cloud's metadata service), private or unique-local address,
or an allowed URL that redirects to one.

Real credentials: members of project A with a client certificate (alice) and a ServiceAccount
token (robot), bound to kubenova-member (tests/security/conftest.py). Twice:

- TestRefusedAtApply: the operator serves its admission webhook; each create is refused at
  apply with a message naming the policy rule and its configuration key, and nothing is made
  (a redirect cannot be seen at apply: that Image is admitted, and killed by the importer);
- TestRefusedByImporter: no webhook (it is bypassed); each object is created, and the importer
  refuses it before reading a byte: phase `killed`, the same message, no hash and no size.

The import policy here: host paths only under one directory of the test's, URLs to 127.0.0.1 on
the test server's port (an explicit allowance: loopback is refused otherwise) and to ports 80
and 443.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from kubernetes import client

from kubenova import GROUP, VERSION
from kubenova.devcluster.cluster import free_port
from tests.kit import remove_webhooks, running_operator, wait_for, webhook_answers
from tests.redirecting_server import RedirectingServer, serving
from tests.security.kit import ATTACKS, Projects, User, refusal

pytestmark = [pytest.mark.integration, pytest.mark.security]
API = f"{GROUP}/{VERSION}"
WEBHOOK = 'admission webhook "image-create.kubenova.compute.kubenova.io" denied the request'
TINY = b"\0" * 4096
TINY_SUM = hashlib.sha256(TINY).hexdigest()
POLICY = "refused by image import policy"
SHADOW = Path("/etc/shadow")


@pytest.fixture(scope="module")
def server() -> Iterator[RedirectingServer]:
    with serving(TINY) as srv:
        yield srv


@pytest.fixture(scope="module")
def allowed(tmp_path_factory) -> Path:
    """The one directory Image files may come from: a good image, and a symlink out."""
    path = tmp_path_factory.mktemp("allowed-images")
    (path / "tiny.raw").write_bytes(TINY)
    (path / "shadow").symlink_to(SHADOW)
    return path


@dataclass(frozen=True)
class Attack:
    what: str
    source: str
    reason: str
    """The refusal's text after 'refused by image import policy: '."""


def path_reason(allowed: Path) -> str:
    return (
        "host paths must resolve (symlinks and .. followed) to a file under one of "
        f"[{allowed}] (imageImport.allowedPathPrefixes)"
    )


def address_reason(what: str, kind: str) -> str:
    return (
        f"{what}, a {kind} address; non-public addresses need an explicit allowance "
        "(imageImport.allowedNetworks)"
    )


def attacks(allowed: Path) -> list[Attack]:
    paths = path_reason(allowed)
    return [
        Attack("a host file outside the allowed directories", "/etc/shadow", paths),
        Attack(
            "a .. escape from the allowed directory",
            f"{allowed}/../../../../../../../etc/shadow",
            paths,
        ),
        Attack("a symlink out of the allowed directory", f"{allowed}/shadow", paths),
        Attack(
            "the operator's ServiceAccount token",
            "/var/run/secrets/kubernetes.io/serviceaccount/token",
            paths,
        ),
        Attack(
            "a loopback URL",
            "http://127.0.0.2/img",
            address_reason("address 127.0.0.2", "loopback"),
        ),
        Attack(
            "a loopback address spelt in hex (a name to the URL check, resolved)",
            "http://0x7f.0.0.2/img",
            address_reason("host 0x7f.0.0.2 resolves to 127.0.0.2", "loopback"),
        ),
        Attack(
            "an IPv6 loopback URL", "http://[::1]/img", address_reason("address ::1", "loopback")
        ),
        Attack(
            "the cloud's metadata service (link-local)",
            "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
            address_reason("address 169.254.169.254", "link-local"),
        ),
        Attack(
            "the metadata service as an IPv4-mapped IPv6 address",
            "http://[::ffff:169.254.169.254]/latest/meta-data/",
            address_reason("address 169.254.169.254", "link-local"),
        ),
        Attack(
            "a cluster service address (RFC 1918)",
            "https://10.96.0.1/api/v1/secrets",
            address_reason("address 10.96.0.1", "private"),
        ),
        Attack(
            "a private LAN address (RFC 1918)",
            "http://192.168.1.1/",
            address_reason("address 192.168.1.1", "private"),
        ),
        Attack(
            "a unique-local IPv6 address (ULA)",
            "http://[fd00::1]/img",
            address_reason("address fd00::1", "unique-local (ULA)"),
        ),
    ]


def image(name: str, source: str, checksum: str = "0" * 64) -> dict:
    return {
        "apiVersion": API,
        "kind": "Image",
        "metadata": {"name": name},
        "spec": {"source": source, "checksum": checksum, "diskFormat": "raw"},
    }


def create(user: User, namespace: str, body: dict, **extra) -> dict:
    return user.custom.create_namespaced_custom_object(
        GROUP, VERSION, namespace, "images", body, **extra
    )


def image_names(api: client.ApiClient, namespace: str) -> set[str]:
    items = client.CustomObjectsApi(api).list_namespaced_custom_object(
        GROUP, VERSION, namespace, "images"
    )["items"]
    return {i["metadata"]["name"] for i in items}


def ended(user: User, namespace: str, name: str) -> dict:
    def done():
        obj = user.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "images", name)
        status = obj.get("status") or {}
        return status if status.get("phase") in ("active", "killed") else None

    return wait_for(done, 60, f"image {name} to be imported or killed")


def operator_args(server: RedirectingServer, *extra: str) -> tuple[str, ...]:
    return (
        "--driver=fake",
        "--image-allowed-network=127.0.0.1/32",
        "--image-allowed-port=80",
        "--image-allowed-port=443",
        f"--image-allowed-port={server.port}",
        *extra,
    )


def assert_reveals_nothing(message: str) -> None:
    """Nothing about /etc/shadow's bytes: neither its sha256 nor its size."""
    data = SHADOW.read_bytes()
    assert hashlib.sha256(data).hexdigest() not in message
    assert f" {len(data)} " not in f" {message} "


# -- the webhook serves: refused at apply ------------------------------------------------------
@pytest.fixture(scope="class")
def admitting(cluster, api, crds, tmp_path_factory, server, allowed):
    work = tmp_path_factory.mktemp("image-sources-admission")
    args = operator_args(server, "--admission", f"--webhook-listen=127.0.0.1:{free_port()}")
    try:
        with running_operator(cluster, api, work, *args, image_dirs=[allowed]) as op:
            wait_for(lambda: webhook_answers(api), 60, "the apiserver to call the webhook")
            yield op
    finally:
        remove_webhooks(api)


class TestRefusedAtApply:
    def test_forbidden_sources_are_refused_with_the_rule(
        self, admitting, projects: Projects, api, allowed
    ):
        for user in projects.attackers:
            for index, attack in enumerate(attacks(allowed)):
                status, message = refusal(
                    f"{user.name} (member of A) creates an Image from {attack.what}: "
                    f"{attack.source}",
                    lambda u=user, a=attack, i=index: create(
                        u, projects.a, image(f"evil-{i}", a.source)
                    ),
                )
                assert (status, message) == (
                    403,
                    f"{WEBHOOK}: image source {attack.source} {POLICY}: {attack.reason}",
                ), attack.what
        assert not {n for n in image_names(api, projects.a) if n.startswith("evil-")}

    def test_kubectl_apply_names_the_policy(self, admitting, projects: Projects, kubectl, allowed):
        manifest = (
            f"apiVersion: {API}\nkind: Image\nmetadata:\n  name: shadow\n  namespace: "
            f'{projects.a}\nspec:\n  source: /etc/shadow\n  checksum: "{"0" * 64}"\n'
        )
        out = kubectl("apply", "-f", "-", stdin=manifest, kubeconfig=projects.alice.kubeconfig)
        ATTACKS.append(("alice: kubectl apply an Image from /etc/shadow", out.stderr.strip()))
        assert out.returncode != 0
        assert out.stderr.strip() == (
            f'Error from server: error when creating "STDIN": {WEBHOOK}: image '
            f"source /etc/shadow {POLICY}: {path_reason(allowed)}"
        )

    def test_allowed_sources_still_import(self, admitting, projects: Projects, server, allowed):
        user = projects.alice
        create(user, projects.a, image("good-file", f"{allowed}/tiny.raw", TINY_SUM))
        create(user, projects.a, image("good-url", server.url("/tiny.raw"), TINY_SUM))
        assert ended(user, projects.a, "good-file")["phase"] == "active"
        assert ended(user, projects.a, "good-url")["phase"] == "active"

    @pytest.mark.parametrize(
        ("target", "reason"),
        [
            (
                "http://169.254.169.254/latest/meta-data/",
                address_reason("address 169.254.169.254", "link-local"),
            ),
            ("http://127.0.0.2:{port}/tiny.raw", address_reason("address 127.0.0.2", "loopback")),
            ("http://10.0.0.1/tiny.raw", address_reason("address 10.0.0.1", "private")),
            ("file:///etc/shadow", "scheme file is not one of ['http', 'https'] "
             "(imageImport.allowedSchemes)"),
        ],
    )  # fmt: skip
    def test_a_redirect_to_a_forbidden_address_is_refused(
        self, admitting, projects: Projects, server, target, reason
    ):
        user = projects.robot
        target = target.format(port=server.port)
        source = server.url(f"/to?{target}")
        name = f"redirect-{hashlib.sha256(target.encode()).hexdigest()[:8]}"
        # The webhook sees an allowed URL; the importer follows it to the redirect.
        create(user, projects.a, image(name, source, hashlib.sha256(name.encode()).hexdigest()))
        status = ended(user, projects.a, name)
        ATTACKS.append(
            (
                f"{user.name}: an Image from an allowed URL redirecting to {target}",
                f"phase {status['phase']}: {status.get('message')}",
            )
        )
        assert status["phase"] == "killed"
        assert status["message"] == (
            f"image source {source} {POLICY}: redirect to {target} refused: {reason}"
        )
        assert server.requests.count(f"/to?{target}") == 1  # asked once, not retried


# -- the webhook bypassed: refused by the importer ---------------------------------------------
@pytest.fixture(scope="class")
def bypassed(cluster, api, crds, tmp_path_factory, server, allowed, projects: Projects):
    """The operator without its webhook, and none registered (the apiserver admits all)."""
    remove_webhooks(api)
    probe = image("probe", "/etc/shadow")
    wait_for(
        lambda: _admitted(projects.alice, projects.a, probe),
        30,
        "the apiserver to stop calling a webhook",
    )
    work = tmp_path_factory.mktemp("image-sources-bypassed")
    with running_operator(cluster, api, work, *operator_args(server), image_dirs=[allowed]) as op:
        yield op


def _admitted(user: User, namespace: str, body: dict) -> bool:
    try:
        create(user, namespace, body, dry_run="All")
    except client.ApiException:
        return False
    return True


class TestRefusedByImporter:
    def test_forbidden_sources_are_killed_and_reveal_nothing(
        self, bypassed, projects: Projects, allowed
    ):
        shadow_sum = hashlib.sha256(SHADOW.read_bytes()).hexdigest()
        for user, tag in ((projects.alice, "cert"), (projects.robot, "token")):
            made = []
            for index, attack in enumerate(attacks(allowed)):
                name = f"bypass-{tag}-{index}"
                # the attacker even pins the right checksum: still nothing is read
                checksum = shadow_sum if attack.source.endswith("shadow") else "0" * 64
                create(user, projects.a, image(name, attack.source, checksum))
                made.append((name, attack))
            for name, attack in made:
                status = ended(user, projects.a, name)
                ATTACKS.append(
                    (
                        f"webhook bypassed: {user.name} creates an Image from {attack.what}: "
                        f"{attack.source}",
                        f"phase {status['phase']}: {status.get('message')}",
                    )
                )
                assert status["phase"] == "killed", attack.what
                assert status["message"] == (
                    f"image source {attack.source} {POLICY}: {attack.reason}"
                ), attack.what
                assert "sizeBytes" not in status and "bytesSaved" not in status
                assert_reveals_nothing(status["message"])

    def test_a_checksum_mismatch_does_not_name_the_bytes_read(
        self, bypassed, projects: Projects, allowed
    ):
        user = projects.alice
        wrong = "0" * 64
        create(user, projects.a, image("mismatch", f"{allowed}/tiny.raw", wrong))
        status = ended(user, projects.a, "mismatch")
        ATTACKS.append(
            (
                "alice: an allowed file pinned to another checksum",
                f"phase {status['phase']}: {status.get('message')}",
            )
        )
        assert status == {
            "phase": "killed",
            "message": f"checksum mismatch for {allowed}/tiny.raw: the bytes read do not "
            f"have sha256 {wrong}",
            "updatedAt": status["updatedAt"],
        }
        assert TINY_SUM not in status["message"]
