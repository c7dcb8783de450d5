"""Thin kopf handlers: they unpack events and call the conductor; no logic of their own.

Importing this package registers every handler with kopf's default registry.
"""

from kubenova.handlers import (  # noqa: F401
    host_cache,
    image,
    indexes,
    instance,
    keypair,
    lifecycle,
    login,
    network,
    volume,
)
