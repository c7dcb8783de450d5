"""Reach an in-cluster operator's console endpoint through the API: a port-forward the CLI does
itself (what `kubectl port-forward` does), so `kubenova console` needs no network path to the
pod, only the kubeconfig and RBAC `create pods/portforward` in the operator's namespace.

The console endpoint still authenticates and authorizes the user itself (console/server.py):
the tunnel only carries the TLS connection. The operator's console CA, when it publishes one
(ConfigMap CA_CONFIGMAP in its namespace), is read through the API too, so a bearer token is
sent only to a verified endpoint.

A local listener on 127.0.0.1 (an ephemeral port) gives each TCP connection of ConsoleClient
its own port-forward stream to the operator pod that serves the console: with leader election
only the active replica does, so the Lease holder's pod comes first.
"""

from __future__ import annotations

import contextlib
import socket
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

#: the operator pods (the chart's selector label) and their console port's name
OPERATOR_SELECTOR = "app.kubernetes.io/name=kubenova"
CONSOLE_PORT_NAME = "console"
#: where the operator publishes its console CA (key ca.crt), in its own namespace
CA_CONFIGMAP = "kubenova-console-ca"


class ForwardError(Exception):
    pass


def leaders(coordination: Any, namespace: str) -> set[str]:
    """The holders of the Leases in `namespace` (leader election: only the active replica serves
    the console); empty when they cannot be read."""
    from kubernetes.client.exceptions import ApiException

    try:
        leases = coordination.list_namespaced_lease(namespace).items
    except ApiException:
        return set()
    return {lease.spec.holder_identity for lease in leases if lease.spec.holder_identity}


def console_pods(
    core: Any, namespace: str, holders: set[str] = frozenset()
) -> list[tuple[str, int]]:
    """(pod name, console port) of the Running operator pods in `namespace`: the Lease holder
    first (its identity starts with its pod's name), then Ready ones."""
    pods = core.list_namespaced_pod(namespace, label_selector=OPERATOR_SELECTOR).items
    found: list[tuple[bool, bool, str, int]] = []
    for pod in pods:
        if (pod.status.phase or "") != "Running" or pod.metadata.deletion_timestamp:
            continue
        ready = any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])
        for container in pod.spec.containers:
            for port in container.ports or []:
                if port.name == CONSOLE_PORT_NAME:
                    name = pod.metadata.name
                    leads = any(h == name or h.startswith(f"{name}_") for h in holders)
                    found.append((not leads, not ready, name, port.container_port))
    return [(name, port) for _, _, name, port in sorted(found)]


def published_ca(core: Any, namespace: str) -> str | None:
    """The console CA the operator published, or None (not published, or not readable)."""
    from kubernetes.client.exceptions import ApiException

    try:
        data = core.read_namespaced_config_map(CA_CONFIGMAP, namespace).data or {}
    except ApiException as err:
        if err.status in (403, 404):
            return None
        raise
    return data.get("ca.crt") or None


def _pump(a: socket.socket, b: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while chunk := a.recv(65536):
            b.sendall(chunk)
    with contextlib.suppress(OSError):
        b.shutdown(socket.SHUT_WR)


class PortForward:
    """A listener on 127.0.0.1 whose every connection is forwarded to the first of `pods` (name,
    port) that accepts it, each through its own API port-forward stream."""

    def __init__(self, core: Any, namespace: str, pods: list[tuple[str, int]]) -> None:
        if not pods:
            raise ForwardError(
                f"no running kubenova operator pod with a {CONSOLE_PORT_NAME!r} port in namespace "
                f"{namespace} (is the chart's console.enabled on?)"
            )
        self.core, self.namespace = core, namespace
        self.pod = pods[0]  # the Lease holder's, else a Ready one (console_pods' order)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self._thread = threading.Thread(target=self._accept, daemon=True, name="port-forward")
        self._thread.start()

    def _connect(self) -> socket.socket:
        from kubernetes.stream import portforward

        name, port = self.pod
        try:
            forward = portforward(
                self.core.connect_get_namespaced_pod_portforward,
                name,
                self.namespace,
                ports=str(port),
            )
        except Exception as err:
            raise ForwardError(f"port-forward to pod {self.namespace}/{name}: {err}") from None
        remote = forward.socket(port)
        remote.setblocking(True)
        return remote

    def _accept(self) -> None:
        while True:
            try:
                local, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(local,), daemon=True).start()

    def _serve(self, local: socket.socket) -> None:
        try:
            remote = self._connect()
        except ForwardError as err:
            print(f"kubenova console: {err}", file=sys.stderr)
            local.close()
            return
        back = threading.Thread(target=_pump, args=(remote, local), daemon=True)
        back.start()
        _pump(local, remote)
        back.join(timeout=30)
        for s in (local, remote):
            with contextlib.suppress(OSError):
                s.close()

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.listener.close()


@contextlib.contextmanager
def forwarded_console(api: Any, namespace: str) -> Iterator[tuple[str, Path | None]]:
    """(URL, CA file or None) of the operator's console in `namespace`, reached through the API."""
    from kubernetes import client

    core = client.CoreV1Api(api)
    holders = leaders(client.CoordinationV1Api(api), namespace)
    forward = PortForward(core, namespace, console_pods(core, namespace, holders))
    ca = published_ca(core, namespace)
    with tempfile.TemporaryDirectory(prefix="kubenova-console-") as tmp:
        ca_file = None
        if ca:
            ca_file = Path(tmp) / "ca.crt"
            ca_file.write_text(ca)
        try:
            yield forward.url, ca_file
        finally:
            forward.close()
