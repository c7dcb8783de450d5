"""Posting a Kubernetes Event from outside kopf's per-object handlers.

kopf.event() works only inside the task that handles an object; the background loops (host
monitor, audit) post theirs through the API themselves. Best effort: an Event that cannot be
posted is logged, never raised.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import aiohttp
from kubernetes_asyncio import client

from kubenova.kube.client import ApiException
from kubenova.timestamps import iso, now

log = logging.getLogger("kubenova.events")
COMPONENT = "kubenova"


async def post_event(
    api: client.ApiClient, obj: Mapping[str, Any], type_: str, reason: str, message: str
) -> None:
    """An Event about `obj` (a whole object as read: apiVersion, kind, metadata)."""
    meta = obj["metadata"]
    namespace = meta.get("namespace") or "default"
    stamp = iso(now())
    body = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{meta['name']}.", "namespace": namespace},
        "involvedObject": {
            "apiVersion": obj.get("apiVersion"),
            "kind": obj.get("kind"),
            "name": meta["name"],
            "namespace": meta.get("namespace"),
            "uid": meta.get("uid"),
        },
        "type": type_,
        "reason": reason,
        "message": message[:1000],
        "source": {"component": COMPONENT},
        "reportingComponent": COMPONENT,
        "reportingInstance": COMPONENT,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
    }
    try:
        await client.CoreV1Api(api).create_namespaced_event(namespace, body)
    except (ApiException, aiohttp.ClientError, OSError, TimeoutError) as err:
        log.info("event %s about %s/%s not posted: %r", reason, namespace, meta["name"], err)
