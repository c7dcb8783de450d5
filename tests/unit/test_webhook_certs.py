"""The webhook's certificates: made with openssl once, naming the host, reused on restart."""

import asyncio
import ssl
import subprocess

from kubenova.admission.certs import ensure_certificates, san_entries


def test_san_entries_tell_ips_from_names_and_skip_wildcards():
    assert san_entries("127.0.0.1", "0.0.0.0", "webhook.svc", "127.0.0.1", "::1") == [
        "IP:127.0.0.1",
        "DNS:webhook.svc",
        "IP:::1",
    ]


def test_made_once_verifiable_and_reissued_for_a_new_host(tmp_path):
    certs = asyncio.run(ensure_certificates(tmp_path, "127.0.0.1"))
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(certs.cert, certs.key)  # the key matches the certificate
    verify = subprocess.run(
        ["openssl", "verify", "-CAfile", certs.ca, "-purpose", "sslserver", certs.cert],
        capture_output=True,
        text=True,
        check=False,
    )
    assert verify.returncode == 0, verify.stderr
    assert oct(certs.key.stat().st_mode & 0o777) == "0o600"

    before = certs.cert.read_bytes(), certs.ca.read_bytes()
    again = asyncio.run(ensure_certificates(tmp_path, "127.0.0.1"))
    assert (again.cert.read_bytes(), again.ca.read_bytes()) == before  # reused

    asyncio.run(ensure_certificates(tmp_path, "webhook.example"))
    assert certs.cert.read_bytes() != before[0]  # re-issued for the new name...
    assert certs.ca.read_bytes() == before[1]  # ...by the same CA (the caBundle stays)
    sans = subprocess.run(
        ["openssl", "x509", "-in", certs.cert, "-noout", "-ext", "subjectAltName"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "DNS:webhook.example" in sans
