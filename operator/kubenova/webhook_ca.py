"""One webhook CA for every replica of the operator, kept in a Secret.

kopf puts the CA of the serving certificate in the ValidatingWebhookConfiguration's caBundle,
and the apiserver reaches whichever replica the webhook Service picks: every replica's serving
certificate must come from that one CA. Before the webhook server starts, the CA in the Secret
(`ca.crt`, `ca.key`) is written into the replica's certificate directory; the start-up
(pki.ensure_certificates) then issues this replica's serving certificate with it. The first
replica to find the Secret empty (the chart creates it empty, so the operator needs only get and
update on that one Secret) or absent fills it with its own CA, the one already in its directory
when it has one (an upgrade from one replica keeps the caBundle), a new one otherwise; a
resourceVersion-guarded update (or a create) settles a race: the loser takes the winner's.
"""

from __future__ import annotations

import base64
import logging
import os
import tempfile
from pathlib import Path

from kubernetes_asyncio import client

from kubenova.kube.client import ApiException
from kubenova.pki import CertificateAuthority, CertificateError

log = logging.getLogger("kubenova.webhook_ca")

CA_CERT, CA_KEY = "ca.crt", "ca.key"


def _decode(data: dict[str, str] | None) -> tuple[bytes, bytes] | None:
    if not data or CA_CERT not in data or CA_KEY not in data:
        return None
    return base64.b64decode(data[CA_CERT]), base64.b64decode(data[CA_KEY])


def _encode(ca: CertificateAuthority) -> dict[str, str]:
    return {
        CA_CERT: base64.b64encode(ca.cert_pem).decode(),
        CA_KEY: base64.b64encode(ca.key_pem).decode(),
    }


def local_ca(cert_dir: Path, ca_name: str) -> CertificateAuthority:
    """The CA already in `cert_dir` when it is usable, else a new one (not written yet)."""
    try:
        return CertificateAuthority.load(
            (cert_dir / CA_CERT).read_bytes(), (cert_dir / CA_KEY).read_bytes()
        )
    except (OSError, CertificateError):
        return CertificateAuthority.create(ca_name)


def install(cert_dir: Path, cert_pem: bytes, key_pem: bytes) -> bool:
    """Write the CA into `cert_dir` (key first, each atomically); False when it was there."""
    cert_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    files = [(cert_dir / CA_KEY, key_pem, 0o600), (cert_dir / CA_CERT, cert_pem, 0o644)]
    if all(path.is_file() and path.read_bytes() == data for path, data, _ in files):
        return False
    for target, data, mode in files:
        fd, tmp = tempfile.mkstemp(dir=cert_dir, prefix=f".{target.name}.")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.chmod(tmp, mode)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    return True


async def share_webhook_ca(
    api: client.ApiClient,
    namespace: str,
    name: str,
    cert_dir: Path,
    ca_name: str = "kubenova-webhook-ca",
) -> CertificateAuthority:
    """Make `cert_dir`'s CA the one in Secret `namespace/name` (filling the Secret first when
    it holds none); returns it. CertificateError when the Secret holds an unusable CA."""
    core = client.CoreV1Api(api)
    for _ in range(5):  # a lost race is re-read; five losses in a row is not a race
        try:
            secret = await core.read_namespaced_secret(name, namespace)
        except ApiException as err:
            if err.status != 404:
                raise
            secret = None
        held = _decode(secret.data if secret is not None else None)
        if held is not None:
            try:
                ca = CertificateAuthority.load(*held)
            except CertificateError as err:
                raise CertificateError(
                    f"Secret {namespace}/{name} holds no usable webhook CA ({err}); empty it "
                    "(or delete it) to have one made"
                ) from None
            if install(cert_dir, ca.cert_pem, ca.key_pem):
                log.info("webhook CA taken from Secret %s/%s into %s", namespace, name, cert_dir)
            return ca
        ca = local_ca(cert_dir, ca_name)
        try:
            if secret is None:
                body = {
                    "apiVersion": "v1",
                    "kind": "Secret",
                    "metadata": {"name": name, "namespace": namespace},
                    "type": "Opaque",
                    "data": _encode(ca),
                }
                await core.create_namespaced_secret(namespace, body)
            else:  # the chart's empty Secret: fill it, unless someone did since we read it
                secret.data = _encode(ca)
                await core.replace_namespaced_secret(name, namespace, secret)
        except ApiException as err:
            if err.status == 409:  # another replica filled it first: use theirs
                continue
            raise
        install(cert_dir, ca.cert_pem, ca.key_pem)
        log.info("webhook CA of %s put in Secret %s/%s", cert_dir, namespace, name)
        return ca
    raise CertificateError(f"Secret {namespace}/{name}: lost the race to fill it five times")
