"""kubenova's X.509, all of it with `cryptography`: a CA, the certificates it signs, and whether
a certificate already on disk can be kept.

Three users: the dev control plane (a throw-away CA signing the apiserver's serving certificate
and every client certificate), and the operator's admission webhook and console endpoint (a CA
kept in a directory, with a serving certificate that is reused across restarts). A restart keeps
the serving certificate when it parses, was signed by that CA, matches its key, names exactly
the wanted DNS names and IP addresses (compared as addresses, so `::1` is `0:0:0:0:0:0:0:1`) and
stays valid a while yet; otherwise a new one is issued by the same CA, so a caBundle or a
client's `--console-ca` stays right.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import logging
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

log = logging.getLogger("kubenova.pki")

CA_VALIDITY = dt.timedelta(days=3650)
SERVING_VALIDITY = dt.timedelta(days=365)
#: A certificate expiring sooner than this is not reused.
RENEW_BEFORE = dt.timedelta(days=1)
#: Clock skew allowance: certificates are valid from a little before they are made.
_BACKDATE = dt.timedelta(minutes=5)


class CertificateError(RuntimeError):
    pass


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _cn(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        key_cert_sign=ca,
        crl_sign=ca,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        encipher_only=False,
        decipher_only=False,
    )


def subject_alt_names(names: Iterable[str]) -> list[x509.GeneralName]:
    """DNS names and IP addresses (v4 and v6, brackets allowed) for a subjectAltName, in order,
    without duplicates; unspecified addresses (0.0.0.0, ::) name nothing and are dropped."""
    sans: list[x509.GeneralName] = []
    for name in names:
        try:
            address = ipaddress.ip_address(name.strip("[]"))
        except ValueError:
            general: x509.GeneralName = x509.DNSName(name)
        else:
            if address.is_unspecified:
                continue
            general = x509.IPAddress(address)
        if general not in sans:
            sans.append(general)
    return sans


@dataclass(frozen=True)
class KeyPair:
    cert_pem: bytes
    key_pem: bytes

    def write(self, directory: Path, stem: str) -> tuple[Path, Path]:
        cert, key = directory / f"{stem}.crt", directory / f"{stem}.key"
        cert.write_bytes(self.cert_pem)
        key.write_bytes(self.key_pem)
        key.chmod(0o600)
        return cert, key


class CertificateAuthority:
    """A CA key and certificate; signs serving and client certificates."""

    def __init__(self, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
        self.cert = cert
        self._key = key

    @classmethod
    def create(
        cls, common_name: str = "kubenova-ca", validity: dt.timedelta = CA_VALIDITY
    ) -> CertificateAuthority:
        key = _key()
        now = _now()
        cert = (
            x509.CertificateBuilder()
            .subject_name(_cn(common_name))
            .issuer_name(_cn(common_name))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _BACKDATE)
            .not_valid_after(now + validity)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(_key_usage(ca=True), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .sign(key, hashes.SHA256())
        )
        return cls(cert, key)

    @classmethod
    def load(cls, cert_pem: bytes, key_pem: bytes) -> CertificateAuthority:
        """A CA from its PEM files; CertificateError unless they are a usable EC CA pair."""
        try:
            cert = x509.load_pem_x509_certificate(cert_pem)
            key = serialization.load_pem_private_key(key_pem, password=None)
            ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        except (ValueError, TypeError, UnsupportedAlgorithm, x509.ExtensionNotFound) as err:
            raise CertificateError(f"not a CA certificate and key: {err}") from err
        if not isinstance(key, ec.EllipticCurvePrivateKey) or not ca:
            raise CertificateError("not an EC CA certificate and key")
        if key.public_key() != cert.public_key():
            raise CertificateError("the CA key does not match the CA certificate")
        return cls(cert, key)

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        return _key_pem(self._key)

    def _issue(
        self,
        subject: x509.Name,
        usage: x509.ObjectIdentifier,
        sans: list[x509.GeneralName],
        validity: dt.timedelta,
    ) -> KeyPair:
        key = _key()
        now = _now()
        # Never past the CA's own expiry: a chain is only as valid as its root.
        not_after = min(now + validity, self.cert.not_valid_after_utc)
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _BACKDATE)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(ca=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()), False
            )
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = builder.sign(self._key, hashes.SHA256())
        return KeyPair(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))

    def serving(
        self, common_name: str, names: Iterable[str], validity: dt.timedelta = SERVING_VALIDITY
    ) -> KeyPair:
        """A TLS server certificate naming `names` (DNS names and IP addresses)."""
        sans = subject_alt_names(names)
        if not sans:
            raise CertificateError(f"no name to put in the certificate for {common_name!r}")
        return self._issue(_cn(common_name[:64]), ExtendedKeyUsageOID.SERVER_AUTH, sans, validity)

    def client(
        self, user: str, groups: tuple[str, ...] = (), validity: dt.timedelta = SERVING_VALIDITY
    ) -> KeyPair:
        """A client certificate; the apiserver reads CN as the user and each O as a group."""
        attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, g) for g in groups]
        attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, user))
        return self._issue(x509.Name(attrs), ExtendedKeyUsageOID.CLIENT_AUTH, [], validity)

    def fits(
        self,
        pair: KeyPair,
        names: Iterable[str],
        renew_before: dt.timedelta = RENEW_BEFORE,
        now: dt.datetime | None = None,
    ) -> bool:
        """Whether `pair` can be kept: a certificate this CA signed, for this key, naming exactly
        `names`, valid now and for `renew_before` more."""
        return not self.why_not_fit(pair, names, renew_before, now)

    def why_not_fit(
        self,
        pair: KeyPair,
        names: Iterable[str],
        renew_before: dt.timedelta = RENEW_BEFORE,
        now: dt.datetime | None = None,
    ) -> str:
        """Why `pair` is to be re-issued (for the log); empty when it fits."""
        now = now or _now()
        try:
            cert = x509.load_pem_x509_certificate(pair.cert_pem)
            key = serialization.load_pem_private_key(pair.key_pem, password=None)
        except (ValueError, TypeError, UnsupportedAlgorithm) as err:
            return f"unreadable: {err}"
        if cert.issuer != self.cert.subject:
            return f"issued by {cert.issuer.rfc4514_string()}, not this CA"
        try:
            cert.verify_directly_issued_by(self.cert)
        except (ValueError, TypeError, InvalidSignature):
            return "not signed by this CA"
        if not isinstance(key, ec.EllipticCurvePrivateKey) or key.public_key() != cert.public_key():
            return "the key does not match the certificate"
        if not cert.not_valid_before_utc <= now:
            return "not valid yet"
        if cert.not_valid_after_utc - now < renew_before:
            return f"expires {cert.not_valid_after_utc.isoformat()}"
        try:
            have = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        except x509.ExtensionNotFound:
            have = x509.SubjectAlternativeName([])
        want = subject_alt_names(names)
        if set(have) != set(want):
            return f"names {_describe(have)}, wanted {_describe(want)}"
        return ""


def _describe(sans: Iterable[x509.GeneralName]) -> str:
    return ",".join(str(g.value) for g in sans) or "none"


def signing_key_pair() -> KeyPair:
    """A bare signing key (the service-account token key); `cert_pem` holds the public key."""
    key = _key()
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return KeyPair(public, _key_pem(key))


# -- a CA and a serving certificate kept in a directory (the webhook's, the console's) ---------
@dataclass(frozen=True)
class ServingFiles:
    ca: Path
    cert: Path
    key: Path

    @classmethod
    def in_dir(cls, cert_dir: Path) -> ServingFiles:
        return cls(cert_dir / "ca.crt", cert_dir / "tls.crt", cert_dir / "tls.key")


async def ensure_certificates(
    cert_dir: Path, host: str, *extra_names: str, ca_name: str = "kubenova-ca"
) -> ServingFiles:
    """A CA and a serving certificate for `host` and `extra_names` in `cert_dir`, issued only
    when missing or unfit (see the module docstring). Runs in a thread: key generation and the
    file writes stay off the event loop."""
    return await asyncio.to_thread(ensure_serving_files, cert_dir, [host, *extra_names], ca_name)


def ensure_serving_files(
    cert_dir: Path, names: list[str], ca_name: str = "kubenova-ca"
) -> ServingFiles:
    if not subject_alt_names(names):
        raise CertificateError(f"no name to put in the certificate (names {names!r})")
    files = ServingFiles.in_dir(cert_dir)
    ca_key = cert_dir / "ca.key"
    cert_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    ca = _usable_ca(files.ca, ca_key)
    if ca is None:
        ca = CertificateAuthority.create(ca_name)
        _install(cert_dir, [(ca_key, ca.key_pem), (files.ca, ca.cert_pem)])
    elif (pair := _read_pair(files)) is not None:
        reason = ca.why_not_fit(pair, names)
        if not reason:
            return files
        log.info("re-issuing %s: %s", files.cert, reason)
    common_name = next((n for n in names if subject_alt_names([n])), names[0])
    pair = ca.serving(common_name, names)
    _install(cert_dir, [(files.key, pair.key_pem), (files.cert, pair.cert_pem)])
    return files


def _usable_ca(cert: Path, key: Path) -> CertificateAuthority | None:
    """The CA kept in the directory, unless it is missing, unreadable or about to expire."""
    try:
        ca = CertificateAuthority.load(cert.read_bytes(), key.read_bytes())
    except (OSError, CertificateError):
        return None
    if ca.cert.not_valid_after_utc - _now() < RENEW_BEFORE:
        return None
    return ca


def _read_pair(files: ServingFiles) -> KeyPair | None:
    try:
        return KeyPair(files.cert.read_bytes(), files.key.read_bytes())
    except OSError:
        return None


def _install(cert_dir: Path, files: list[tuple[Path, bytes]]) -> None:
    """Write each file beside its target, owner-only, and move it into place, the private key
    first: a crash in between leaves a key and certificate that do not match, which the next
    start re-issues, never a mismatch that passes the check."""
    for target, data in files:
        fd, tmp = tempfile.mkstemp(dir=cert_dir, prefix=f".{target.name}.")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.chmod(tmp, 0o600 if target.suffix == ".key" else 0o644)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
