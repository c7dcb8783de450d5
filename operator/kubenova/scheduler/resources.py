"""The three resource classes Nova schedules on (VCPU, MEMORY_MB, DISK_GB)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Resources:
    vcpus: float = 0
    ram_mib: float = 0
    disk_gib: float = 0

    def __add__(self, other: Resources) -> Resources:
        return Resources(
            self.vcpus + other.vcpus, self.ram_mib + other.ram_mib, self.disk_gib + other.disk_gib
        )

    def __sub__(self, other: Resources) -> Resources:
        return Resources(
            self.vcpus - other.vcpus, self.ram_mib - other.ram_mib, self.disk_gib - other.disk_gib
        )

    def fits_in(self, free: Resources) -> bool:
        return (
            self.vcpus <= free.vcpus
            and self.ram_mib <= free.ram_mib
            and self.disk_gib <= free.disk_gib
        )

    @classmethod
    def of_allocation(cls, alloc: dict) -> Resources:
        return cls(alloc.get("vcpus", 0), alloc.get("ramMiB", 0), alloc.get("diskGiB", 0))

    def as_allocation(self, consumer: str) -> dict:
        return {
            "consumer": consumer,
            "vcpus": int(self.vcpus),
            "ramMiB": int(self.ram_mib),
            "diskGiB": int(self.disk_gib),
        }
