"""Operator configuration: one validated object, from the command line (and later a file)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from kubenova.image.policy import ImageImportPolicy
from kubenova.scheduler.config import SchedulerConfig

CLUSTER_DRIVERS = ("pod", "kubevirt")
"""Drivers whose VMs are Kubernetes objects on any compute Node."""


class LeaderElection(BaseModel):
    """One active replica among several (operator_main.py, leader.py): the holder of a
    coordination.k8s.io/v1 Lease runs the controllers; the others serve the admission webhook
    only. Durations as client-go's (and kube-controller-manager's --leader-elect-* flags)."""

    enabled: bool = False
    lease_name: str = Field(
        default="kubenova", pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", max_length=253
    )
    namespace: str | None = None
    """Where the Lease lives; default the pod's namespace ($POD_NAMESPACE, else the service
    account's namespace file, else `default`)."""
    lease_duration: float = Field(default=15.0, gt=0)
    """Seconds a candidate waits, from when it last saw the Lease change, before it takes the
    Lease of a holder that stopped renewing."""
    renew_deadline: float = Field(default=10.0, gt=0)
    """Seconds the leader keeps trying to renew before it gives up (the process exits)."""
    retry_period: float = Field(default=2.0, gt=0)
    """Seconds between tries (candidates, with jitter) and between renewals (the leader)."""

    @model_validator(mode="after")
    def _client_go_order(self) -> LeaderElection:
        from kubenova.leader import Timing

        Timing(self.lease_duration, self.renew_deadline, self.retry_period)  # ValueError
        return self


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
    pod_disk: Literal["pvc", "emptyDir"] = "pvc"
    """pod driver: where an instance's disk lives. pvc: a PersistentVolumeClaim per instance,
    kept while the pod is stopped (stop, start, reboot work); emptyDir: in the pod, lost with it
    (power operations are refused)."""
    pod_storage_class: str | None = None
    """pod driver, pvc: the claims' StorageClass; None: the cluster's default; "": none."""
    vm_namespace: str | None = None
    """pod, kubevirt: where the VM objects go; default the Instance's namespace."""
    kubevirt_container_disk: str | None = None
    """kubevirt: containerDisk image for Images without the `kubevirt_container_disk` property,
    a template with `{checksum}` (the Image's sha256), e.g. `registry/images:{checksum}`."""
    metrics_port: int = Field(default=9464, ge=0, le=65535)
    """0 disables the metrics endpoint."""
    metrics_host: str = "127.0.0.1"
    start_timeout: float = Field(default=120.0, gt=0)
    """Seconds a spawn, start or reboot waits for the hypervisor to run the VM."""
    boot_timeout: float = Field(default=300.0, gt=0)
    """Seconds the Ready condition waits for a sign that the guest OS is up (the VM stays
    ACTIVE when none comes, as in Nova)."""
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
    webhook_client_ca: Path | None = None
    """CA of the client certificate the apiserver presents to webhooks (its
    AdmissionConfiguration kubeConfigFile): with it, a caller without such a certificate is
    refused at the TLS handshake (the webhook's answers say what exists in any namespace).
    None: any caller that reaches the port is answered."""
    webhook_ca_secret: str | None = Field(
        default=None, pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", max_length=253
    )
    """A Secret (in the Lease's namespace) holding the webhook's CA (`ca.crt`, `ca.key`), so
    that every replica's serving certificate has the one CA the webhook configuration names;
    filled from this replica's CA when empty or absent (webhook_ca.py). None: the CA in
    webhook_cert_dir alone (one replica)."""
    leader_election: LeaderElection = Field(default_factory=LeaderElection)
    # -- instance actions and the console (conductor/actions.py, console/server.py) ---------
    shutdown_timeout: float = Field(default=60.0, ge=0)
    """Seconds a stop gives the guest to power off through ACPI before forcing it (Nova's
    shutdown_timeout)."""
    sync_power_state_interval: float = Field(default=60.0, ge=0)
    """Seconds between power-state syncs of each resting ACTIVE instance; 0 disables them."""
    console_listen: str | None = Field(
        default="127.0.0.1:9465", pattern=r"^(\[[0-9a-fA-F:.]+\]|[^:]+):\d{1,5}$"
    )
    """HOST:PORT of the console endpoint (HTTPS, Kubernetes authentication and RBAC); None
    disables it."""
    console_cert_dir: Path | None = None
    """The console endpoint's CA and serving certificate; default <state_dir>/console."""
    console_ca_configmap: bool = False
    """Publish the console's CA (`ca.crt`) in the ConfigMap console.forward.CA_CONFIGMAP of
    the pod's namespace, where `kubenova console` reads it through the API (then it may send a
    bearer token: the endpoint it reaches is verified)."""
    console_client_ca: Path | None = None
    """CA bundle of client certificates the console accepts; default the cluster's own
    (kube-system/extension-apiserver-authentication, as aggregated API servers read it)."""

    # -- host failure and the audit (issue 7 parts 4-5: conductor/hosts.py, audit/) ---------
    host_down_after: float = Field(default=60.0, gt=0)
    """Nova's service_down_time: a compute host whose heartbeat (its Lease) has not moved for
    this many seconds is down: no new instances, its instances marked."""
    resume_guests_state_on_host_boot: bool = False
    """Nova's option: an ACTIVE instance whose VM is not running when its host returns (or
    when the operator starts again) is started again; else it is stopped (STOPPED)."""
    audit_interval: float = Field(default=60.0, ge=0)
    """Seconds between audits for orphans (VMs, Ports, claims, attachments, quota entries of
    instances that no longer exist); 0 disables the audit."""
    audit_grace: float = Field(default=60.0, ge=0)
    """An orphan is removed only once it has been one for this long (two audits apart)."""

    # -- images (issues 14-15: image/, handlers/image.py, admission/image.py) -------------
    image_import: ImageImportPolicy = Field(default_factory=ImageImportPolicy)
    """Where Image sources may come from (the `imageImport` keys; --image-import-config)."""
    remove_unused_base_images: bool = True
    """Nova's option: the audit removes cached base images no instance on this operator's
    hosts uses."""
    remove_unused_original_minimum_age_seconds: float = Field(default=86400.0, ge=0)
    """Nova's option: how long a base image must have been unused before it is removed."""

    @property
    def imports_images(self) -> bool:
        """Whether Images are downloaded into this process's cache: not when every host is a
        cluster driver's (pod, KubeVirt), which fetches the image on the node itself."""
        return not (self.driver in CLUSTER_DRIVERS and self.hosts == 0)

    @property
    def heartbeat_interval(self) -> float:
        """How often embedded hosts renew their Lease: well within host_down_after."""
        return min(10.0, self.host_down_after / 4)

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

    @property
    def console_address(self) -> tuple[str, int] | None:
        if self.console_listen is None:
            return None
        host, _, port = self.console_listen.rpartition(":")
        return host.strip("[]"), int(port)

    @property
    def console_certs(self) -> Path:
        return self.console_cert_dir or self.state_dir / "console"
