"""Operator configuration: one validated object, from the command line (and later a file)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from kubenova.scheduler.config import SchedulerConfig

CLUSTER_DRIVERS = ("pod", "kubevirt")
"""Drivers whose VMs are Kubernetes objects on any compute Node."""


class OperatorConfig(BaseModel):
    state_dir: Path = Path(".kubenova/state")
    """Image cache and per-host instance directories."""
    hosts: int = Field(default=1, ge=0, le=64)
    """Embedded compute hosts this process registers and serves (0: none)."""
    host_prefix: str = "compute"
    zone: str = "nova"
    driver: Literal["qemu", "fake", "pod", "kubevirt"] = "qemu"
    """fake: every compute Node is served by Nova-style FakeDriver (scale tests, benchmarks).
    pod, kubevirt: every compute Node runs its VMs as QEMU pods or KubeVirt VMIs; `hosts`
    then defaults to 0 (embedded hosts, when asked for, keep the process driver)."""
    pod_image: str = "kubenova-launcher:dev"
    """pod driver: the container image with `kubenova launch`, qemu-system and qemu-img."""
    vm_namespace: str | None = None
    """pod, kubevirt: where the VM objects go; default the Instance's namespace."""
    kubevirt_container_disk: str | None = None
    """kubevirt: containerDisk image for Images without the `kubevirt_container_disk` property,
    a template with `{checksum}` (the Image's sha256), e.g. `registry/images:{checksum}`."""
    metrics_port: int = Field(default=9464, ge=0, le=65535)
    """0 disables the metrics endpoint."""
    metrics_host: str = "127.0.0.1"
    boot_timeout: float = Field(default=300.0, gt=0)
    scheduler: SchedulerConfig = Field(default_factory=SchedulerConfig)
    admission: bool = False
    """Serve the validating admission webhook (references, quota, in-use volumes)."""
    webhook_listen: str = Field(
        default="127.0.0.1:9443", pattern=r"^(\[[0-9a-fA-F:.]+\]|[^:]+):\d{1,5}$"
    )
    """HOST:PORT the webhook server binds ([v6]:PORT for IPv6)."""
    webhook_host: str | None = None
    """The name or IP the apiserver dials, put in the certificate; default the listen host."""
    webhook_cert_dir: Path | None = None
    """Where the webhook's CA and serving certificate live; default <state_dir>/webhook."""

    @model_validator(mode="before")
    @classmethod
    def _no_embedded_hosts_with_a_cluster_driver(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("hosts") is None:
            data = {k: v for k, v in data.items() if k != "hosts"}
            if data.get("driver") in CLUSTER_DRIVERS:
                data["hosts"] = 0
        return data

    def host_names(self) -> list[str]:
        return [f"{self.host_prefix}-{i}" for i in range(self.hosts)]

    @property
    def webhook_address(self) -> tuple[str, int]:
        """The listen host (brackets stripped) and port."""
        host, _, port = self.webhook_listen.rpartition(":")
        return host.strip("[]"), int(port)

    @property
    def webhook_dial_host(self) -> str:
        return self.webhook_host or self.webhook_address[0]

    @property
    def webhook_certs(self) -> Path:
        return self.webhook_cert_dir or self.state_dir / "webhook"
