"""The webhook's TLS files, made with openssl once and reused across restarts.

The apiserver dials the webhook by `host` and trusts the CA in the webhook configuration, so
the serving certificate must name `host` in its subjectAltName. A restart reuses the files if
they still name it and stay valid for a day more; otherwise a new serving certificate is
issued by the same CA (kept beside it), so the caBundle does not change under the apiserver.
openssl runs as an asyncio subprocess: the operator's event loop never waits on it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

CA_DAYS = 3650
SERVING_DAYS = 365
#: A serving certificate expiring sooner than this is re-issued at start-up.
RENEW_BEFORE_SECONDS = 86400


class CertificateError(RuntimeError):
    pass


@dataclass(frozen=True)
class WebhookCerts:
    ca: Path
    cert: Path
    key: Path


def san_entries(*names: str) -> list[str]:
    """`IP:...`/`DNS:...` entries for openssl; unspecified addresses (0.0.0.0) are dropped."""
    entries: list[str] = []
    for name in names:
        try:
            address = ipaddress.ip_address(name)
        except ValueError:
            entry = f"DNS:{name}"
        else:
            if address.is_unspecified:
                continue
            entry = f"IP:{address}"
        if entry not in entries:
            entries.append(entry)
    return entries


async def _openssl(*args: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        shutil.which("openssl") or "openssl",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise CertificateError(f"openssl {args[0]} failed: {err.decode(errors='replace').strip()}")
    return out.decode()


async def _serving_cert_fits(cert: Path, sans: list[str]) -> bool:
    """Valid for a while yet, and naming every SAN we need."""
    try:
        await _openssl("x509", "-in", str(cert), "-noout", "-checkend", str(RENEW_BEFORE_SECONDS))
        text = await _openssl("x509", "-in", str(cert), "-noout", "-ext", "subjectAltName")
    except CertificateError:
        return False
    have = {part.strip().replace("IP Address:", "IP:") for part in text.splitlines()[-1].split(",")}
    return all(entry in have for entry in sans)


async def ensure_certificates(cert_dir: Path, host: str, *extra_names: str) -> WebhookCerts:
    """A CA and a serving certificate for `host` in `cert_dir`, made only when missing."""
    files = WebhookCerts(cert_dir / "ca.crt", cert_dir / "tls.crt", cert_dir / "tls.key")
    ca_key = cert_dir / "ca.key"
    sans = san_entries(host, *extra_names)
    if not sans:
        raise CertificateError(f"no name to put in the certificate (host {host!r})")
    have_ca, have_pair = await asyncio.to_thread(_inventory, cert_dir, files, ca_key)
    if not have_ca:
        await _make_ca(cert_dir, files.ca, ca_key)
    elif have_pair and await _serving_cert_fits(files.cert, sans):
        return files
    await _issue(cert_dir, files, ca_key, host, sans)
    return files


def _inventory(cert_dir: Path, files: WebhookCerts, ca_key: Path) -> tuple[bool, bool]:
    """Makes the directory; says whether the CA and the serving pair are there."""
    cert_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    return (
        files.ca.exists() and ca_key.exists(),
        files.cert.exists() and files.key.exists(),
    )


def _install(moves: list[tuple[Path, Path]], key: Path) -> None:
    """Move freshly made files into place, the private key first and owner-only: a crash in
    between leaves a pair that fails the check rather than a mismatch that passes it."""
    os.chmod(key, 0o600)
    for source, target in moves:
        os.replace(source, target)


async def _make_ca(cert_dir: Path, ca: Path, ca_key: Path) -> None:
    tmp = Path(await asyncio.to_thread(tempfile.mkdtemp, dir=cert_dir))
    try:
        key, cert = tmp / "ca.key", tmp / "ca.crt"
        await _openssl(
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", str(key), "-out", str(cert), "-days", str(CA_DAYS),
            "-subj", "/CN=kubenova-webhook-ca",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        )  # fmt: skip
        await asyncio.to_thread(_install, [(key, ca_key), (cert, ca)], key)
    finally:
        await asyncio.to_thread(shutil.rmtree, tmp, True)


async def _issue(
    cert_dir: Path, files: WebhookCerts, ca_key: Path, host: str, sans: list[str]
) -> None:
    tmp = Path(await asyncio.to_thread(tempfile.mkdtemp, dir=cert_dir))
    try:
        key, csr, cert, ext = (tmp / n for n in ("tls.key", "tls.csr", "tls.crt", "ext"))
        await asyncio.to_thread(
            ext.write_text,
            f"subjectAltName={','.join(sans)}\n"
            "basicConstraints=critical,CA:FALSE\n"
            "keyUsage=critical,digitalSignature\n"
            "extendedKeyUsage=serverAuth\n",
        )
        await _openssl(
            "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={host}",
        )  # fmt: skip
        await _openssl(
            "x509", "-req", "-in", str(csr), "-CA", str(files.ca), "-CAkey", str(ca_key),
            "-set_serial", str(int.from_bytes(os.urandom(16), "big") >> 1),
            "-days", str(SERVING_DAYS), "-extfile", str(ext), "-out", str(cert),
        )  # fmt: skip
        await asyncio.to_thread(_install, [(key, files.key), (cert, files.cert)], key)
    finally:
        await asyncio.to_thread(shutil.rmtree, tmp, True)
