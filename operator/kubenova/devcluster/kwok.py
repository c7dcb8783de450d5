"""kwok (Kubernetes WithOut Kubelet) as a child process: it stands in for the kubelet of fake Nodes.

kwok watches the Nodes annotated `kwok.x-k8s.io/node=fake` (or one named Node) and the pods bound
to them, and writes their status as a kubelet would, without running anything: a Node becomes
Ready, a pod goes Running with its Ready condition True (its containers are never started), a
deleted pod is removed. The pod stages are kwok's "fast" ones, except that pods on `hold` nodes
are left Pending (a test then writes their status itself, as the kubelet would). Used by the
pod-lifecycle tests and by bench/schedule.py's create -> running figure for pods.
"""

from __future__ import annotations

import contextlib
import json
import urllib.request
from collections.abc import Iterable
from pathlib import Path

from kubenova.devcluster.cluster import free_port
from kubenova.devcluster.process import ManagedProcess
from kubenova.tools import find_tool

ANNOTATION = "kwok.x-k8s.io/node"

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
            raise RuntimeError(f"kwok exited:\n{self.log_tail()}")
        url = f"http://127.0.0.1:{self.port}/healthz"
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1) as response:
            return response.status == 200
        return False
