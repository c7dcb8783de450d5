"""Placement throughput: kubenova's scheduler against an unthrottled kube-scheduler, one run.

Each side gets a fresh control plane (etcd + kube-apiserver, DevCluster) with the same N fake
compute Nodes (no kubelet, no VMs), then M objects of the same size:

- kubenova: the operator as a process with the fake driver (every Node is a host), an unlimited
  Quota for the namespace, M Instances of a 1 vCPU / 512 MiB / 1 GiB flavor. Placed = status.host
  is set (Nova's FilterScheduler chose the host and the claim on its ResourceProvider was written);
  running = vmState ACTIVE (the fake driver "spawned" it).
- kube-scheduler: the real binary with a KubeSchedulerConfiguration whose client runs at qps /
  burst 5000 and no leader election, as Kubernetes' own scheduler_perf runs it (defaults for
  percentageOfNodesToScore and parallelism); M Pods requesting 1 CPU / 512 MiB. Placed =
  spec.nodeName (bound); running = phase Running, written by kwok standing in for the kubelets.
  `--as-shipped` adds a third side with the client's default limit (qps 50, burst 100): printed,
  never the denominator of a ratio.

Modes: `drain` (default) creates every object while the scheduler is stopped, then starts it, so
the creating client is not the bottleneck: throughput is over the scheduling period (first to
last placement) and the scheduler's start (to its first placement) is printed apart. `stream`
creates objects while the scheduler runs: throughput is from the first create call to the last
placement. Latencies are from each create call to the watcher's first sight of the object placed
(and running); the watcher is a process of its own (bench/sight.py). Also printed: the creation
rate, the scheduler's peak RSS and CPU seconds, a capacity check of each side (no Node over its
capacity; every kubenova allocation matches its instance), and the ratios last. `--json FILE`
writes every figure (tests/integration/test_bench_schedule.py runs a small one for correctness).

    .venv/bin/python bench/schedule.py [--nodes 5000] [--instances 10000] [--mode drain]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import ssl
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client, config
from sight import Stamps, Watcher

from kubenova import GROUP, VERSION
from kubenova.compute.registration import HOST_LABEL
from kubenova.devcluster import DevCluster
from kubenova.devcluster.api_requests import (
    READS,
    WRITES,
    Request,
    Requests,
    api_requests,
    kubenova_objects,
    per_object,
    since,
)
from kubenova.devcluster.cluster import LOOPBACK, free_port
from kubenova.devcluster.kwok import ANNOTATION, Kwok
from kubenova.devcluster.operator_process import OperatorProcess
from kubenova.devcluster.process import ManagedProcess
from kubenova.embedded import apply
from kubenova.kube.crds import install_crds
from kubenova.models.v1alpha1 import KINDS
from kubenova.models.v1alpha1.quota import UNLIMITED
from kubenova.scheduler.host_state import ZONE_LABEL, AllocationRatios, HostState, NodeSummary
from kubenova.scheduler.resources import Resources
from kubenova.tools import find_tool

NAMESPACE = "bench"
FLAVOR = "bench-tiny"
IMAGE = "bench-tiny"
REQUEST = Resources(vcpus=1, ram_mib=512, disk_gib=1)
NODE = {"cpu": 8, "memory_gib": 32, "disk_gib": 200, "pods": 110}
UNTHROTTLED_QPS = 5000  # scheduler_perf's client qps and burst


@dataclass
class Side:
    """One side's figures. Times are time.monotonic() seconds (one clock for all processes)."""

    name: str
    mode: str
    created: dict[str, float] = field(default_factory=dict)
    stamps: Stamps = field(default_factory=Stamps)
    create_seconds: float = 0.0
    scheduler_started: float = 0.0
    ready_seconds: float | None = None
    """From starting the scheduler to its readiness, where it has a signal for that."""
    peak_rss_mib: float = 0.0
    cpu_seconds: float = 0.0
    helper_rss_mib: float = 0.0
    helper_cpu_seconds: float = 0.0
    checks: dict[str, Any] = field(default_factory=dict)
    requests: Requests = field(default_factory=Counter)
    """The apiserver's requests during the run by (verb, group, resource[/subresource]), the
    benchmark's own create calls taken out (kubenova: only its kinds' and Events, as
    tests/integration/test_write_budget.py counts them)."""

    def per_object(self, verbs: frozenset[str]) -> float:
        return per_object(self.requests, verbs, len(self.created))

    def latencies(self, seen: dict[str, float]) -> list[float]:
        return sorted(seen[n] - self.created[n] for n in seen if n in self.created)

    def percentile(self, seen: dict[str, float], q: float) -> float:
        """Nearest-rank percentile of create -> seen, in seconds."""
        values = self.latencies(seen)
        if not values:
            return float("nan")
        return values[min(len(values) - 1, max(0, round(q / 100 * len(values)) - 1))]

    def start_to_first(self) -> float:
        """Drain mode: from starting the scheduler to its first placement (its start-up)."""
        if not self.stamps.placed or not self.scheduler_started:
            return float("nan")
        return min(self.stamps.placed.values()) - self.scheduler_started

    def per_second(self, seen: dict[str, float]) -> float:
        """Drain: over the scheduling period (first to last sight); stream: from the first
        create call to the last sight."""
        if len(seen) < 2 or not self.created:
            return 0.0
        begin = min(seen.values()) if self.mode == "drain" else min(self.created.values())
        span = max(seen.values()) - begin
        return len(seen) / span if span > 0 else 0.0

    def figures(self) -> dict[str, Any]:
        placed, running = self.stamps.placed, self.stamps.running
        return {
            "objects": len(self.created),
            "placed": len(placed),
            "running": len(running),
            "failed": len(self.stamps.failed),
            "create_calls_seconds": round(self.create_seconds, 3),
            "creates_per_second": round(len(self.created) / self.create_seconds, 1)
            if self.create_seconds
            else 0.0,
            "scheduler_ready_seconds": None
            if self.ready_seconds is None
            else round(self.ready_seconds, 3),
            "start_to_first_placement_seconds": round(self.start_to_first(), 3),
            "placed_per_second": round(self.per_second(placed), 1),
            "running_per_second": round(self.per_second(running), 1),
            "placed_p50_seconds": round(self.percentile(placed, 50), 3),
            "placed_p99_seconds": round(self.percentile(placed, 99), 3),
            "running_p50_seconds": round(self.percentile(running, 50), 3),
            "running_p99_seconds": round(self.percentile(running, 99), 3),
            "scheduler_peak_rss_mib": round(self.peak_rss_mib, 1),
            "scheduler_cpu_seconds": round(self.cpu_seconds, 2),
            "kubelet_stand_in_peak_rss_mib": round(self.helper_rss_mib, 1),
            "kubelet_stand_in_cpu_seconds": round(self.helper_cpu_seconds, 2),
            "api_writes_per_object": self.per_object(WRITES),
            "api_reads_per_object": self.per_object(READS),
            "api_requests": {str(request): n for request, n in self.requests.most_common()},
            "failures": dict(Counter(self.stamps.failed.values()).most_common(3)),
            "checks": self.checks,
        }


# -- shared plumbing -----------------------------------------------------------------------------
def api_client(kubeconfig: Path, connections: int) -> client.ApiClient:
    """An admin client whose connection pool is as large as the number of threads using it
    (new_client_from_config keeps urllib3's default of 4, which would churn connections)."""
    configuration = client.Configuration()
    config.load_kube_config(str(kubeconfig), client_configuration=configuration)
    configuration.connection_pool_maxsize = connections
    return client.ApiClient(configuration)


def create_all(
    names: Iterable[str], create: Callable[[str], None], threads: int
) -> dict[str, float]:
    """Run `create(name)` for every name on `threads` threads; the clock before each call."""
    created: dict[str, float] = {}

    def one(name: str) -> None:
        created[name] = time.monotonic()
        create(name)

    with ThreadPoolExecutor(threads) as pool:
        futures = [pool.submit(one, name) for name in names]
        try:
            for future in futures:
                future.result()
        except BaseException:
            pool.shutdown(cancel_futures=True)
            raise
    return created


def discard(response: Any) -> None:
    """Read a `_preload_content=False` response so its connection returns to the pool, skipping
    deserialization into models (which would cost more than the request itself)."""
    response.data  # noqa: B018 - reading is the point
    response.release_conn()


def node_resources() -> dict[str, str]:
    return {
        "cpu": str(NODE["cpu"]),
        "memory": f"{NODE['memory_gib']}Gi",
        "ephemeral-storage": f"{NODE['disk_gib']}Gi",
        "pods": str(NODE["pods"]),
    }


def create_nodes(api: client.ApiClient, count: int, threads: int) -> None:
    """N Ready compute Nodes, the same on both sides: status set at creation (one call each),
    annotated for kwok, which keeps them Ready where it runs (the kube-scheduler side)."""
    core = client.CoreV1Api(api)
    ready = {"type": "Ready", "status": "True", "reason": "Bench", "message": "fake node"}

    def create(name: str) -> None:
        labels = {
            HOST_LABEL: "true",
            ZONE_LABEL: "nova",
            "kubernetes.io/arch": "amd64",
            "kubernetes.io/os": "linux",
            "kubernetes.io/hostname": name,
        }
        body = {
            "metadata": {"name": name, "labels": labels, "annotations": {ANNOTATION: "fake"}},
            "status": {
                "capacity": node_resources(),
                "allocatable": node_resources(),
                "conditions": [ready],
            },
        }
        discard(core.create_node(body, _preload_content=False))

    begin = time.monotonic()
    create_all((f"node-{i:05d}" for i in range(count)), create, threads)
    print(f"  {count} nodes in {time.monotonic() - begin:.1f}s", flush=True)


def capacities(nodes: int) -> tuple[int, int]:
    """How many of our objects fit on the Nodes: kubenova (allocation ratios), kube-scheduler."""
    ratios = AllocationRatios()
    per_host = min(
        NODE["cpu"] * ratios.cpu / REQUEST.vcpus,
        NODE["memory_gib"] * 1024 * ratios.ram / REQUEST.ram_mib,
        NODE["disk_gib"] * ratios.disk / REQUEST.disk_gib,
    )
    per_node = min(NODE["cpu"] / REQUEST.vcpus, NODE["memory_gib"] * 1024 / REQUEST.ram_mib)
    return nodes * int(per_host), nodes * int(min(per_node, NODE["pods"]))


def usage(pid: int | None) -> tuple[float, float]:
    """Peak RSS (VmHWM, MiB) and CPU seconds (user + system) of a running process."""
    if pid is None:
        return 0.0, 0.0
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    hwm_kib = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return hwm_kib / 1024, (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")


def wait_settled(
    watcher: Watcher, side: Side, expected: int, procs: list[ManagedProcess], timeout: float
) -> None:
    """Wait until every object runs or failed, printing progress; give up at `timeout` (the
    figures then cover what was seen) or if a process under test dies."""
    deadline = time.monotonic() + timeout
    while not watcher.done():
        time.sleep(min(10.0, max(0.1, deadline - time.monotonic())))
        placed, running, failed = watcher.progress()
        print(
            f"  {side.name}: {placed}/{expected} placed, {running} running, {failed} failed",
            flush=True,
        )
        for proc in procs:
            if not proc.alive():
                raise RuntimeError(f"{proc.name} exited:\n{proc.log_tail()}")
        if time.monotonic() > deadline:
            print(f"  {side.name}: gave up after {timeout:.0f}s", flush=True)
            return


def run_side(
    side: Side,
    args: argparse.Namespace,
    kind: str,
    names: list[str],
    create: Callable[[str], None],
    start_scheduler: Callable[[], ManagedProcess],
    helpers: list[ManagedProcess],
    api: client.ApiClient,
    kubeconfig: Path,
    work: Path,
) -> None:
    """The shared sequence: (drain) create everything, watch, start the scheduler; or (stream)
    start the scheduler, watch, create. Then wait, and take the processes' usage."""
    watcher = Watcher(kubeconfig, kind, NAMESPACE, len(names), work / f"{side.name}-stamps.json")
    scheduler: ManagedProcess | None = None
    before = api_requests(api)

    def create_everything() -> None:
        begin = time.monotonic()
        side.created = create_all(names, create, args.threads)
        side.create_seconds = time.monotonic() - begin
        rate = len(names) / side.create_seconds if side.create_seconds else 0.0
        print(f"  created {len(names)} {kind} in {side.create_seconds:.1f}s ({rate:.0f}/s)")

    try:
        if args.mode == "drain":
            create_everything()
            watcher.start()
            side.scheduler_started = time.monotonic()
            scheduler = start_scheduler()
        else:
            side.scheduler_started = time.monotonic()
            scheduler = start_scheduler()
            watcher.start()
            create_everything()
        wait_settled(watcher, side, len(names), [scheduler, *helpers], args.timeout)
        ours = kind == "instances"  # kubenova's side: its kinds and Events (api_requests.py)
        after = api_requests(api)
        side.requests = since(after, before, kubenova_objects) if ours else since(after, before)
        own_creates = Request("POST", GROUP if ours else "", kind)
        side.requests[own_creates] -= len(side.created)  # the benchmark's own creates
        side.peak_rss_mib, side.cpu_seconds = usage(scheduler.pid)
        for helper in helpers:
            rss, cpu = usage(helper.pid)
            side.helper_rss_mib += rss
            side.helper_cpu_seconds += cpu
    finally:
        side.stamps = watcher.stop()
        if scheduler is not None:
            scheduler.stop()


# -- kubenova ------------------------------------------------------------------------------------
def create_cloud_objects(api: client.ApiClient, work: Path) -> None:
    """The Flavor, the Image (a local file) and an unlimited Quota (-1, as in Nova): without
    it the operator would make Nova's default Quota and stop the run at 10 instances."""
    disk = work / "tiny.raw"
    disk.write_bytes(b"\0" * 4096)
    unlimited = {key: UNLIMITED for key in ("instances", "cores", "ramMiB")}
    namespace = {"metadata": {"name": NAMESPACE}}
    discard(client.CoreV1Api(api).create_namespace(namespace, _preload_content=False))
    for doc in (
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "Quota",
            "metadata": {"name": "default"},
            "spec": unlimited,
        },
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "Flavor",
            "metadata": {"name": FLAVOR},
            "spec": {
                "vcpus": int(REQUEST.vcpus),
                "ramMiB": int(REQUEST.ram_mib),
                "diskGiB": int(REQUEST.disk_gib),
            },
        },
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "Image",
            "metadata": {"name": IMAGE},
            "spec": {
                "source": str(disk),
                "diskFormat": "raw",
                "checksum": hashlib.sha256(disk.read_bytes()).hexdigest(),
            },
        },
    ):
        apply(api, NAMESPACE, doc)


def operator_process(cluster: DevCluster, work: Path, run: int) -> OperatorProcess:
    return OperatorProcess(
        cluster.kubeconfig,
        work / "operator-state",
        work / f"operator-{run}.log",
        hosts=0,
        metrics_port=0,
        extra_args=("--driver=fake", f"--image-allowed-path-prefix={work}"),
    )


def wait_image_active(api: client.ApiClient, proc: ManagedProcess, timeout: float) -> None:
    """The operator imports the image only once its caches (all Nodes) are loaded: this is also
    the wait for the operator to be ready."""
    custom = client.CustomObjectsApi(api)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.alive():
        image = custom.get_namespaced_custom_object(GROUP, VERSION, NAMESPACE, "images", IMAGE)
        phase = (image.get("status") or {}).get("phase")
        if phase == "active":
            return
        if phase == "killed":
            raise RuntimeError(f"image killed: {image['status'].get('message')}")
        time.sleep(0.2)
    raise RuntimeError(f"image not active after {timeout:.0f}s:\n{proc.log_tail()}")


def kubenova_checks(api: client.ApiClient) -> dict[str, Any]:
    """No Node over its capacity (allocatable x Nova's allocation ratios); every allocation
    belongs to an instance placed on that provider's Node and every placed instance has one."""
    custom, core = client.CustomObjectsApi(api), client.CoreV1Api(api)

    def items(response: Any) -> list[dict]:
        return json.loads(response.data)["items"]

    providers = items(
        custom.list_cluster_custom_object(
            GROUP, VERSION, "resourceproviders", _preload_content=False
        )
    )
    nodes = {
        n["metadata"]["name"]: NodeSummary.of_node(n)
        for n in items(core.list_node(label_selector=f"{HOST_LABEL}=true", _preload_content=False))
    }
    instances = items(
        custom.list_namespaced_custom_object(
            GROUP, VERSION, NAMESPACE, "instances", _preload_content=False
        )
    )
    placed = {
        i["metadata"]["uid"]: i["status"]["host"]
        for i in instances
        if (i.get("status") or {}).get("host")
    }
    held: dict[str, str] = {}
    over: list[str] = []
    for provider in providers:
        name = provider["metadata"]["name"]
        allocations = (provider.get("spec") or {}).get("allocations") or {}
        held.update(dict.fromkeys(allocations, name))
        used = sum((Resources.of_allocation(a) for a in allocations.values()), Resources())
        node = nodes.get(name)
        if node is None or not used.fits_in(
            HostState.build(node, used, AllocationRatios()).capacity
        ):
            over.append(name)
    mismatched = sorted(
        uid for uid in placed.keys() | held.keys() if placed.get(uid) != held.get(uid)
    )
    return {
        "resource_providers": len(providers),
        "allocations": len(held),
        "nodes_over_capacity": len(over),
        "over_capacity_examples": sorted(over)[:5],
        "allocations_not_matching_instances": len(mismatched),
    }


def bench_kubenova(args: argparse.Namespace, work: Path) -> Side:
    side = Side("kubenova", args.mode)
    print("kubenova: fresh control plane", flush=True)
    with DevCluster() as cluster:
        api = api_client(cluster.kubeconfig, args.threads + 4)
        try:
            install_crds(api, KINDS)
            create_nodes(api, args.nodes, args.threads)
            create_cloud_objects(api, work)
            # A first start imports the image (once its caches hold every Node).
            first = operator_process(cluster, work, 0)
            began = time.monotonic()
            first.start()
            try:
                wait_image_active(api, first, args.timeout)
            finally:
                first.stop()
            print(
                f"  operator ready (image active) with {args.nodes} nodes in "
                f"{time.monotonic() - began:.1f}s",
                flush=True,
            )
            custom = client.CustomObjectsApi(api)

            def create(name: str) -> None:
                body = {
                    "apiVersion": f"{GROUP}/{VERSION}",
                    "kind": "Instance",
                    "metadata": {"name": name},
                    "spec": {"flavor": FLAVOR, "image": IMAGE},
                }
                discard(
                    custom.create_namespaced_custom_object(
                        GROUP, VERSION, NAMESPACE, "instances", body, _preload_content=False
                    )
                )

            def start() -> ManagedProcess:
                operator = operator_process(cluster, work, 1)
                operator.start()
                return operator

            names = [f"vm-{i:05d}" for i in range(args.instances)]
            run_side(
                side, args, "instances", names, create, start, [], api, cluster.kubeconfig, work
            )
            side.checks = kubenova_checks(api)
        finally:
            api.close()
    return side


# -- kube-scheduler ------------------------------------------------------------------------------
def scheduler_configuration(kubeconfig: Path, qps: int | None) -> str:
    """A KubeSchedulerConfiguration: no leader election, the client at `qps` (and as large a
    burst), or at its defaults (50, burst 100) when None."""
    limits = f"  qps: {qps}\n  burst: {qps}\n" if qps else ""
    return (
        "apiVersion: kubescheduler.config.k8s.io/v1\n"
        "kind: KubeSchedulerConfiguration\n"
        "clientConnection:\n"
        f"  kubeconfig: {kubeconfig}\n"
        f"{limits}"
        "leaderElection:\n"
        "  leaderElect: false\n"
    )


def start_kube_scheduler(
    kubeconfig: Path, work: Path, name: str, qps: int | None, timeout: float
) -> ManagedProcess:
    """kube-scheduler with its configuration file, waited for until /readyz (which includes
    its informers' sync)."""
    port = free_port()
    configuration = work / f"{name}.yaml"
    configuration.write_text(scheduler_configuration(kubeconfig, qps))
    proc = ManagedProcess(
        "kube-scheduler",
        [
            find_tool("kube-scheduler"),
            f"--config={configuration}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            f"--secure-port={port}",
            f"--bind-address={LOOPBACK}",
        ],
        work / f"{name}.log",
    )
    proc.start()
    insecure = ssl.create_default_context()
    insecure.check_hostname, insecure.verify_mode = False, ssl.CERT_NONE  # its own self-signed cert
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.alive():
        try:
            with urllib.request.urlopen(
                f"https://{LOOPBACK}:{port}/readyz", timeout=2, context=insecure
            ) as response:
                if response.status == 200:
                    return proc
        except (OSError, urllib.error.URLError):
            pass
        time.sleep(0.1)
    tail = proc.log_tail()
    proc.stop()
    raise RuntimeError(f"kube-scheduler not ready in {timeout:.0f}s:\n{tail}")


def pod_checks(api: client.ApiClient) -> dict[str, Any]:
    """No Node holds more pods than its CPU fits (kube-scheduler does not overcommit)."""
    core = client.CoreV1Api(api)
    pods = json.loads(core.list_namespaced_pod(NAMESPACE, _preload_content=False).data)["items"]
    per_node = Counter(p["spec"].get("nodeName") for p in pods if p["spec"].get("nodeName"))
    fits = min(NODE["cpu"] // int(REQUEST.vcpus), NODE["pods"])
    over = sorted(node for node, count in per_node.items() if count > fits)
    return {
        "nodes_used": len(per_node),
        "most_pods_on_a_node": max(per_node.values(), default=0),
        "nodes_over_capacity": len(over),
        "over_capacity_examples": over[:5],
    }


def bench_kube_scheduler(args: argparse.Namespace, work: Path, qps: int | None) -> Side:
    name = "kube-scheduler" if qps else "kube-scheduler-as-shipped"
    side = Side(name, args.mode)
    print(f"{name}: fresh control plane", flush=True)
    with DevCluster() as cluster:
        api = api_client(cluster.kubeconfig, args.threads + 4)
        (work / name).mkdir()
        kwok = Kwok(cluster.kubeconfig, work / name, hold=())
        try:
            create_nodes(api, args.nodes, args.threads)
            core = client.CoreV1Api(api)
            discard(
                core.create_namespace({"metadata": {"name": NAMESPACE}}, _preload_content=False)
            )
            kwok.start()
            requests = {"cpu": str(int(REQUEST.vcpus)), "memory": f"{int(REQUEST.ram_mib)}Mi"}

            def create(pod: str) -> None:
                body = {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {"name": pod},
                    "spec": {
                        "automountServiceAccountToken": False,
                        "containers": [
                            {
                                "name": "pause",
                                "image": "registry.invalid/pause:1",
                                "resources": {"requests": requests},
                            }
                        ],
                    },
                }
                discard(core.create_namespaced_pod(NAMESPACE, body, _preload_content=False))

            def start() -> ManagedProcess:
                proc = start_kube_scheduler(cluster.kubeconfig, work, name, qps, args.timeout)
                side.ready_seconds = time.monotonic() - side.scheduler_started
                return proc

            names = [f"pod-{i:05d}" for i in range(args.instances)]
            run_side(
                side, args, "pods", names, create, start, [kwok], api, cluster.kubeconfig, work
            )
            side.checks = pod_checks(api)
        finally:
            kwok.stop()
            api.close()
    return side


# -- report --------------------------------------------------------------------------------------
ROWS = (
    ("objects created", "objects"),
    ("placed", "placed"),
    ("running", "running"),
    ("ended ERROR", "failed"),
    ("create calls/s", "creates_per_second"),
    ("start -> ready (s)", "scheduler_ready_seconds"),
    ("start -> 1st placed (s)", "start_to_first_placement_seconds"),
    ("placed/s", "placed_per_second"),
    ("running/s", "running_per_second"),
    ("create->placed p50 (s)", "placed_p50_seconds"),
    ("create->placed p99 (s)", "placed_p99_seconds"),
    ("create->running p50 (s)", "running_p50_seconds"),
    ("create->running p99 (s)", "running_p99_seconds"),
    ("scheduler peak RSS (MiB)", "scheduler_peak_rss_mib"),
    ("scheduler CPU (s)", "scheduler_cpu_seconds"),
    ("kwok peak RSS (MiB)", "kubelet_stand_in_peak_rss_mib"),
    ("kwok CPU (s)", "kubelet_stand_in_cpu_seconds"),
    ("API writes / object", "api_writes_per_object"),
    ("API reads / object", "api_reads_per_object"),
)


def ratios(ours: dict[str, Any], theirs: dict[str, Any]) -> dict[str, float]:
    """kubenova / unthrottled kube-scheduler: > 1 means kubenova is faster."""

    def ratio(key: str) -> float:
        return round(ours[key] / theirs[key], 3) if theirs[key] else float("nan")

    return {
        "placed_per_second": ratio("placed_per_second"),
        "running_per_second": ratio("running_per_second"),
    }


def report(sides: list[Side], args: argparse.Namespace) -> dict[str, Any]:
    figures = {side.name: side.figures() for side in sides}
    print()
    print(f"mode {args.mode}, {args.nodes} nodes, {args.instances} objects per side")
    print(f"{'':<26}" + "".join(f"{side.name:>28}" for side in sides))
    for label, key in ROWS:
        print(f"{label:<26}" + "".join(f"{figures[s.name][key]!s:>28}" for s in sides))
    for side in sides:
        checks = figures[side.name]["checks"]
        print(f"{side.name} checks: " + ", ".join(f"{k} {v}" for k, v in checks.items()))
        writes = [
            f"{request} {n / max(1, len(side.created)):.2f}"
            for request, n in figures[side.name]["api_requests"].items()
            if request.split()[0] in WRITES and n
        ]
        print(f"{side.name} writes per object: " + ", ".join(writes))
        for reason, times in figures[side.name]["failures"].items():
            print(f"{side.name} ERROR x{times}: {reason}")
    result: dict[str, Any] = {
        "mode": args.mode,
        "nodes": args.nodes,
        "objects": args.instances,
        "sides": figures,
    }
    if {"kubenova", "kube-scheduler"} <= figures.keys():
        result["ratios"] = ratios(figures["kubenova"], figures["kube-scheduler"])
        print(
            "ratio kubenova / unthrottled kube-scheduler: "
            f"placed/s {result['ratios']['placed_per_second']}, "
            f"running/s {result['ratios']['running_per_second']}"
        )
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=5000, help="fake compute Nodes")
    parser.add_argument("--instances", type=int, default=10000, help="instances, and as many pods")
    parser.add_argument("--mode", choices=("drain", "stream"), default="drain")
    parser.add_argument("--threads", type=int, default=16, help="threads making create calls")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds to wait per side")
    parser.add_argument(
        "--order", choices=("kubenova-first", "kube-scheduler-first"), default="kubenova-first"
    )
    parser.add_argument(
        "--as-shipped",
        action="store_true",
        help="also run kube-scheduler with its client's default limits (printed, not a ratio)",
    )
    parser.add_argument(
        "--only",
        choices=("kubenova", "kube-scheduler"),
        help="run one side alone (its figures, no ratios): for profiling one side",
    )
    parser.add_argument("--json", type=Path, help="write every figure to this file")
    args = parser.parse_args()
    ours_fit, theirs_fit = capacities(args.nodes)
    print(
        f"{args.nodes} nodes of {NODE['cpu']} cpu, {NODE['memory_gib']}Gi memory, "
        f"{NODE['disk_gib']}Gi disk, {NODE['pods']} pods; each object asks 1 cpu, 512Mi "
        f"(instances also 1Gi disk). Room: kubenova {ours_fit} instances (cpu ratio "
        f"{AllocationRatios().cpu:g}), kube-scheduler {theirs_fit} pods; placing {args.instances}",
        flush=True,
    )
    if args.instances > min(ours_fit, theirs_fit):
        print("more objects than fit on one side: raise --nodes", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so `timeout` still cleans up

    def ours(work: Path) -> Side:
        return bench_kubenova(args, work)

    def theirs(work: Path) -> Side:
        return bench_kube_scheduler(args, work, UNTHROTTLED_QPS)

    runs = [ours, theirs] if args.order == "kubenova-first" else [theirs, ours]
    if args.only:
        runs = [ours if args.only == "kubenova" else theirs]
    if args.as_shipped:
        runs.append(lambda work: bench_kube_scheduler(args, work, None))
    with tempfile.TemporaryDirectory(prefix="kubenova-bench-") as tmp:
        sides = [run(Path(tmp)) for run in runs]
    sides.sort(key=lambda side: (side.name != "kubenova", side.name))
    result = report(sides, args)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # everything was stopped on the way out
        print("interrupted", file=sys.stderr)
        sys.exit(130)
