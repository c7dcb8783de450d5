"""Placement throughput: kubenova's scheduler against kube-scheduler, same control plane, same run.

One etcd + kube-apiserver (DevCluster) gets N fake compute Nodes (no kubelet, no VMs). Then:

1. kubenova: the operator runs as a process with the fake driver (every Node is a host) and M
   Instances of a 1 vCPU / 512 MiB / 1 GiB flavor are created from several threads. An instance
   counts as placed when its status.host is set: Nova's FilterScheduler chose the host and the
   claim on its ResourceProvider was written. The operator is then stopped, so it does not
   compete for the CPU with what follows.
2. kube-scheduler (the real binary, default configuration) and M Pods requesting 1 CPU /
   512 MiB, created the same way. A pod counts as placed when its spec.nodeName is set (bound).
   As shipped, its API client is limited to 50 requests/s (bursts of 100), one per binding:
   past the burst that caps its rate; --kube-api-qps lifts the limit to show the scheduler's own.

Both sides are measured the same way, from this process: the clock just before each create call
to the first watch event that shows the binding. Reported per side: placements per second
(M / (last binding seen - first create call)), p50/p99 of create -> binding, failures, and the
scheduler process's peak RSS and CPU time. The Nodes are sized so that every object fits on
both sides (kube-scheduler does not overcommit; kubenova's default CPU allocation ratio is 4).

    .venv/bin/python bench/schedule.py [--nodes 5000] [--instances 5000]
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
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client, config, watch

from kubenova import GROUP, VERSION
from kubenova.compute.registration import HOST_LABEL
from kubenova.devcluster import DevCluster
from kubenova.devcluster.cluster import LOOPBACK, free_port
from kubenova.devcluster.operator_process import OperatorProcess
from kubenova.devcluster.process import ManagedProcess
from kubenova.embedded import apply
from kubenova.kube.crds import install_crds
from kubenova.models.v1alpha1 import KINDS
from kubenova.scheduler.host_state import ZONE_LABEL, AllocationRatios, HostState, NodeSummary
from kubenova.scheduler.resources import Resources
from kubenova.tools import find_tool

NAMESPACE = "default"
POD_NAMESPACE = "bench-pods"
FLAVOR = "bench-tiny"
IMAGE = "bench-tiny"
REQUEST = Resources(vcpus=1, ram_mib=512, disk_gib=1)
NODE = {"cpu": 8, "memory_gib": 32, "disk_gib": 200, "pods": 110}


@dataclass
class Phase:
    """What one side did: when each object was created, when it was first seen placed."""

    name: str
    created: dict[str, float] = field(default_factory=dict)
    placed: dict[str, float] = field(default_factory=dict)
    where: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    create_seconds: float = 0.0
    peak_rss_mib: float = 0.0
    cpu_seconds: float = 0.0

    def latencies(self) -> list[float]:
        return sorted(self.placed[n] - self.created[n] for n in self.placed if n in self.created)

    def per_second(self) -> float:
        if not self.placed or not self.created:
            return 0.0
        return len(self.placed) / (max(self.placed.values()) - min(self.created.values()))

    def percentile(self, q: float) -> float:
        """Nearest-rank percentile of create -> placed, in seconds."""
        values = self.latencies()
        if not values:
            return float("nan")
        return values[min(len(values) - 1, max(0, round(q / 100 * len(values)) - 1))]


class FirstSight(threading.Thread):
    """Watches one collection and stamps each object the first time it is seen placed.

    The watch is restarted every minute from the last resourceVersion (so the thread can be
    stopped promptly); events are parsed as plain JSON, never into client models, so watching
    costs this process little, and the same on both sides.
    """

    def __init__(
        self,
        phase: Phase,
        expected: int,
        list_call: Callable[..., Any],
        args: Sequence[str],
        placed_on: Callable[[dict], str | None],
        failure: Callable[[dict], str | None],
    ) -> None:
        super().__init__(name=f"watch-{phase.name}", daemon=True)
        self.phase, self.expected = phase, expected
        self.list_call, self.args = list_call, args
        self.placed_on, self.failure = placed_on, failure
        self.done = threading.Event()
        self.error: BaseException | None = None
        self._stopping = threading.Event()
        self._watch: watch.Watch | None = None

    def run(self) -> None:
        version: str | None = None
        while not self._stopping.is_set():
            self._watch = watch.Watch()
            kwargs: dict[str, Any] = {"timeout_seconds": 60, "deserialize": False}
            if version:
                kwargs["resource_version"] = version
            try:
                for event in self._watch.stream(self.list_call, *self.args, **kwargs):
                    obj = event["object"]
                    version = obj["metadata"]["resourceVersion"]
                    self._observe(obj, time.monotonic())
            except Exception as err:  # stop() shuts the socket; or 410 Gone: list afresh
                if self._stopping.is_set():
                    return
                self.error, version = err, None
                time.sleep(0.5)

    def _observe(self, obj: dict, now: float) -> None:
        phase, name = self.phase, obj["metadata"]["name"]
        if name in phase.placed:
            return
        host = self.placed_on(obj)
        if host:
            phase.placed[name], phase.where[name] = now, host
            phase.failed.pop(name, None)
        elif (reason := self.failure(obj)) is not None:
            phase.failed[name] = reason
        if len(phase.placed) + len(phase.failed) >= self.expected:
            self.done.set()

    def stop(self) -> None:
        self._stopping.set()
        if self._watch is not None:
            self._watch.stop()
        if self.ident is not None:  # started
            self.join(timeout=10)


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


def create_node(core: client.CoreV1Api, name: str) -> None:
    """A Ready compute Node as tests/integration/test_scheduler.py's Cloud.node makes one."""
    labels = {
        HOST_LABEL: "true",
        ZONE_LABEL: "nova",
        "kubernetes.io/arch": "amd64",
        "kubernetes.io/hostname": name,
    }
    discard(
        core.create_node({"metadata": {"name": name, "labels": labels}}, _preload_content=False)
    )
    ready = {"type": "Ready", "status": "True", "reason": "Bench", "message": "fake node"}
    status = {"capacity": node_resources(), "allocatable": node_resources(), "conditions": [ready]}
    discard(core.patch_node_status(name, {"status": status}, _preload_content=False))


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


def usage(pid: int) -> tuple[float, float]:
    """Peak RSS (VmHWM, MiB) and CPU seconds (user + system) of a running process."""
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    hwm_kib = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return hwm_kib / 1024, (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")


def wait_placed(sight: FirstSight, phase: Phase, proc: ManagedProcess, timeout: float) -> None:
    """Wait for every object to be placed or failed, printing progress; give up at `timeout`
    (the figures then cover what was placed) or if the scheduler process dies."""
    deadline = time.monotonic() + timeout
    while not sight.done.wait(10):
        print(
            f"  {phase.name}: {len(phase.placed)}/{sight.expected} placed, "
            f"{len(phase.failed)} failed"
            + (f" (watch restarted after: {sight.error!r})" if sight.error else ""),
            flush=True,
        )
        sight.error = None
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited:\n{proc.log_tail()}")
        if time.monotonic() > deadline:
            print(f"  {phase.name}: gave up after {timeout:.0f}s", flush=True)
            return


# -- kubenova ------------------------------------------------------------------------------------
def create_flavor_and_image(api: client.ApiClient, work: Path) -> None:
    disk = work / "tiny.raw"
    disk.write_bytes(b"\0" * 4096)
    for doc in (
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


def wait_image_active(
    custom: client.CustomObjectsApi, proc: ManagedProcess, timeout: float
) -> None:
    """The operator imports the image only once its caches (all Nodes) are loaded: this is also
    the wait for the operator to be ready."""
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


def instance_failure(obj: dict) -> str | None:
    status = obj.get("status") or {}
    if status.get("vmState") != "ERROR":
        return None
    return str((status.get("fault") or {}).get("message") or "ERROR")


def over_capacity(api: client.ApiClient) -> tuple[int, int, list[str]]:
    """Providers, allocations, and the Nodes whose ResourceProvider holds more than the Node's
    allocatable times Nova's allocation ratios."""
    custom, core = client.CustomObjectsApi(api), client.CoreV1Api(api)
    providers = custom.list_cluster_custom_object(GROUP, VERSION, "resourceproviders")["items"]
    response = core.list_node(label_selector=f"{HOST_LABEL}=true", _preload_content=False)
    nodes = {
        n["metadata"]["name"]: NodeSummary.of_node(n) for n in json.loads(response.data)["items"]
    }
    allocations, over = 0, []
    for provider in providers:
        held = (provider.get("spec") or {}).get("allocations") or {}
        allocations += len(held)
        used = sum((Resources.of_allocation(a) for a in held.values()), Resources())
        node = nodes.get(provider["metadata"]["name"])
        if node is None or not used.fits_in(
            HostState.build(node, used, AllocationRatios()).capacity
        ):
            over.append(provider["metadata"]["name"])
    return len(providers), allocations, over


def bench_kubenova(
    api: client.ApiClient, cluster: DevCluster, work: Path, args: argparse.Namespace
) -> Phase:
    count, timeout = args.instances, args.timeout
    custom = client.CustomObjectsApi(api)
    phase = Phase("kubenova")
    create_flavor_and_image(api, work)  # before the operator: its first listing has the flavor
    operator = OperatorProcess(
        cluster.kubeconfig,
        work / "operator-state",
        work / "operator.log",
        hosts=0,
        metrics_port=0,
        extra_args=("--driver=fake", f"--image-allowed-path-prefix={work}"),
    )
    started = time.monotonic()
    operator.start()
    sight = FirstSight(
        phase,
        count,
        custom.list_namespaced_custom_object,
        (GROUP, VERSION, NAMESPACE, "instances"),
        lambda obj: (obj.get("status") or {}).get("host"),
        instance_failure,
    )
    try:
        wait_image_active(custom, operator, timeout)
        print(
            f"operator (pid {operator.pid}) ready, image active, in "
            f"{time.monotonic() - started:.1f}s",
            flush=True,
        )
        sight.start()

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

        begin = time.monotonic()
        phase.created = create_all((f"vm-{i:05d}" for i in range(count)), create, args.threads)
        phase.create_seconds = time.monotonic() - begin
        print(f"created {count} instances in {phase.create_seconds:.1f}s", flush=True)
        wait_placed(sight, phase, operator, timeout)
        if operator.pid is not None:
            phase.peak_rss_mib, phase.cpu_seconds = usage(operator.pid)
    finally:
        sight.stop()
        operator.stop()
    providers, allocations, over = over_capacity(api)
    verdict = "OK" if not over else f"OVER CAPACITY: {', '.join(sorted(over)[:10])}"
    print(
        f"capacity check: {providers} resource providers, {allocations} allocations, "
        f"{len(over)} nodes over capacity -> {verdict}",
        flush=True,
    )
    return phase


# -- kube-scheduler ------------------------------------------------------------------------------
def start_kube_scheduler(
    kubeconfig: Path, log: Path, timeout: float, qps: float | None
) -> ManagedProcess:
    """kube-scheduler as it ships (unless `qps` lifts its client's rate limit, 50/s with bursts
    of 100 by default), waited for until /readyz (which includes its informer sync)."""
    port = free_port()
    limits = [f"--kube-api-qps={qps:g}", f"--kube-api-burst={int(2 * qps)}"] if qps else []
    proc = ManagedProcess(
        "kube-scheduler",
        [
            find_tool("kube-scheduler"),
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            "--leader-elect=false",
            f"--secure-port={port}",
            f"--bind-address={LOOPBACK}",
            *limits,
        ],
        log,
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
        time.sleep(0.2)
    tail = proc.log_tail()
    proc.stop()
    raise RuntimeError(f"kube-scheduler not ready in {timeout:.0f}s:\n{tail}")


def pod_failure(obj: dict) -> str | None:
    return None  # unschedulable pods stay pending and are retried: counted as unbound at the end


def bench_kube_scheduler(
    api: client.ApiClient,
    cluster: DevCluster,
    work: Path,
    args: argparse.Namespace,
) -> Phase:
    count = args.instances
    core = client.CoreV1Api(api)
    phase = Phase("kube-scheduler")
    discard(core.create_namespace({"metadata": {"name": POD_NAMESPACE}}, _preload_content=False))
    started = time.monotonic()
    scheduler = start_kube_scheduler(
        cluster.kubeconfig, work / "kube-scheduler.log", args.timeout, args.kube_api_qps
    )
    limit = f"{args.kube_api_qps:g}/s" if args.kube_api_qps else "50/s, burst 100 (its default)"
    print(
        f"kube-scheduler (pid {scheduler.pid}, API rate limit {limit}) ready in "
        f"{time.monotonic() - started:.1f}s",
        flush=True,
    )
    sight = FirstSight(
        phase,
        count,
        core.list_namespaced_pod,
        (POD_NAMESPACE,),
        lambda obj: (obj.get("spec") or {}).get("nodeName"),
        pod_failure,
    )
    try:
        sight.start()
        requests = {"cpu": str(int(REQUEST.vcpus)), "memory": f"{int(REQUEST.ram_mib)}Mi"}

        def create(name: str) -> None:
            body = {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": name},
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
            discard(core.create_namespaced_pod(POD_NAMESPACE, body, _preload_content=False))

        begin = time.monotonic()
        phase.created = create_all((f"pod-{i:05d}" for i in range(count)), create, args.threads)
        phase.create_seconds = time.monotonic() - begin
        print(f"created {count} pods in {phase.create_seconds:.1f}s", flush=True)
        wait_placed(sight, phase, scheduler, args.timeout)
        if scheduler.pid is not None:
            phase.peak_rss_mib, phase.cpu_seconds = usage(scheduler.pid)
    finally:
        sight.stop()
        scheduler.stop()
    busiest = max(Counter(phase.where.values()).values(), default=0)
    fits = min(NODE["cpu"] // int(REQUEST.vcpus), NODE["pods"])
    verdict = "OK" if busiest <= fits else "OVER CAPACITY"
    print(f"capacity check: at most {busiest} pods on a node (room for {fits}) -> {verdict}")
    return phase


# -- report --------------------------------------------------------------------------------------
def summary(ours: Phase, theirs: Phase, count: int) -> None:
    rows: list[tuple[str, Callable[[Phase], str]]] = [
        ("objects created", lambda p: str(len(p.created))),
        ("placed", lambda p: str(len(p.placed))),
        ("ended ERROR (NoValidHost)", lambda p: str(len(p.failed))),
        ("never placed / unbound", lambda p: str(count - len(p.placed))),
        ("create calls took (s)", lambda p: f"{p.create_seconds:.1f}"),
        ("placements per second", lambda p: f"{p.per_second():.1f}"),
        ("create -> placed p50 (s)", lambda p: f"{p.percentile(50):.3f}"),
        ("create -> placed p99 (s)", lambda p: f"{p.percentile(99):.3f}"),
        ("scheduler peak RSS (MiB)", lambda p: f"{p.peak_rss_mib:.0f}"),
        ("scheduler CPU time (s)", lambda p: f"{p.cpu_seconds:.1f}"),
    ]
    print()
    print(f"{'':<26}{'kubenova':>14}{'kube-scheduler':>16}")
    for label, cell in rows:
        print(f"{label:<26}{cell(ours):>14}{cell(theirs):>16}")
    if theirs.per_second():
        ratio = ours.per_second() / theirs.per_second()
        print(f"ratio kubenova placements/s / kube-scheduler pods/s: {ratio:.3f}")
    for reason, times in Counter(ours.failed.values()).most_common(3):
        print(f"kubenova ERROR x{times}: {reason}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=5000, help="fake compute Nodes")
    parser.add_argument("--instances", type=int, default=5000, help="instances, and as many pods")
    parser.add_argument("--threads", type=int, default=16, help="threads making create calls")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds to wait per phase")
    parser.add_argument(
        "--kube-api-qps",
        type=float,
        help="lift kube-scheduler's API rate limit to this (burst twice it); default: as shipped",
    )
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
    with tempfile.TemporaryDirectory(prefix="kubenova-bench-") as tmp, DevCluster() as cluster:
        work = Path(tmp)
        api = api_client(cluster.kubeconfig, args.threads + 4)
        try:
            install_crds(api, KINDS)
            core = client.CoreV1Api(api)
            begin = time.monotonic()
            create_all(
                (f"node-{i:05d}" for i in range(args.nodes)),
                lambda name: create_node(core, name),
                args.threads,
            )
            print(f"setup: {args.nodes} nodes in {time.monotonic() - begin:.1f}s", flush=True)
            ours = bench_kubenova(api, cluster, work, args)
            theirs = bench_kube_scheduler(api, cluster, work, args)
        finally:
            api.close()
    summary(ours, theirs, args.instances)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # everything was stopped on the way out
        print("interrupted", file=sys.stderr)
        sys.exit(130)
