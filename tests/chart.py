"""The Helm chart in tests: render it, install it, and act as its ServiceAccount."""

from __future__ import annotations

import contextlib
import subprocess
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client

from kubenova.cli import build_parser
from kubenova.config import LeaderElection, OperatorConfig
from kubenova.devcluster.cluster import free_port
from kubenova.devcluster.operator_process import OperatorProcess
from kubenova.tools import find_tool
from tests.kit import image_dir_args

REPO = Path(__file__).resolve().parents[1]
CHART = REPO / "charts" / "kubenova"
#: `helm template` assumes an old Kubernetes unless told; the chart needs 1.31+.
KUBE_VERSION = "1.34.0"


def helm(*args: str, kubeconfig: Path | None = None, check: bool = True) -> str:
    command = [find_tool("helm"), *args]
    if kubeconfig is not None:
        command.append(f"--kubeconfig={kubeconfig}")
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed:\n{result.stdout}{result.stderr}")
    return result.stdout + result.stderr


def set_args(values: dict[str, Any]) -> list[str]:
    return [arg for key, value in values.items() for arg in ("--set", f"{key}={value}")]


def render(
    values: dict[str, Any] | None = None, release: str = "nova", namespace: str = "nova-system"
) -> list[dict[str, Any]]:
    """The chart's objects (templates only; the CRDs are files) for these `--set` values."""
    out = helm(
        "template",
        release,
        str(CHART),
        f"--namespace={namespace}",
        f"--kube-version={KUBE_VERSION}",
        *set_args(values or {}),
    )
    return [doc for doc in yaml.safe_load_all(out) if doc]


def ours(objects: Iterable[dict[str, Any]], release: str = "nova") -> list[dict[str, Any]]:
    """The release's own objects (the chart also carries fixed-name tenant ClusterRoles)."""
    return [
        o
        for o in objects
        if (o["metadata"].get("labels") or {}).get("app.kubernetes.io/instance") == release
    ]


def find(objects: Iterable[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    matches = [o for o in objects if o["kind"] == kind and name in (None, o["metadata"]["name"])]
    assert len(matches) == 1, f"{len(matches)} {kind} {name or ''} in the chart"
    return matches[0]


def operator_container(objects: Iterable[dict[str, Any]]) -> dict[str, Any]:
    deployment = find(objects, "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container


def operator_config(args: list[str]) -> OperatorConfig:
    """The OperatorConfig `kubenova <args>` runs with (the parts permissions depend on)."""
    parsed = build_parser().parse_args(args)
    assert parsed.command == "operator", args
    return OperatorConfig(
        driver=parsed.driver,
        hosts=parsed.hosts,
        vm_namespace=parsed.vm_namespace,
        pod_disk=parsed.pod_disk,
        pod_storage_class=parsed.pod_storage_class,
        admission=parsed.admission,
        console_listen=None if parsed.console_listen in ("", "off") else parsed.console_listen,
        console_client_ca=parsed.console_client_ca,
        console_ca_configmap=parsed.console_ca_configmap,
        webhook_ca_secret=parsed.webhook_ca_secret,
        leader_election=LeaderElection(
            enabled=parsed.leader_elect,
            lease_name=parsed.leader_elect_resource_name,
            namespace=parsed.leader_elect_resource_namespace,
        ),
    )


def service_account_kubeconfig(
    cluster, api: client.ApiClient, namespace: str, account: str, path: Path
) -> Path:
    """A kubeconfig with a bound token of the ServiceAccount (TokenRequest), as the kubelet
    would project into the operator's pod."""
    token = (
        client.CoreV1Api(api)
        .create_namespaced_service_account_token(
            account, namespace, {"spec": {"expirationSeconds": 3600}}
        )
        .status.token
    )
    user = f"system:serviceaccount:{namespace}:{account}"
    path.write_text(cluster.kubeconfig_with(user, {"token": token}))
    path.chmod(0o600)
    return path


@dataclass
class Release:
    name: str
    namespace: str
    values: dict[str, Any]
    output: str
    """`helm install`'s output: the status and the rendered NOTES.txt."""

    @property
    def service_account(self) -> str:
        return f"{self.name}-kubenova"

    def objects(self) -> list[dict[str, Any]]:
        return render(self.values, release=self.name, namespace=self.namespace)


@contextlib.contextmanager
def installed(
    cluster, api: client.ApiClient, values: dict[str, Any], labels: dict[str, str] | None = None
) -> Iterator[Release]:
    """`helm install` into a fresh namespace of the dev control plane, uninstalled afterwards.

    The CRDs in the chart's crds/ are already there (the session's `crds` fixture installs the
    same files), so Helm skips them.
    """
    suffix = uuid.uuid4().hex[:6]
    name, namespace = f"kn{suffix}", f"kubenova-{suffix}"
    core = client.CoreV1Api(api)
    core.create_namespace({"metadata": {"name": namespace, "labels": labels or {}}})
    try:
        out = helm(
            "install",
            name,
            str(CHART),
            f"--namespace={namespace}",
            # The tenant ClusterRoles have fixed names; tests/integration/test_tenants.py
            # applies the same objects with kubectl: adopt them rather than fail.
            "--take-ownership",
            *set_args(values),
            kubeconfig=cluster.kubeconfig,
        )
        try:
            yield Release(name, namespace, values, out)
        finally:
            helm("uninstall", name, f"--namespace={namespace}", kubeconfig=cluster.kubeconfig)
    finally:
        core.delete_namespace(namespace)


def local_operator(
    objects: list[dict[str, Any]], work: Path, kubeconfig: Path
) -> tuple[OperatorProcess, str]:
    """The chart's operator command, run here as a process: the Deployment's arguments, with
    the pod's paths and listen addresses replaced by local ones. Returns it and the URL of its
    health endpoint (the probes' target)."""
    container = operator_container(objects)
    work.mkdir(parents=True, exist_ok=True)
    scheduler = work / "scheduler.yaml"
    config = next(
        o for o in objects if o["kind"] == "ConfigMap" and "scheduler.yaml" in (o.get("data") or {})
    )
    scheduler.write_text(config["data"]["scheduler.yaml"])
    health = f"http://127.0.0.1:{free_port()}/healthz"
    local = {
        "--state-dir": None,  # OperatorProcess sets these three
        "--hosts": None,
        "--metrics-port": None,
        "--metrics-host": "127.0.0.1",
        "--scheduler-config": str(scheduler),
        "--liveness": health,
    }
    args, hosts = [], 0
    for arg in container["args"][1:]:  # [0] is the `operator` subcommand
        flag, _, value = arg.partition("=")
        if flag == "--hosts":
            hosts = int(value)
        if flag in local:
            if local[flag] is not None:
                args.append(f"{flag}={local[flag]}")
        else:
            args.append(arg)
    process = OperatorProcess(
        kubeconfig,
        work / "state",
        work / "operator.log",
        hosts=hosts,
        metrics_port=free_port(),
        extra_args=(*image_dir_args(work), *args),
        pod_namespace=find(objects, "Deployment")["metadata"]["namespace"],
    )
    return process, health
