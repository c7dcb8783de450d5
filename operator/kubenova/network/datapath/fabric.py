"""The L2 objects of one Network, each created idempotently inside its namespace: the
namespace itself, its bridge (with the host address on it) and one persistent tap per Port.

Nothing here is ever created in, moved to or connected with the machine's own namespace: the
namespace holds only its loopback, the bridge and taps. When a namespace is destroyed the
kernel deletes its bridge and taps with it (virtual devices are never handed back to the
initial namespace).
"""

from __future__ import annotations

import logging
from typing import Any

from kubenova.network.datapath.config import DatapathError
from kubenova.network.datapath.ip import Ip, IpError
from kubenova.network.datapath.names import NETNS_DIR

log = logging.getLogger("kubenova.network.datapath")


def has_carrier(link: dict[str, Any]) -> bool:
    """A tap has carrier (LOWER_UP) once a process (qemu) holds it open and it is set up."""
    flags = link.get("flags", [])
    return "UP" in flags and "LOWER_UP" in flags


class Fabric:
    def __init__(self, ip: Ip) -> None:
        self.ip = ip

    async def ensure_netns(self, netns: str) -> None:
        if not (NETNS_DIR / netns).exists():
            try:
                await self.ip.run("netns", "add", netns)
                log.info("created network namespace %s", netns)
            except IpError as err:
                if "File exists" not in err.stderr:
                    raise
        await self.ip.run("link", "set", "lo", "up", netns=netns)

    async def delete_netns(self, netns: str) -> None:
        """Delete every link in it, then the namespace (gone once no process is inside)."""
        if not (NETNS_DIR / netns).exists():
            return
        for link in await self.ip.links(netns):
            if link["ifname"] != "lo":
                await self.delete_link(netns, link["ifname"])
        try:
            await self.ip.run("netns", "delete", netns)
        except IpError as err:
            if "No such file" not in err.stderr:
                raise
        log.info("deleted network namespace %s", netns)

    async def ensure_bridge(
        self, netns: str, bridge: str, mac: str, address: str, mtu: int | None
    ) -> None:
        """The bridge, up, with exactly `address` as its global address."""
        if await self.ip.link(netns, bridge) is None:
            await self.ip.run("link", "add", "name", bridge, "type", "bridge", netns=netns)
        settings = ["address", mac, *(("mtu", str(mtu)) if mtu else ())]
        await self.ip.run("link", "set", "dev", bridge, *settings, netns=netns)
        for old in await self.ip.addresses(netns, bridge):
            if old != address:
                await self.ip.run("address", "del", old, "dev", bridge, netns=netns)
        await self.ip.run("address", "replace", address, "dev", bridge, netns=netns)
        await self.ip.run("link", "set", "dev", bridge, "up", netns=netns)

    async def ensure_tap(
        self, netns: str, tap: str, mac: str, bridge: str, mtu: int | None, alias: str
    ) -> dict[str, Any]:
        """A persistent tap on the bridge, up (it has carrier only once qemu opens it)."""
        if await self.ip.link(netns, tap) is None:
            try:
                await self.ip.run("tuntap", "add", "dev", tap, "mode", "tap", netns=netns)
            except IpError as err:
                if "exists" not in err.stderr and "busy" not in err.stderr:
                    raise
        settings = ["address", mac, "master", bridge, "alias", alias]
        if mtu:
            settings += ["mtu", str(mtu)]
        await self.ip.run("link", "set", "dev", tap, *settings, "up", netns=netns)
        link = await self.ip.link(netns, tap)
        if link is None:  # deleted by someone else in between
            raise DatapathError(f"tap {tap} in {netns} vanished while being set up")
        return link

    async def delete_link(self, netns: str, name: str) -> None:
        try:
            await self.ip.run("link", "delete", "dev", name, netns=netns)
        except IpError as err:
            if "Cannot find device" not in err.stderr and "does not exist" not in err.stderr:
                raise
