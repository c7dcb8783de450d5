"""`make run`: the embedded default end to end: control plane, operator with a local QEMU
host and the admission webhook, the example instance booted, its progress and phase timings
printed.

The webhook is on, as in a cluster the chart installs: what a cluster refuses at apply (a
missing flavor or image, over quota, an in-use volume deleted) is refused here too. kopf serves
it on a free loopback port with a certificate from its own CA, and registers the
ValidatingWebhookConfiguration the dev apiserver (also on loopback) calls. It answers the
apiserver only (the client certificate the dev cluster gives it for webhooks): its answers say
what exists in any namespace, so no local user may ask it directly."""

from __future__ import annotations

import itertools
import shutil
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, config, watch

from kubenova import GROUP, VERSION
from kubenova.admission.probe import webhook_answers
from kubenova.conductor.conditions import find
from kubenova.devcluster import DevCluster
from kubenova.devcluster.cluster import LOOPBACK, free_port
from kubenova.devcluster.operator_process import OperatorProcess
from kubenova.kube.crds import install_crds
from kubenova.models.v1alpha1 import KINDS
from kubenova.timestamps import parse_time

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
GUEST = REPO / ".bin" / "guest" / "busybox.qcow2"


def say(message: str) -> None:
    print(message, flush=True)


def admission_args(cluster: DevCluster, webhook_port: int | None = None) -> tuple[str, ...]:
    """The operator's flags for the webhook on loopback, where the dev apiserver dials it,
    answering the apiserver only (the client certificate it presents to webhooks)."""
    return (
        "--admission",
        f"--webhook-listen={LOOPBACK}:{webhook_port or free_port()}",
        f"--webhook-client-ca={cluster.webhook_client_ca_file}",
    )


def embedded_operator(
    cluster: DevCluster,
    state: Path,
    hosts: int,
    metrics_port: int,
    extra_args: tuple[str, ...] = (),
) -> OperatorProcess:
    """The operator `kubenova run` starts: local hosts, the admission webhook on loopback,
    its files in `state`/operator and its log in `state`/operator.log."""
    return OperatorProcess(
        cluster.kubeconfig,
        state / "operator",
        state / "operator.log",
        hosts=hosts,
        metrics_port=metrics_port,
        extra_args=(*admission_args(cluster), *extra_args),
    )


def start_admitting_operator(
    api: client.ApiClient, operator: OperatorProcess, timeout: float = 60.0
) -> None:
    """Start the operator and return once the apiserver calls its webhook (kopf registers it
    at start-up; until then a create would not be checked). If it dies or is late, it is
    stopped and the error says why, with its log."""
    operator.start()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not operator.alive():
            tail = operator.log_tail(40)
            operator.stop()
            raise RuntimeError(f"the operator exited at start:\n{tail}")
        if webhook_answers(api):
            return
        time.sleep(0.2)
    tail = operator.log_tail(40)
    operator.stop()
    raise TimeoutError(
        f"the apiserver did not call the admission webhook within {timeout:.0f}s:\n{tail}"
    )


def example_objects(guest: Path) -> list[dict[str, Any]]:
    """Flavor, Image and Instance from examples/, the Image pointed at the guest built here."""
    docs = []
    for name in ("flavor.yaml", "image.yaml", "instance.yaml"):
        docs.extend(yaml.safe_load_all((EXAMPLES / name).read_text()))
    for doc in docs:
        if doc["kind"] == "Image":
            doc["spec"]["source"] = str(guest)
            doc["spec"]["checksum"] = Path(f"{guest}.sha256").read_text().split()[0]
    return docs


def apply(api: client.ApiClient, namespace: str, doc: dict[str, Any]) -> None:
    custom = client.CustomObjectsApi(api)
    kind = next(k for k in KINDS if k.kind() == doc["kind"])
    plural = kind.crd.plural
    if kind.crd.scope == "Cluster":
        custom.create_cluster_custom_object(GROUP, VERSION, plural, doc)
    else:
        custom.create_namespaced_custom_object(GROUP, VERSION, namespace, plural, doc)


def _ready(status: dict[str, Any]) -> tuple[str, str]:
    cond = find(status.get("conditions"), "Ready") or {}
    return cond.get("status") or "-", cond.get("reason") or "-"


def follow(api: client.ApiClient, namespace: str, name: str, timeout: float) -> dict[str, Any]:
    """Print each state as the instance reaches it, then condition Ready; return the object
    once the guest is up (Ready True), its boot timed out, or it is in ERROR."""
    custom = client.CustomObjectsApi(api)
    seen: tuple[str, str, str] | None = None
    start = time.monotonic()
    stream = watch.Watch()
    for event in stream.stream(
        custom.list_namespaced_custom_object,
        GROUP,
        VERSION,
        namespace,
        "instances",
        field_selector=f"metadata.name={name}",
        timeout_seconds=int(timeout),
    ):
        obj = event["object"]
        status = obj.get("status") or {}
        ready, reason = _ready(status)
        state = (
            status.get("printableStatus") or "-",
            status.get("vmState") or "created",
            status.get("taskState") or "-",
            f"Ready={ready} ({reason})" if status.get("vmState") == "ACTIVE" else "",
        )
        if state != seen:
            seen = state
            say(f"  {time.monotonic() - start:7.2f}s  {state[0]:<11} {state[1]:<9} {state[2]:<9}"
                f" {state[3]}".rstrip())  # fmt: skip
        if state[1] == "ERROR" or (state[1] == "ACTIVE" and reason != "GuestBooting"):
            stream.stop()
            return obj
    raise TimeoutError(f"instance {name} was not Ready in {timeout:.0f}s")


def report(obj: dict[str, Any]) -> float:
    status = obj["status"]
    created = parse_time(obj["metadata"]["creationTimestamp"])
    history = status.get("phaseTransitionTimestamps") or []
    say("time in each state:")
    for before, after in itertools.pairwise(history):
        label = f"{before['vmState']}/{before.get('taskState', 'none')}"
        took = (parse_time(after["time"]) - parse_time(before["time"])).total_seconds()
        say(f"  {label:<32} {took:7.2f}s")
    if status.get("vmState") != "ACTIVE":
        fault = status.get("fault") or {}
        say(f"instance ended {status.get('vmState')}: {fault.get('message')}")
        return -1.0
    first = parse_time(history[0]["time"]) if history else created
    active = (parse_time(history[-1]["time"]) - first).total_seconds()
    say(f"ACTIVE (the VM runs) {active:.2f}s after it was accepted, on {status['host']}")
    if not status.get("guestBootedAt"):
        say(f"the guest did not show it is up: {_ready(status)[1]}")
        return -1.0
    latency = (parse_time(status["guestBootedAt"]) - first).total_seconds()
    say(
        f"boot latency (accepted -> Ready, guest OS up by {status.get('guestBootSignal')}): "
        f"{latency:.2f}s on {status['host']}"
    )
    return latency


def run(once: bool, hosts: int, timeout: float) -> int:
    if not GUEST.exists():
        say(f"{GUEST} is missing: run `make setup` first")
        return 2
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    state = REPO / ".kubenova" / "run"
    shutil.rmtree(state, ignore_errors=True)
    state.mkdir(parents=True)
    with DevCluster() as cluster:
        api = config.new_client_from_config(str(cluster.kubeconfig))
        install_crds(api, KINDS)
        say(f"control plane up at {cluster.server}")
        metrics_port = free_port()
        operator = embedded_operator(cluster, state, hosts, metrics_port)
        start_admitting_operator(api, operator)
        say(
            f"operator started with the admission webhook (log {state / 'operator.log'}, "
            f"metrics http://127.0.0.1:{metrics_port}/metrics)"
        )
        code = 1
        try:
            for doc in example_objects(GUEST):
                apply(api, "default", doc)
            say("applied examples/flavor.yaml, image.yaml, instance.yaml; booting 'demo':")
            obj = follow(api, "default", "demo", timeout)
            code = 0 if report(obj) >= 0 else 1
            if not once:
                say(f"export KUBECONFIG={cluster.kubeconfig}")
                say(f"export KUBENOVA_CONSOLE_CA={state / 'operator' / 'console' / 'ca.crt'}")
                say(
                    "kubectl get instances; kubenova events demo; kubenova console demo; "
                    "Ctrl-C deletes the instance and stops everything"
                )
                stop.wait()
        finally:
            cleanup(api, operator)
            api.close()
    return code


def cleanup(api: client.ApiClient, operator: OperatorProcess) -> None:
    """Delete the instance through the operator (the VM goes with it), then stop it."""
    custom = client.CustomObjectsApi(api)
    try:
        custom.delete_namespaced_custom_object(GROUP, VERSION, "default", "instances", "demo")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            custom.get_namespaced_custom_object(GROUP, VERSION, "default", "instances", "demo")
            time.sleep(0.5)
    except client.ApiException as err:
        if err.status != 404:
            print(f"cleanup: {err.reason}", file=sys.stderr)
    operator.stop()
    say("deleted the instance, stopped the operator and the control plane")
