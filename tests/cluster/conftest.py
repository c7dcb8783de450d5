"""The real one-node cluster (hack/cluster-up.sh: kubelet + containerd on this machine) and the
chart installed on it with its defaults (hack/chart-demo.sh, the steps hack/kind-up.sh runs on
kind), for the tests marked `cluster`. Needs root; up to ~10 min cold (the kubelet and the
images are built and cached), under a minute warm. `make cluster-down` runs at the end and must
find nothing left.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
KUBECONFIG = Path("/var/lib/kubenova-cluster/admin.kubeconfig")
NODE = "kubenova-node"
NAMESPACE = "kubenova-system"
RELEASE = "kubenova"
TENANT = "default"
#: what the chart makes outside its namespace (helm uninstall must remove them all)
CLUSTER_SCOPED_LEFTOVERS = (
    "validatingwebhookconfigurations",
    "clusterroles",
    "clusterrolebindings",
)


@dataclass
class Cluster:
    kubeconfig: Path
    up_seconds: float

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig)}

    def run(self, *argv: str, check: bool = True, timeout: float = 600, **kwargs):
        result = subprocess.run(
            argv, env=self.env, capture_output=True, text=True, timeout=timeout, **kwargs
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"{' '.join(argv)} exited {result.returncode}\n{result.stdout}\n{result.stderr}"
            )
        return result

    def kubectl(self, *args: str, **kwargs) -> subprocess.CompletedProcess:
        return self.run("kubectl", *args, **kwargs)

    def get(self, *args: str) -> dict:
        return json.loads(self.kubectl("get", *args, "-o", "json").stdout)

    def kubenova(self, *args: str, **kwargs) -> subprocess.CompletedProcess:
        return self.run(str(REPO / ".venv/bin/python"), "-m", "kubenova.cli", *args, **kwargs)


# Package scope: the cluster is down again (sysctls, iptables as they were) before the other
# tests run.
@pytest.fixture(scope="package")
def local_cluster() -> Iterator[Cluster]:
    if os.geteuid() != 0:
        pytest.skip("the local cluster needs root (containerd, kubelet, iptables, a bridge)")
    start = time.monotonic()
    up = subprocess.run(
        ["bash", str(REPO / "hack/cluster-up.sh")], capture_output=True, text=True, timeout=1800
    )
    elapsed = time.monotonic() - start
    print(f"\ncluster-up: {elapsed:.0f}s (exit {up.returncode})")
    try:
        assert up.returncode == 0, f"cluster-up failed:\n{up.stdout}\n{up.stderr[-4000:]}"
        yield Cluster(KUBECONFIG, elapsed)
    finally:
        down = subprocess.run(
            ["bash", str(REPO / "hack/cluster-down.sh")], capture_output=True, text=True
        )
        print(down.stdout)
        assert down.returncode == 0 and "LEFT" not in down.stdout, (
            f"cluster-down left something:\n{down.stdout}\n{down.stderr}"
        )


@pytest.fixture(scope="module")
def chart(local_cluster: Cluster) -> Iterator[Cluster]:
    """The chart installed with its defaults, the example instance booted."""
    version = next(
        line.split(":", 1)[1].strip().strip('"')
        for line in (REPO / "charts/kubenova/Chart.yaml").read_text().splitlines()
        if line.startswith("appVersion:")
    )
    env = {
        "KUBENOVA_KUBECONFIG": str(local_cluster.kubeconfig),
        "KUBENOVA_COMPUTE_NODE": NODE,
        "KUBENOVA_TAG": version,
        "KUBENOVA_TIMEOUT": "300s",
    }
    start = time.monotonic()
    demo = subprocess.run(
        ["bash", str(REPO / "hack/chart-demo.sh")],
        env={**local_cluster.env, **env},
        capture_output=True,
        text=True,
        timeout=900,
    )
    print(f"\nchart-demo: {time.monotonic() - start:.0f}s\n{demo.stdout}")
    try:
        assert demo.returncode == 0, f"chart-demo failed:\n{demo.stdout}\n{demo.stderr[-6000:]}"
        yield local_cluster
    finally:
        local_cluster.kubectl("-n", TENANT, "delete", "instances", "--all", "--wait=true",
                              check=False, timeout=300)  # fmt: skip
        local_cluster.run("helm", "uninstall", RELEASE, "-n", NAMESPACE, "--wait", check=False)
