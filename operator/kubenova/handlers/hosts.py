"""The host monitor as a background task of the operator (conductor/hosts.py has the logic):
heartbeats judged, instances of down hosts marked, returns reconciled.

Started by the operator's start-up (handlers/lifecycle.py) with the watch-fed indexes kopf hands
to start-up handlers (live views: they fill as the watches run), which a resumed guest's spawn
request is made from.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from kubernetes_asyncio import client

from kubenova.conductor.build import Caches
from kubenova.conductor.context import Conductor
from kubenova.conductor.hosts import HostMonitor
from kubenova.config import OperatorConfig

log = logging.getLogger("kubenova.hosts")


def start_host_monitor(
    conductor: Conductor, api: client.ApiClient, config: OperatorConfig, indexes: Mapping[str, Any]
) -> asyncio.Task:
    caches = Caches.of_indexes(indexes)
    monitor = HostMonitor(
        conductor,
        api,
        config.host_down_after,
        resume_guests=config.resume_guests_state_on_host_boot,
        caches=caches,
    )
    log.info(
        "hosts are down after %gs without a heartbeat; guests found not running when their "
        "host returns are %s",
        config.host_down_after,
        "started again" if config.resume_guests_state_on_host_boot else "stopped",
    )
    return asyncio.create_task(monitor.run(), name="host-monitor")
