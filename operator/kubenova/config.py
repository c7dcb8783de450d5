"""Operator configuration: one validated object, from the command line (and later a file)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from kubenova.scheduler.config import SchedulerConfig


class OperatorConfig(BaseModel):
    state_dir: Path = Path(".kubenova/state")
    """Image cache and per-host instance directories."""
    hosts: int = Field(default=1, ge=0, le=64)
    """Embedded compute hosts this process registers and serves (0: none)."""
    host_prefix: str = "compute"
    zone: str = "nova"
    driver: Literal["qemu", "fake"] = "qemu"
    """fake: every compute Node is served by Nova-style FakeDriver (scale tests, benchmarks)."""
    metrics_port: int = Field(default=9464, ge=0, le=65535)
    """0 disables the metrics endpoint."""
    metrics_host: str = "127.0.0.1"
    boot_timeout: float = Field(default=300.0, gt=0)
    scheduler: SchedulerConfig = Field(default_factory=SchedulerConfig)

    def host_names(self) -> list[str]:
        return [f"{self.host_prefix}-{i}" for i in range(self.hosts)]
