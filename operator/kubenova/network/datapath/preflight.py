"""Can this process build the datapath? Asked once at start, so a missing privilege is one
clear sentence instead of a failed spawn; the fake and cluster drivers never ask."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field
from pathlib import Path

from kubenova.network.datapath.config import DatapathError
from kubenova.network.datapath.ip import Ip, IpError
from kubenova.tools import ToolNotFound, find_tool

CAP_NET_ADMIN = 12
CAP_SYS_ADMIN = 21
"""Creating a named namespace mounts it under /run/netns: CAP_SYS_ADMIN as well."""
TUN = Path("/dev/net/tun")
TOOLS = ("ip", "dnsmasq", "nsenter")


class DatapathUnavailable(DatapathError):
    """The embedded datapath cannot run here; the message says what is missing."""


@dataclass(frozen=True)
class Probe:
    problems: tuple[str, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return not self.problems

    def message(self) -> str:
        return (
            "the embedded QEMU datapath (network namespaces, bridges, taps, dnsmasq) needs "
            "root or CAP_NET_ADMIN and CAP_SYS_ADMIN: " + "; ".join(self.problems) + " (the "
            "fake and cluster drivers need none of this)"
        )

    def require(self) -> None:
        if self.problems:
            raise DatapathUnavailable(self.message())


def effective_capabilities(status: Path = Path("/proc/self/status")) -> int:
    for line in status.read_text().splitlines():
        if line.startswith("CapEff:"):
            return int(line.split()[1], 16)
    return 0


def static_problems(capabilities: int, tun: Path = TUN) -> list[str]:
    problems = [
        f"{name} is missing from the effective capabilities"
        for bit, name in ((CAP_NET_ADMIN, "CAP_NET_ADMIN"), (CAP_SYS_ADMIN, "CAP_SYS_ADMIN"))
        if not capabilities >> bit & 1
    ]
    try:
        os.close(os.open(tun, os.O_RDWR))
    except OSError as err:
        problems.append(f"{tun} cannot be opened ({err.strerror})")
    for tool in TOOLS:
        try:
            find_tool(tool)
        except ToolNotFound:
            problems.append(f"{tool} is not installed (make setup installs it)")
    return problems


async def probe(functional: bool = True) -> Probe:
    """Capabilities, /dev/net/tun and the tools; then, with `functional`, a real throwaway
    namespace with a bridge and a tap (a container can show capabilities it cannot use)."""
    problems = await asyncio.to_thread(lambda: static_problems(effective_capabilities()))
    if problems or not functional:
        return Probe(tuple(problems))
    ip = Ip(find_tool("ip"))
    netns = f"kubenova-probe-{os.getpid()}"
    try:
        await ip.run("netns", "add", netns)
        await ip.run("link", "add", "probebr", "type", "bridge", netns=netns)
        await ip.run("tuntap", "add", "dev", "probetap", "mode", "tap", netns=netns)
        await ip.run("link", "set", "probetap", "master", "probebr", netns=netns)
    except IpError as err:
        problems.append(f"a test namespace could not be built: {err}")
    finally:
        if (Path("/run/netns") / netns).exists():
            await ip.run("netns", "delete", netns)
    return Probe(tuple(problems))
