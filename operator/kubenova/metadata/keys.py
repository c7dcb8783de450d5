"""SSH public key fingerprints, as `ssh-keygen -l` prints them (and as Nova shows keypairs)."""

from __future__ import annotations

import base64
import binascii
import hashlib


class InvalidPublicKey(ValueError):
    """Not an OpenSSH public key line."""


def fingerprint(public_key: str) -> str:
    """`SHA256:<unpadded base64 of sha256(key blob)>` of an OpenSSH public key line."""
    fields = public_key.split()
    if len(fields) < 2:
        raise InvalidPublicKey("a public key line is '<type> <base64 blob> [comment]'")
    try:
        blob = base64.b64decode(fields[1], validate=True)
    except (binascii.Error, ValueError) as err:
        raise InvalidPublicKey(f"the key blob is not base64: {err}") from None
    digest = base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
    return f"SHA256:{digest}"
