"""Keypair: an SSH public key injected into the guest through the metadata, as in Nova."""

from __future__ import annotations

from pydantic import Field

from kubenova.models.base import (
    AGE,
    CRDInfo,
    KubeModel,
    PrinterColumn,
    Resource,
    immutable,
    validations,
)


class KeypairSpec(KubeModel):
    """An OpenSSH public key line. Immutable: Nova replaces keypairs, it does not edit them."""

    model_config = validations(immutable("a Keypair's spec"))

    public_key: str = Field(
        max_length=16384,
        pattern=r"^(ssh-rsa|ssh-ed25519|ecdsa-sha2-nistp(256|384|521)) [A-Za-z0-9+/]+={0,3}( .*)?$",
    )


class KeypairStatus(KubeModel):
    fingerprint: str | None = None
    """SHA256 fingerprint, as `ssh-keygen -l` prints it."""


class Keypair(Resource):
    crd = CRDInfo(
        plural="keypairs",
        scope="Namespaced",
        short_names=("kp",),
        columns=(PrinterColumn("Fingerprint", ".status.fingerprint"), AGE),
    )
    spec: KeypairSpec
    status: KeypairStatus | None = None
