"""The simplest correct scheduler: any ready host with room, most free RAM first.

A stand-in for the filter scheduler: same interface, same race-free claims.
"""

from __future__ import annotations

from kubenova.scheduler.host_state import HostState
from kubenova.scheduler.interface import NoValidHost, RequestSpec, Selection
from kubenova.scheduler.placement import Placement


class SimpleScheduler:
    def __init__(self, placement: Placement, max_attempts: int = 3) -> None:
        self.placement = placement
        self.max_attempts = max_attempts

    async def select_destinations(self, spec: RequestSpec, hosts: list[HostState]) -> Selection:
        candidates = [
            h
            for h in hosts
            if h.node.ready
            and not h.node.unschedulable
            and h.name not in spec.ignore_hosts
            and spec.resources.fits_in(h.free)
        ]
        if not candidates:
            raise NoValidHost(
                f"No valid host was found: {len(hosts)} hosts, none ready with "
                f"{spec.resources.vcpus:g} vcpus, {spec.resources.ram_mib:g} MiB RAM and "
                f"{spec.resources.disk_gib:g} GiB disk free"
            )
        candidates.sort(key=lambda h: h.free.ram_mib, reverse=True)
        for index, host in enumerate(candidates):
            if await self.placement.claim(
                host.name, spec.instance_uid, spec.instance, spec.resources, host.capacity
            ):
                rest = [h.name for h in candidates[index + 1 :]]
                return Selection(host.name, tuple(rest[: self.max_attempts - 1]))
        raise NoValidHost(
            f"No valid host was found: all {len(candidates)} candidates were claimed meanwhile"
        )
