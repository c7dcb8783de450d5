"""kwok (Kubernetes WithOut Kubelet) as a test fixture: it stands in for the kubelet of fake Nodes.

kwok watches the Nodes annotated `kwok.x-k8s.io/node=fake` and the pods bound to them, and
writes their status as a kubelet would, without running anything: a Node becomes Ready, a pod
goes Running with its Ready condition True (its containers are never started, so no readiness
probe runs), a deleted pod is removed. The pod stages here are kwok's "fast" ones, except that
pods on the `hold` nodes are left Pending: a test then writes their status itself, as the kubelet
would (Failed, evicted), to exercise the failure paths.

It runs as a child process on loopback (health on a free port) and is stopped at teardown; the
fixture checks that nothing is left running.
"""

from __future__ import annotations

import contextlib
import json
import time
import urllib.request
from collections.abc import Iterable, Iterator
from pathlib import Path

from kubernetes import client

from kubenova.compute.registration import HOST_LABEL
from kubenova.devcluster.cluster import free_port
from kubenova.devcluster.process import ManagedProcess
from kubenova.scheduler.host_state import ZONE_LABEL
from kubenova.tools import find_tool
from tests.kit import node_ready, wait_for
from tests.proc import wait_gone

ANNOTATION = "kwok.x-k8s.io/node"
KWOK_TEST_LABEL = "kubenova.test/kwok"

# kwok's "fast" pod stages (kustomize/stage/pod/fast in sigs.k8s.io/kwok), pod-ready narrowed to
# pods that are not on a hold node. Passing any Pod stage replaces all of kwok's defaults.
_POD_READY = """\
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: pod-ready
spec:
  resourceRef:
    apiGroup: v1
    kind: Pod
  selector:
    matchExpressions:
    - key: '.metadata.deletionTimestamp'
      operator: 'DoesNotExist'
    - key: '.status.podIP'
      operator: 'DoesNotExist'
    - key: '.spec.nodeName'
      operator: 'NotIn'
      values: HOLD_NODES
  next:
    statusTemplate: |
      {{ $now := Now }}
      {{ $m := .metadata }}
      conditions:
      - lastTransitionTime: {{ $now | Quote }}
        status: "True"
        type: Initialized
      - lastTransitionTime: {{ $now | Quote }}
        status: "True"
        type: Ready
      - lastTransitionTime: {{ $now | Quote }}
        status: "True"
        type: ContainersReady
      containerStatuses:
      {{ range .spec.containers }}
      - image: {{ .image | Quote }}
        name: {{ .name | Quote }}
        ready: true
        restartCount: 0
        state:
          running:
            startedAt: {{ $now | Quote }}
      {{ end }}
      hostIP: {{ NodeIPWith .spec.nodeName | Quote }}
      podIP: {{ PodIPWith .spec.nodeName false $m.uid $m.name $m.namespace | Quote }}
      phase: Running
      startTime: {{ $now | Quote }}
"""
_POD_DELETE = """\
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: pod-delete
spec:
  resourceRef:
    apiGroup: v1
    kind: Pod
  selector:
    matchExpressions:
    - key: '.metadata.deletionTimestamp'
      operator: 'Exists'
  next:
    finalizers:
      empty: true
    delete: true
"""


def stages(hold: Iterable[str]) -> str:
    """kwok's configuration: the pod stages, with `hold` nodes' pods left Pending."""
    ready = _POD_READY.replace("HOLD_NODES", json.dumps(sorted(hold) or [""]))
    return "---\n".join([ready, _POD_DELETE])


class Kwok(ManagedProcess):
    """`node`: manage that one Node only (a kubelet of its own, which a test can stop), else
    every Node annotated for kwok. `lease_seconds`: keep the managed Nodes' Leases in
    kube-node-lease renewed (a kubelet's heartbeat, about every quarter of it), else none."""

    def __init__(
        self,
        kubeconfig: Path,
        work: Path,
        hold: Iterable[str] = (),
        node: str | None = None,
        lease_seconds: int | None = None,
    ) -> None:
        config = work / "kwok.yaml"
        config.write_text(stages(hold))
        self.port = free_port()
        manage = (
            [f"--manage-single-node={node}"]
            if node
            else [
                "--manage-all-nodes=false",
                f"--manage-nodes-with-annotation-selector={ANNOTATION}=fake",
            ]
        )
        super().__init__(
            "kwok",
            [
                find_tool("kwok"),
                f"--kubeconfig={kubeconfig}",
                f"--config={config}",
                *manage,
                *([f"--node-lease-duration-seconds={lease_seconds}"] if lease_seconds else []),
                f"--server-address=127.0.0.1:{self.port}",
                "--cidr=10.99.0.1/16",
                "--node-ip=127.0.0.1",
            ],
            work / "kwok.log",
        )

    def healthy(self) -> bool:
        if not self.alive():
            raise AssertionError(f"kwok exited:\n{self.log_tail()}")
        url = f"http://127.0.0.1:{self.port}/healthz"
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1) as response:
            return response.status == 200
        return False


@contextlib.contextmanager
def running_kwok(
    kubeconfig: Path, work: Path, hold: Iterable[str] = (), **options
) -> Iterator[Kwok]:
    """kwok against the test apiserver (`options`: Kwok's node, lease_seconds); at exit it is
    stopped and must be gone."""
    kwok = Kwok(kubeconfig, work, hold, **options)
    kwok.start()
    try:
        wait_for(kwok.healthy, 60, "kwok to serve /healthz")
        yield kwok
    finally:
        pid = kwok.pid
        kwok.stop()
        assert pid is None or wait_gone([pid]) == [], "kwok is still running"


def kwok_node(
    api: client.ApiClient,
    name: str,
    zone: str,
    cpu: str = "8",
    memory: str = "16Gi",
    extra: dict[str, str] | None = None,
    **labels: str,
) -> str:
    """A compute Node kwok manages, with its capacity (`extra` adds resources, e.g. a device
    plugin's); waits until kwok has made it Ready."""
    resources = {"cpu": cpu, "memory": memory, "ephemeral-storage": "100Gi", "pods": "110"}
    resources.update(extra or {})
    core = client.CoreV1Api(api)
    core.create_node(
        {
            "metadata": {
                "name": name,
                "annotations": {ANNOTATION: "fake", "node.alpha.kubernetes.io/ttl": "0"},
                "labels": {
                    HOST_LABEL: "true",
                    KWOK_TEST_LABEL: "true",
                    ZONE_LABEL: zone,
                    "kubernetes.io/arch": "amd64",
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/hostname": name,
                    "type": "kwok",
                    **labels,
                },
            },
            # A Node's status may be set at creation: kwok keeps this capacity.
            "status": {"capacity": resources, "allocatable": resources},
        }
    )
    wait_for(lambda: node_ready(api, name), 60, f"kwok to make {name} Ready")
    return name


def delete_kwok_nodes(api: client.ApiClient) -> None:
    client.CoreV1Api(api).delete_collection_node(label_selector=f"{KWOK_TEST_LABEL}=true")


def wait_pod(core: client.CoreV1Api, namespace: str, selector: str, timeout: float = 60):
    """The one pod matching `selector` once it exists."""

    def found():
        pods = core.list_namespaced_pod(namespace, label_selector=selector).items
        return pods[0] if len(pods) == 1 else None

    return wait_for(found, timeout, f"a pod {selector} in {namespace}")


def settle(seconds: float) -> None:
    """Give the operator time to react (or to show that it does not)."""
    time.sleep(seconds)
