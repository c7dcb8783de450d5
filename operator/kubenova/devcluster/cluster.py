"""DevCluster: etcd + kube-apiserver on free loopback ports, torn down without a trace."""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import os
import shutil
import socket
import ssl
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

import yaml

from kubenova.devcluster.process import ManagedProcess
from kubenova.pki import CertificateAuthority, signing_key_pair
from kubenova.tools import find_tool

LOOPBACK = "127.0.0.1"
ADMIN_USER = "kubenova-admin"
_TEMP_PREFIX = "kubenova-cluster-"
_OWNER_FILE = "owner.pid"


class DevClusterError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_orphaned_state(temp_root: Path | None = None) -> list[Path]:
    """Remove temp state dirs whose owner died without teardown (SIGKILL, power loss).

    The owner's children died with it (PR_SET_PDEATHSIG); only its files can be left.
    """
    removed = []
    for directory in Path(temp_root or tempfile.gettempdir()).glob(f"{_TEMP_PREFIX}*"):
        try:
            owner = int((directory / _OWNER_FILE).read_text())
        except (OSError, ValueError):
            continue  # not ours, or still being set up
        if not _pid_alive(owner):
            shutil.rmtree(directory, ignore_errors=True)
            removed.append(directory)
    return removed


class DevCluster:
    """A single-member etcd and one kube-apiserver with RBAC, certificates and a kubeconfig.

    Use as a context manager, or call start() and stop(); stop() is safe to call more than once
    and removes the state directory unless `keep_state` is set.
    """

    def __init__(self, state_dir: Path | None = None, keep_state: bool = False) -> None:
        if state_dir is None:
            sweep_orphaned_state()
        self.state_dir = Path(state_dir or tempfile.mkdtemp(prefix=_TEMP_PREFIX))
        self.keep_state = keep_state
        # A week: the control plane is thrown away long before.
        self.ca = CertificateAuthority.create("kubenova-dev-ca", dt.timedelta(days=7))
        # Its own CA: webhooks that trust it trust the apiserver only, not every user whose
        # client certificate the cluster CA signed.
        self.webhook_client_ca = CertificateAuthority.create(
            "kubenova-dev-webhook-client-ca", dt.timedelta(days=7)
        )
        self.api_port = 0
        self.etcd_port = 0
        self._etcd: ManagedProcess | None = None
        self._apiserver: ManagedProcess | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    def __enter__(self) -> DevCluster:
        self.start()
        return self

    def __exit__(self, *exc: object | TracebackType) -> None:
        self.stop()

    @property
    def server(self) -> str:
        return f"https://{LOOPBACK}:{self.api_port}"

    @property
    def kubeconfig(self) -> Path:
        return self.state_dir / "kubeconfig"

    @property
    def webhook_client_ca_file(self) -> Path:
        """The CA of the client certificate the apiserver presents to every admission webhook
        (`kubenova operator --webhook-client-ca`)."""
        return self.state_dir / "pki" / "webhook-client-ca.crt"

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in (self._etcd, self._apiserver) if p and p.pid]

    def start(self, timeout: float = 90.0) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        (self.state_dir / _OWNER_FILE).write_text(str(os.getpid()))
        try:
            self._start_etcd(timeout)
            self._start_apiserver(timeout)
            self.kubeconfig.write_text(self.kubeconfig_for(ADMIN_USER, ("system:masters",)))
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        # The apiserver first, so it does not spend its shutdown retrying a dead etcd.
        for proc in (self._apiserver, self._etcd):
            if proc is not None:
                proc.stop()
        self._apiserver = self._etcd = None
        if not self.keep_state:
            shutil.rmtree(self.state_dir, ignore_errors=True)

    def restart_apiserver(self, down_for: float = 0.0, timeout: float = 90.0) -> None:
        """Stop kube-apiserver and start it again on the same port, with the same certificates,
        keys and etcd (what a control-plane upgrade or crash looks like to its clients): every
        kubeconfig stays valid and the data is all there. `down_for`: seconds it stays down."""
        old = self._apiserver
        if old is None:
            raise DevClusterError("kube-apiserver is not running")
        old.stop()
        self._apiserver = None
        time.sleep(down_for)
        proc = ManagedProcess(old.name, old.argv, old.log_path)
        proc.start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and proc.alive():
            if self._healthy(f"{self.server}/readyz"):
                self._apiserver = proc
                return
            time.sleep(0.2)
        tail = proc.log_tail()
        proc.stop()
        raise DevClusterError(f"kube-apiserver did not come back on port {self.api_port}:\n{tail}")

    # -- etcd --------------------------------------------------------------------------------
    def _start_etcd(self, timeout: float) -> None:
        def launch() -> ManagedProcess:
            self.etcd_port, peer = free_port(), free_port()
            data = self.state_dir / "etcd"
            shutil.rmtree(data, ignore_errors=True)
            client_url, peer_url = (
                f"http://{LOOPBACK}:{self.etcd_port}",
                f"http://{LOOPBACK}:{peer}",
            )
            return ManagedProcess(
                "etcd",
                [
                    find_tool("etcd"),
                    "--name=kubenova",
                    f"--data-dir={data}",
                    f"--listen-client-urls={client_url}",
                    f"--advertise-client-urls={client_url}",
                    f"--listen-peer-urls={peer_url}",
                    f"--initial-advertise-peer-urls={peer_url}",
                    f"--initial-cluster=kubenova={peer_url}",
                    "--unsafe-no-fsync",  # throw-away data: durability is not worth the latency
                    "--log-level=warn",
                ],
                self.state_dir / "etcd.log",
            )

        self._etcd = self._launch(launch, f"http://{LOOPBACK}:{{etcd_port}}/health", timeout)

    # -- kube-apiserver ----------------------------------------------------------------------
    def _start_apiserver(self, timeout: float) -> None:
        pki = self.state_dir / "pki"
        pki.mkdir(exist_ok=True)
        (pki / "ca.crt").write_bytes(self.ca.cert_pem)
        serving_cert, serving_key = self.ca.serving(
            "kube-apiserver", [LOOPBACK, "localhost", "kubernetes.default.svc"]
        ).write(pki, "apiserver")
        sa_pub, sa_key = signing_key_pair().write(pki, "service-account")
        admission_config = self._webhook_client_config(pki)

        def launch() -> ManagedProcess:
            self.api_port = free_port()
            return ManagedProcess(
                "kube-apiserver",
                [
                    find_tool("kube-apiserver"),
                    f"--etcd-servers=http://{LOOPBACK}:{self.etcd_port}",
                    f"--bind-address={LOOPBACK}",
                    f"--advertise-address={LOOPBACK}",
                    f"--secure-port={self.api_port}",
                    f"--cert-dir={pki}",
                    f"--tls-cert-file={serving_cert}",
                    f"--tls-private-key-file={serving_key}",
                    f"--client-ca-file={pki / 'ca.crt'}",
                    f"--service-account-key-file={sa_pub}",
                    f"--service-account-signing-key-file={sa_key}",
                    "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                    "--authorization-mode=RBAC",
                    "--service-cluster-ip-range=10.0.0.0/24",
                    "--allow-privileged=true",
                    # No controller-manager runs: nothing would create the `default` ServiceAccount
                    # the ServiceAccount plugin insists on for every pod, nor lift the not-ready
                    # taint TaintNodesByCondition puts on every new Node (the node lifecycle
                    # controller's job).
                    "--disable-admission-plugins=ServiceAccount,TaintNodesByCondition",
                    f"--admission-control-config-file={admission_config}",
                    "--profiling=false",
                ],
                self.state_dir / "kube-apiserver.log",
            )

        self._apiserver = self._launch(launch, "{server}/readyz", timeout)

    def _webhook_client_config(self, pki: Path) -> Path:
        """The AdmissionConfiguration giving the apiserver a client certificate for every
        admission webhook (kubeconfig user `*`, the default match), so a webhook can tell the
        apiserver from anyone else who reaches it."""
        self.webhook_client_ca_file.write_bytes(self.webhook_client_ca.cert_pem)
        pair = self.webhook_client_ca.client("kube-apiserver-webhook-client")
        kubeconfig = pki / "webhook-client.kubeconfig"
        kubeconfig.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "users": [
                        {
                            "name": "*",
                            "user": {
                                "client-certificate-data": _b64(pair.cert_pem),
                                "client-key-data": _b64(pair.key_pem),
                            },
                        }
                    ],
                }
            )
        )
        kubeconfig.chmod(0o600)
        webhook = {"kubeConfigFile": str(kubeconfig)}
        config = pki / "admission-config.yaml"
        config.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "apiserver.config.k8s.io/v1",
                    "kind": "AdmissionConfiguration",
                    "plugins": [
                        {
                            "name": name,
                            "configuration": {
                                "apiVersion": "apiserver.config.k8s.io/v1",
                                "kind": "WebhookAdmissionConfiguration",
                                **webhook,
                            },
                        }
                        for name in ("ValidatingAdmissionWebhook", "MutatingAdmissionWebhook")
                    ],
                }
            )
        )
        return config

    # -- shared ------------------------------------------------------------------------------
    def _launch(self, make, health_url: str, timeout: float, tries: int = 3) -> ManagedProcess:
        """Start a process and wait until its health URL answers 200.

        A free port can be taken between our probe and the child's bind; a child that dies
        early is retried on fresh ports.
        """
        last = ""
        for _ in range(tries):
            proc = make()
            proc.start()
            url = health_url.format(etcd_port=self.etcd_port, server=self.server)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and proc.alive():
                if self._healthy(url):
                    return proc
                time.sleep(0.2)
            last = proc.log_tail()
            proc.stop()
            if time.monotonic() < deadline:  # it died: maybe a port clash, try again
                continue
            raise DevClusterError(f"{proc.name} did not become healthy in {timeout:.0f}s:\n{last}")
        raise DevClusterError(f"{proc.name} exited at start {tries} times; last log:\n{last}")

    def _ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cadata=self.ca.cert_pem.decode())
        pki = self.state_dir / "pki"
        if not (pki / "admin.crt").exists():
            self.ca.client(ADMIN_USER, ("system:masters",)).write(pki, "admin")
        ctx.load_cert_chain(pki / "admin.crt", pki / "admin.key")
        return ctx

    def _healthy(self, url: str) -> bool:
        context = self._ssl_context() if url.startswith("https") else None
        with (
            contextlib.suppress(OSError, urllib.error.URLError),
            urllib.request.urlopen(url, timeout=2, context=context) as response,
        ):
            return response.status == 200
        return False

    # -- credentials -------------------------------------------------------------------------
    def kubeconfig_for(self, user: str, groups: tuple[str, ...] = ()) -> str:
        """A kubeconfig authenticating as `user` in `groups` with a client certificate."""
        pair = self.ca.client(user, groups)
        credentials = {
            "client-certificate-data": _b64(pair.cert_pem),
            "client-key-data": _b64(pair.key_pem),
        }
        return self.kubeconfig_with(user, credentials)

    def kubeconfig_with(self, user: str, credentials: dict[str, str]) -> str:
        """A kubeconfig for this control plane with the given user credentials (a client
        certificate, or `{"token": ...}`)."""
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "kubenova",
                    "cluster": {
                        "server": self.server,
                        "certificate-authority-data": _b64(self.ca.cert_pem),
                    },
                }
            ],
            "users": [{"name": user, "user": credentials}],
            "contexts": [{"name": "kubenova", "context": {"cluster": "kubenova", "user": user}}],
            "current-context": "kubenova",
        }
        return yaml.safe_dump(config, sort_keys=False)

    def write_kubeconfig_for(self, user: str, groups: tuple[str, ...] = ()) -> Path:
        path = self.state_dir / f"kubeconfig-{user}"
        path.write_text(self.kubeconfig_for(user, groups))
        path.chmod(0o600)
        return path
