"""Keypair handler: the fingerprint users compare with `ssh-keygen -l` and the guest's report."""

from __future__ import annotations

import kopf

from kubenova import GROUP, VERSION
from kubenova.metadata.keys import InvalidPublicKey, fingerprint


@kopf.on.resume(GROUP, VERSION, "keypairs")
@kopf.on.create(GROUP, VERSION, "keypairs")
def fingerprint_keypair(body, spec, status, patch, **_):
    try:
        value = fingerprint(spec["publicKey"])
    except InvalidPublicKey as err:
        kopf.warn(body, reason="InvalidPublicKey", message=str(err))
        return
    if status.get("fingerprint") != value:
        patch.status["fingerprint"] = value
