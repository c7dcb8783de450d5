"""Boot latency: kubenova (apply -> Ready) against the same QEMU command line run by hand.

Boots the example image N times through kubenova (real control plane, operator process, one
embedded host) and N times with the argv the QEMU driver builds, run directly with the same
accelerator, interleaved so both see the same machine load. Prints each run, the medians and
their ratio.

    .venv/bin/python bench/boot.py [-n 5]

kubenova's figure is what a user waits: from the create call to seeing the condition Ready True
(the guest showed it is up: here by announcing its boot on the serial console); the time to
vmState ACTIVE (the VM runs) is printed beside it. The direct
figure is from exec of qemu to the same announcement; its overlay and seed are made beforehand,
so the ratio shows everything kubenova adds: scheduling, claims, status writes, image cache,
overlay and seed creation, watch latency.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from kubernetes import client, config

from kubenova import GROUP, VERSION
from kubenova.devcluster import DevCluster
from kubenova.devcluster.operator_process import OperatorProcess
from kubenova.embedded import GUEST, apply, example_objects
from kubenova.kube.crds import install_crds
from kubenova.metadata.nocloud import build_seed
from kubenova.models.v1alpha1 import KINDS
from kubenova.tools import find_tool
from kubenova.virt.driver import GuestMetadata, SpawnRequest
from kubenova.virt.qemu.accel import probe_accelerator
from kubenova.virt.qemu.command import build_argv
from kubenova.virt.qemu.console import parse_boot_line, read_log
from kubenova.virt.qemu.overlay import create_overlay
from kubenova.virt.qemu.paths import InstancePaths
from kubenova.virt.qemu.process import pid_from_file, terminate

NAMESPACE = "default"
FLAVOR = {"vcpus": 1, "ram_mib": 256, "disk_gib": 1}  # examples/flavor.yaml


def ready(status: dict) -> bool:
    conditions = status.get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def boot_through_kubenova(
    custom: client.CustomObjectsApi, name: str, timeout: float
) -> tuple[float, float]:
    """(create -> ACTIVE, create -> Ready) in seconds; the instance is deleted afterwards."""
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Instance",
        "metadata": {"name": name},
        "spec": {"flavor": "m1.tiny", "image": "busybox"},
    }
    start = time.monotonic()
    active: float | None = None
    custom.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, "instances", body)
    while time.monotonic() - start < timeout:
        obj = custom.get_namespaced_custom_object(GROUP, VERSION, NAMESPACE, "instances", name)
        status = obj.get("status") or {}
        state = status.get("vmState")
        if state == "ACTIVE" and active is None:
            active = time.monotonic() - start
        if state == "ACTIVE" and ready(status):
            elapsed = active, time.monotonic() - start
            break
        if state == "ERROR":
            raise RuntimeError(f"{name}: {obj['status'].get('fault')}")
        time.sleep(0.02)
    else:
        raise TimeoutError(name)
    custom.delete_namespaced_custom_object(GROUP, VERSION, NAMESPACE, "instances", name)
    while True:
        try:
            custom.get_namespaced_custom_object(GROUP, VERSION, NAMESPACE, "instances", name)
        except client.ApiException as err:
            if err.status == 404:
                return elapsed
            raise
        time.sleep(0.1)


async def boot_directly(work: Path, accel: str) -> float:
    instance_id = str(uuid.uuid4())
    paths = InstancePaths(work / instance_id)
    paths.root.mkdir(parents=True)
    request = SpawnRequest(
        instance_id=instance_id,
        name="bench/direct",
        vcpus=FLAVOR["vcpus"],
        ram_mib=FLAVOR["ram_mib"],
        disk_gib=FLAVOR["disk_gib"],
        image_path=GUEST.resolve(),
        image_format="qcow2",
        metadata=GuestMetadata(instance_id=instance_id, hostname="direct"),
    )
    qemu = find_tool("qemu-system-x86_64")
    await create_overlay(find_tool("qemu-img"), request.image_path, "qcow2", paths.disk, 1)
    build_seed(request.metadata, paths.seed)
    argv = build_argv(request, paths, accel, qemu)
    start = time.monotonic()
    qemu_proc = await asyncio.create_subprocess_exec(
        *argv, cwd=paths.root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        if await qemu_proc.wait() != 0:
            raise RuntimeError("qemu failed to start")
        while not parse_boot_line(read_log(paths.console)):  # noqa: ASYNC110 (a file: no event)
            await asyncio.sleep(0.02)
        return time.monotonic() - start
    finally:
        pid = pid_from_file(paths.pidfile, instance_id)
        if pid is not None:
            await terminate(pid, instance_id)
        shutil.rmtree(paths.root, ignore_errors=True)


async def direct_with_timeout(work: Path, accel: str, seconds: float) -> float:
    async with asyncio.timeout(seconds):
        return await boot_directly(work, accel)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=5, help="boots of each kind")
    parser.add_argument("--timeout", type=float, default=180)
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    args = parser.parse_args()
    if not GUEST.exists():
        print(f"{GUEST} missing: run `make setup`", file=sys.stderr)
        return 2
    accel = probe_accelerator(find_tool("qemu-system-x86_64"))
    ours: list[float] = []
    active: list[float] = []
    direct: list[float] = []
    with tempfile.TemporaryDirectory(prefix="kubenova-bench-") as tmp, DevCluster() as cluster:
        work = Path(tmp)
        api = config.new_client_from_config(str(cluster.kubeconfig))
        install_crds(api, KINDS)
        operator = OperatorProcess(cluster.kubeconfig, work / "state", work / "operator.log")
        operator.start()
        try:
            for doc in example_objects(GUEST):
                if doc["kind"] != "Instance":
                    apply(api, NAMESPACE, doc)
            custom = client.CustomObjectsApi(api)
            boot_through_kubenova(custom, "warm-up", args.timeout)  # image import, KVM probe
            print(f"accelerator: {accel}; {args.n} boots each, interleaved")
            for i in range(args.n):
                to_active, to_ready = boot_through_kubenova(custom, f"bench-{i}", args.timeout)
                active.append(to_active)
                ours.append(to_ready)
                direct.append(
                    asyncio.run(direct_with_timeout(work / "direct", accel, args.timeout))
                )
                print(
                    f"  run {i + 1}: kubenova Ready {ours[-1]:6.2f}s (ACTIVE {active[-1]:5.2f}s)"
                    f"   direct qemu {direct[-1]:6.2f}s",
                    flush=True,
                )
        finally:
            operator.stop()
            api.close()
    ours_median, direct_median = statistics.median(ours), statistics.median(direct)
    print(
        f"median create->Ready: kubenova {ours_median:.2f}s (ACTIVE "
        f"{statistics.median(active):.2f}s), direct qemu exec->booted {direct_median:.2f}s"
    )
    print(f"ratio kubenova / direct: {ours_median / direct_median:.2f}")
    if args.json:
        figures = {"accelerator": accel, "ready": ours, "active": active, "direct": direct}
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
