"""iproute2's `ip`, run as an asyncio subprocess (never blocking the event loop).

Chosen over a netlink library: `ip` is what an operator types to look at the same objects,
its `-json` output is stable, `ip -n NS` enters a namespace for one command without touching
the operator's own threads, and it adds no dependency.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from kubenova.network.datapath.config import DatapathError
from kubenova.procs import communicate

log = logging.getLogger("kubenova.network.datapath")
TIME_LIMIT = 30.0


class IpError(DatapathError):
    def __init__(self, argv: list[str], code: int | None, stderr: str) -> None:
        super().__init__(f"{' '.join(argv)} failed (exit {code}): {stderr}")
        self.stderr = stderr


class Ip:
    """`ip` commands, optionally inside a named namespace."""

    def __init__(self, binary: str = "ip") -> None:
        self.binary = binary

    async def run(self, *args: str, netns: str | None = None) -> str:
        argv = [self.binary, *(("-n", netns) if netns else ()), *args]
        log.debug("%s", " ".join(argv))
        try:
            code, out, err = await communicate(argv, TIME_LIMIT)
        except TimeoutError:
            raise IpError(argv, None, f"no answer in {TIME_LIMIT:g}s") from None
        if code != 0:
            raise IpError(argv, code, err.strip())
        return out

    async def json(self, *args: str, netns: str | None = None) -> list[dict[str, Any]]:
        out = await self.run("-json", *args, netns=netns)
        return json.loads(out) if out.strip() else []

    async def links(self, netns: str) -> list[dict[str, Any]]:
        return await self.json("link", "show", netns=netns)

    async def link(self, netns: str, name: str) -> dict[str, Any] | None:
        """One link, or None when it does not exist."""
        try:
            found = await self.json("link", "show", "dev", name, netns=netns)
        except IpError as err:
            if "does not exist" in err.stderr:
                return None
            raise
        return found[0] if found else None

    async def addresses(self, netns: str, name: str) -> list[str]:
        """`address/prefix` of every global address on the link."""
        found = await self.json("address", "show", "dev", name, "scope", "global", netns=netns)
        # ip -json lists filtered-out addresses as empty objects.
        infos = (a for link in found for a in link.get("addr_info", []) if "local" in a)
        return [f"{a['local']}/{a['prefixlen']}" for a in infos]
