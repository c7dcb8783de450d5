"""Keypair handler: the fingerprint users compare with `ssh-keygen -l` and the guest's report."""

from __future__ import annotations

import kopf

from kubenova import GROUP, VERSION
from kubenova.kube import events
from kubenova.kube.events import Reason
from kubenova.metadata.keys import InvalidPublicKey, fingerprint


@kopf.on.resume(GROUP, VERSION, "keypairs")
@kopf.on.create(GROUP, VERSION, "keypairs")
async def fingerprint_keypair(body, spec, status, patch, **_):
    try:
        value = fingerprint(spec["publicKey"])
    except InvalidPublicKey as err:
        await events.post(body, Reason.INVALID_PUBLIC_KEY, str(err))
        return
    if status.get("fingerprint") != value:
        patch.status["fingerprint"] = value
