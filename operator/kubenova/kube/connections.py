"""How many connections the operator keeps to the apiserver, and without proxy lookups.

Both clients would otherwise cost more than they need: kopf's session has no connection limit
(one per concurrent request: a thousand builds patching at once opened a thousand TLS
connections, each with asyncio's 256 KiB read buffer, 250 MiB of a 680 MiB operator), and
kubernetes_asyncio's session reads the proxy variables and ~/.netrc for every request
(trust_env), in a thread. Requests beyond the limit wait for a free connection, as client-go's
share a few (HTTP/2) instead of one per request.
"""

from __future__ import annotations

import logging

import aiohttp
import kopf

log = logging.getLogger("kubenova.kube")

KOPF_REQUEST_CONNECTIONS = 32
"""kopf's connections for requests (patches, Events), beside one per watch stream."""
CLIENT_CONNECTIONS = 32
"""The kubernetes_asyncio clients' connections (status writes, claims, reads)."""


def no_proxy_lookups(session: aiohttp.ClientSession) -> None:
    """kubernetes_asyncio makes its session with trust_env=True and no way to say otherwise;
    its configuration's `proxy` still applies (it is passed with each request)."""
    session._trust_env = False


def watch_streams(registry: kopf.OperatorRegistry) -> int:
    """How many watch streams kopf holds open (each occupies a connection for good): one per
    resource its handlers select (counted by selector, so never fewer)."""
    selectors = set()
    for handlers in (
        registry._indexing.get_all_handlers(),
        registry._watching.get_all_handlers(),
        registry._spawning.get_all_handlers(),
        registry._changing.get_all_handlers(),
    ):
        selectors.update(handler.selector for handler in handlers)
    return len(selectors)


def bounded_kopf_session(
    info: kopf.ConnectionInfo, registry: kopf.OperatorRegistry
) -> kopf.AiohttpSession:
    """kopf's credentials in a session of at most one connection per watch stream of
    `registry` plus KOPF_REQUEST_CONNECTIONS (kopf's own would have no limit)."""
    limit = watch_streams(registry) + KOPF_REQUEST_CONNECTIONS
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=limit, ssl=info.as_ssl_context()),
        headers=info.as_http_headers(),
        proxy=info.proxy_url,
        trust_env=False,
    )
    log.debug("kopf's session: at most %d connections to %s", limit, info.server)
    return kopf.AiohttpSession(
        server=info.server,
        default_namespace=info.default_namespace,
        expiration=info.expiration,
        aiohttp_session=session,
    )
