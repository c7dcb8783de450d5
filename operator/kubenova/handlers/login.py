"""kopf's login: its own credentials (in-cluster, else the kubeconfig) in a bounded session."""

from __future__ import annotations

import asyncio
from typing import Any

import kopf

from kubenova.kube.connections import bounded_kopf_session


@kopf.on.login(id="bounded-session")
async def login(logger: Any, settings: kopf.OperatorSettings, **_: Any) -> kopf.AiohttpSession:
    info = await asyncio.to_thread(kopf.login_via_client, logger=logger, settings=settings)
    if info is None:
        raise kopf.LoginError("no credentials: neither in-cluster nor a kubeconfig")
    return bounded_kopf_session(info, kopf.get_default_registry())
