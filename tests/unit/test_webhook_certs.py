"""kubenova.pki: the webhook's and the console's certificates, made with `cryptography` once and
reused on restart while they still fit (names, expiry, issuer, key), re-issued by the same CA
when they do not; and the dev cluster's client certificates."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import ssl

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from kubenova.pki import (
    CertificateAuthority,
    CertificateError,
    KeyPair,
    ServingFiles,
    ensure_certificates,
    subject_alt_names,
)

NAMES = ("webhook.nova-system.svc", "10.0.0.7", "fd00::7", "0.0.0.0")


def ensure(tmp_path, *names):
    return asyncio.run(ensure_certificates(tmp_path, *names))


def snapshot(files: ServingFiles) -> tuple[bytes, bytes, bytes]:
    return files.ca.read_bytes(), files.cert.read_bytes(), files.key.read_bytes()


def sans_of(files: ServingFiles) -> set[str]:
    cert = x509.load_pem_x509_certificate(files.cert.read_bytes())
    ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return {str(general.value) for general in ext}


def handshake(files: ServingFiles, server_hostname: str) -> None:
    """A TLS handshake in memory: the client trusts only ca.crt and checks the name (a DNS name
    or an IP address) against the serving certificate, as the apiserver does."""
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(files.cert, files.key)  # the key matches the certificate
    client_ctx = ssl.create_default_context(cafile=str(files.ca))
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    client = client_ctx.wrap_bio(c_in, c_out, server_hostname=server_hostname)
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    done = {"client": False, "server": False}
    for _ in range(10):
        for side, sock in (("client", client), ("server", server)):
            if not done[side]:
                try:
                    sock.do_handshake()
                    done[side] = True
                except ssl.SSLWantReadError:
                    pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if all(done.values()):
            return
    raise AssertionError("handshake did not finish")


def test_subject_alt_names_tell_ips_from_names_and_drop_unspecified():
    sans = subject_alt_names(
        ["127.0.0.1", "0.0.0.0", "webhook.svc", "127.0.0.1", "::1", "[0:0::1]", "::", "fd00::7"]
    )
    assert sans == [
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.DNSName("webhook.svc"),
        x509.IPAddress(ipaddress.ip_address("::1")),
        x509.IPAddress(ipaddress.ip_address("fd00::7")),
    ]


def test_made_once_and_served_for_every_name_v4_and_v6(tmp_path):
    files = ensure(tmp_path, *NAMES)
    assert sans_of(files) == {"webhook.nova-system.svc", "10.0.0.7", "fd00::7"}
    for name in ("webhook.nova-system.svc", "10.0.0.7", "fd00::7"):
        handshake(files, name)
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(files, "other.svc")
    assert oct(files.key.stat().st_mode & 0o777) == "0o600"
    assert oct((tmp_path / "ca.key").stat().st_mode & 0o777) == "0o600"
    cert = x509.load_pem_x509_certificate(files.cert.read_bytes())
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False


def test_reused_when_unchanged_including_an_ipv6_address(tmp_path):
    before = snapshot(ensure(tmp_path, *NAMES))
    assert snapshot(ensure(tmp_path, *NAMES)) == before
    # The same addresses spelt otherwise are the same names.
    assert snapshot(ensure(tmp_path, "webhook.nova-system.svc", "10.0.0.7", "fd00:0::7")) == before


@pytest.mark.parametrize(
    "names",
    [
        pytest.param((*NAMES, "webhook.example"), id="a-name-added"),
        pytest.param(("webhook.nova-system.svc", "10.0.0.7"), id="the-ipv6-address-dropped"),
        pytest.param(("webhook.nova-system.svc", "10.0.0.7", "fd00::8"), id="an-address-changed"),
    ],
)
def test_reissued_by_the_same_ca_when_the_names_change(tmp_path, names):
    ca, cert, _ = snapshot(ensure(tmp_path, *NAMES))
    files = ensure(tmp_path, *names)
    assert files.cert.read_bytes() != cert
    assert files.ca.read_bytes() == ca  # the caBundle stays
    assert sans_of(files) == {str(g.value) for g in subject_alt_names(names)}
    handshake(files, "webhook.nova-system.svc")


def test_reissued_when_expiry_is_near(tmp_path):
    files = ensure(tmp_path, *NAMES)
    ca = CertificateAuthority.load(files.ca.read_bytes(), (tmp_path / "ca.key").read_bytes())
    short = ca.serving("webhook", NAMES, validity=dt.timedelta(hours=2))
    KeyPair(short.cert_pem, short.key_pem).write(tmp_path, "tls")
    assert not ca.fits(short, NAMES)
    renewed = ensure(tmp_path, *NAMES)
    assert renewed.cert.read_bytes() != short.cert_pem
    cert = x509.load_pem_x509_certificate(renewed.cert.read_bytes())
    assert cert.not_valid_after_utc - dt.datetime.now(dt.UTC) > dt.timedelta(days=300)


def test_fits_only_this_cas_certificate_for_its_key_and_in_time(tmp_path):
    ca, other = CertificateAuthority.create("a"), CertificateAuthority.create("b")
    pair = ca.serving("svc", ["svc", "::1"])
    assert ca.fits(pair, ["svc", "::1"])
    assert "not this CA" in other.why_not_fit(pair, ["svc", "::1"])
    # Same subject, other key: issuer names match, the signature does not.
    impostor = CertificateAuthority.create("a")
    assert impostor.why_not_fit(pair, ["svc", "::1"]) == "not signed by this CA"
    swapped = KeyPair(pair.cert_pem, ca.serving("svc", ["svc"]).key_pem)
    assert ca.why_not_fit(swapped, ["svc", "::1"]) == "the key does not match the certificate"
    in_a_year = dt.datetime.now(dt.UTC) + dt.timedelta(days=365)
    assert ca.why_not_fit(pair, ["svc", "::1"], now=in_a_year).startswith("expires")
    assert ca.why_not_fit(KeyPair(b"junk", pair.key_pem), ["svc"]).startswith("unreadable")


def test_a_certificate_from_another_ca_is_replaced(tmp_path):
    files = ensure(tmp_path, *NAMES)
    foreign = CertificateAuthority.create("kubenova-ca").serving("webhook", NAMES)
    foreign.write(tmp_path, "tls")
    ensure(tmp_path, *NAMES)
    assert files.cert.read_bytes() != foreign.cert_pem
    handshake(files, "10.0.0.7")


def test_a_broken_ca_is_replaced_with_a_new_one(tmp_path):
    files = ensure(tmp_path, *NAMES)
    files.ca.write_text("not a certificate")
    ensure(tmp_path, *NAMES)
    handshake(files, "fd00::7")


def test_no_openssl_program_is_needed(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", "")
    handshake(ensure(tmp_path, "127.0.0.1", "::1"), "::1")


def test_no_name_is_refused(tmp_path):
    with pytest.raises(CertificateError):
        ensure(tmp_path, "0.0.0.0", "::")


def test_client_certificate_names_the_user_and_groups_and_the_ca_loads_back():
    ca = CertificateAuthority.create("kubenova-dev-ca", dt.timedelta(days=7))
    pair = ca.client("alice", ("system:masters", "devs"))
    cert = x509.load_pem_x509_certificate(pair.cert_pem)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "alice"
    groups = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    assert groups == ["system:masters", "devs"]
    cert.verify_directly_issued_by(ca.cert)
    # Never valid past its CA.
    assert cert.not_valid_after_utc <= ca.cert.not_valid_after_utc
    again = CertificateAuthority.load(ca.cert_pem, ca.key_pem)
    assert again.cert == ca.cert
    with pytest.raises(CertificateError):
        CertificateAuthority.load(pair.cert_pem, pair.key_pem)  # a leaf is no CA
