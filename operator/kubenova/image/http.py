"""Reading an http(s) image source under the import policy.

A URL checked only as written can still lead somewhere forbidden: its name may resolve to a
loopback or metadata address (or to a public one at check time and a private one at connect
time: DNS rebinding), and the server may redirect. So the name is resolved by a resolver that
refuses every forbidden address it returns, aiohttp connects only to the addresses that
resolver returned, the connected peer is checked once more, and redirects are followed by
hand, each target checked as the source was.
"""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver
from aiohttp.resolver import DefaultResolver
from yarl import URL

from kubenova.image.errors import ImageFetchError
from kubenova.image.policy import ImageImportPolicy, literal_address

CHUNK = 1 << 20
REDIRECTS = frozenset({301, 302, 303, 307, 308})


class PolicyResolver(AbstractResolver):
    """Resolves names as aiohttp's default resolver does and refuses the lot if any address
    is one the policy forbids (one bad answer is enough to distrust the name)."""

    def __init__(self, policy: ImageImportPolicy, source: str) -> None:
        self._inner = DefaultResolver()
        self._policy, self._source = policy, source

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[dict[str, Any]]:
        answers = await self._inner.resolve(host, port, family)
        for answer in answers:
            self._policy.check_address(self._source, answer["host"], name=host)
        return answers

    async def close(self) -> None:
        await self._inner.close()


async def stream_http(
    source: str,
    policy: ImageImportPolicy | None,
    client_timeout: aiohttp.ClientTimeout,
    write: Callable[[bytes | bytearray], Awaitable[None]],
) -> None:
    """GET `source` (following allowed redirects) and hand its body to `write` in CHUNKs."""
    if policy is None:
        connector = aiohttp.TCPConnector()
        redirects = 10
    else:
        resolver = PolicyResolver(policy, source)
        connector = aiohttp.TCPConnector(resolver=resolver, use_dns_cache=False)
        redirects = policy.max_redirects
    url = URL(source)
    async with aiohttp.ClientSession(
        timeout=client_timeout, connector=connector, trust_env=False
    ) as session:
        for _ in range(redirects + 1):
            async with session.get(url, allow_redirects=False) as resp:
                if policy is not None:
                    _check_peer(policy, source, resp)
                if resp.status in REDIRECTS and "Location" in resp.headers:
                    url = resp.url.join(URL(resp.headers["Location"]))
                    if policy is not None:
                        policy.check_url(source, url)
                    continue
                if resp.status >= 400:
                    raise ImageFetchError(
                        f"fetching {source} failed: HTTP {resp.status} {resp.reason}"
                    )
                buf = bytearray()
                async for chunk in resp.content.iter_chunked(CHUNK):
                    buf += chunk
                    if len(buf) >= CHUNK:
                        data, buf = buf, bytearray()
                        await write(data)
                if buf:
                    await write(buf)
                return
    raise ImageFetchError(f"fetching {source} failed: more than {redirects} redirects")


def _check_peer(policy: ImageImportPolicy, source: str, resp: aiohttp.ClientResponse) -> None:
    """Once more on the address really connected to, while the connection is held (a short
    response may have released it already: its addresses were checked on the way in, a
    literal one by check_url, a name's by PolicyResolver)."""
    transport = resp.connection.transport if resp.connection is not None else None
    peer = transport.get_extra_info("peername") if transport is not None else None
    if peer:
        host = resp.url.host or ""
        policy.check_address(source, peer[0], name=None if literal_address(host) else host)
