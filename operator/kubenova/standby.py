"""What a standby replica runs (leader election, operator_main.py): the admission webhook and
nothing else.

Its own kopf registry holds the validating handlers (handlers/admission.py), the kopf indexes
their checks read, kopf's login, and a start-up of its own: the same kopf settings as the
operator's (no resource scanning, no kopf Events), an API client for the checks' fresh reads
(`memo.conductor.objects`, `memo.conductor.ports`: all the checks use of the conductor), and the
webhook server, whose configuration it leaves to the leader (kopf clears its webhooks from the
configuration when the operator that manages it stops; a standby stopping must not switch the
checks off for the others). No handler that writes is in it: no finalizer, no annotation, no
status, no VM.
"""

from __future__ import annotations

import logging
from types import SimpleNamespace

import kopf

from kubenova.kube.client import Objects, new_api_client
from kubenova.network.ports import Ports

log = logging.getLogger("kubenova.standby")

ADMISSION_INDEXES = (
    "flavors",
    "images",
    "network_specs",
    "port_addresses",
    "keypair_names",
    "volume_states",
    "quota_usage",
)
"""The kopf indexes handlers/admission.py's `_indexes` reads (a unit test keeps them equal)."""


def standby_registry(source: kopf.OperatorRegistry | None = None) -> kopf.OperatorRegistry:
    """A registry with `source`'s webhooks (default: kopf's default registry, where the
    handler modules registered), the indexes they read and the login handlers, plus the
    standby's start-up and clean-up."""
    source = source or kopf.get_default_registry()
    registry = kopf.OperatorRegistry()
    webhooks = source._webhooks.get_all_handlers()
    for handler in webhooks:
        registry._webhooks.append(handler)
    if webhooks:
        found = set()
        for handler in source._indexing.get_all_handlers():
            if handler.id in ADMISSION_INDEXES:
                registry._indexing.append(handler)
                found.add(handler.id)
        missing = set(ADMISSION_INDEXES) - found
        if missing:
            raise RuntimeError(f"the admission checks' indexes are not registered: {missing}")
    for handler in source._activities.get_all_handlers():
        if handler.activity.value == "authentication":
            registry._activities.append(handler)
    kopf.on.startup(registry=registry, retries=1, id="standby-start")(start_standby)
    kopf.on.cleanup(registry=registry, id="standby-stop")(stop_standby)
    return registry


def apply_settings(settings: kopf.OperatorSettings) -> None:
    """The kopf settings of handlers/lifecycle.py's start-up that matter without writers."""
    settings.posting.enabled = False
    settings.watching.server_timeout = 300
    settings.networking.connect_timeout = 10
    settings.scanning.disabled = True


async def start_standby(settings: kopf.OperatorSettings, memo: kopf.Memo, **_) -> None:
    apply_settings(settings)
    api = await new_api_client()
    objects = Objects(api)
    memo.api = api
    memo.conductor = SimpleNamespace(objects=objects, ports=Ports(objects))
    if memo.config.admission:
        from kubenova.handlers.admission import serve_webhook

        await serve_webhook(settings=settings, memo=memo)
        settings.admission.managed = None  # the leader's to manage (module docstring)
    log.info(
        "standing by%s",
        " with the admission webhook" if memo.config.admission else " (no admission webhook)",
    )


async def stop_standby(memo: kopf.Memo, **_) -> None:
    api = getattr(memo, "api", None)
    if api is not None:
        await api.close()
