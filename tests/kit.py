"""Helpers shared by the integration and end-to-end tests: waiting, and the operator as a
real process whose instances are all deleted through it before it stops."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from kubernetes import client

from kubenova import GROUP, VERSION, WEBHOOK_CONFIGURATION
from kubenova.admission.probe import webhook_answers  # noqa: F401  (the tests' import)
from kubenova.devcluster.cluster import free_port
from kubenova.devcluster.operator_process import OperatorProcess
from kubenova.network.datapath import Datapath


@dataclass
class Operator:
    process: OperatorProcess
    state_dir: Path
    log: Path
    metrics_port: int

    def restart(self, kill: bool = False) -> None:
        self.process.kill() if kill else self.process.stop()
        self.process.start()

    def log_tail(self) -> str:
        return self.process.log_tail(60)


def wait_for(predicate, timeout: float, what: str, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def columns(table: str, name: str | None = None) -> dict[str, str]:
    """One row of `kubectl get` output by column header (empty cells stay empty): the first,
    or the one whose NAME is `name`."""
    header, *rows = table.splitlines()
    row = rows[0] if name is None else next(r for r in rows if r.split()[0] == name)
    # a header may hold a space (HOST STATUS); kubectl puts at least 3 between columns
    starts = [
        i for i, ch in enumerate(header) if ch != " " and (i == 0 or header[i - 2 : i] == "  ")
    ]
    bounds = list(zip(starts, [*starts[1:], None], strict=True))
    return {header[a:b].strip(): row[a:b].strip() for a, b in bounds}


def node_ready(api: client.ApiClient, name: str) -> bool:
    try:
        node = client.CoreV1Api(api).read_node(name)
    except client.ApiException:
        return False
    return any(c.type == "Ready" and c.status == "True" for c in node.status.conditions or [])


def all_instances(api: client.ApiClient) -> list[dict]:
    custom = client.CustomObjectsApi(api)
    return custom.list_cluster_custom_object(GROUP, VERSION, "instances")["items"]


def image_dir_args(work: Path, image_dirs: Sequence[Path] | None = None) -> tuple[str, ...]:
    """The image import policy's allowed directories for a test operator working in `work`:
    only `image_dirs` if given, else the guest directory `make setup` builds (the operator's
    default) and pytest's base temp directory (work's parent), where the tests write image
    files."""
    if image_dirs is not None:
        return ("--no-image-guest-dir", *(f"--image-allowed-path-prefix={d}" for d in image_dirs))
    return (f"--image-allowed-path-prefix={work.parent}",)


@contextlib.contextmanager
def running_operator(
    cluster,
    api: client.ApiClient,
    work: Path,
    *args: str,
    hosts: int = 0,
    image_dirs: Sequence[Path] | None = None,
    env: dict[str, str] | None = None,
) -> Iterator[Operator]:
    """`kubenova operator` with `args`; on exit every instance is deleted (through it).
    `image_dirs`: where Image file sources may be (default: image_dir_args); `env`: the
    process's environment (default: this one's)."""
    port = free_port()
    process = OperatorProcess(
        cluster.kubeconfig,
        work / "state",
        work / "operator.log",
        hosts=hosts,
        metrics_port=port,
        extra_args=(*image_dir_args(work, image_dirs), *args),
    )
    process.start(env)
    handle = Operator(process, work / "state", work / "operator.log", port)
    try:
        yield handle
    finally:
        delete_all(api, "instances")
        try:
            wait_for(lambda: not all_instances(api), 180, "instances to be deleted")
            delete_networks(api)  # their finalizer removes what the datapath made for them
        finally:
            process.stop()
        assert_no_datapath_left(work / "state")


def all_networks(api: client.ApiClient) -> list[dict]:
    custom = client.CustomObjectsApi(api)
    return custom.list_cluster_custom_object(GROUP, VERSION, "networks")["items"]


def delete_networks(api: client.ApiClient) -> None:
    """Delete every Network and wait until they are gone (through the running operator). The
    instances are gone, so a Port still there is one a test made by hand: it goes first."""
    delete_all(api, "ports")
    delete_all(api, "networks")
    wait_for(lambda: not all_networks(api), 60, "networks to be deleted")


def delete_all(api: client.ApiClient, plural: str) -> None:
    """Ask for the deletion of every namespaced object of `plural` (finalizers may keep them
    a while: wait for them to go)."""
    custom = client.CustomObjectsApi(api)
    for obj in custom.list_cluster_custom_object(GROUP, VERSION, plural)["items"]:
        meta = obj["metadata"]
        with contextlib.suppress(client.ApiException):
            custom.delete_namespaced_custom_object(
                GROUP, VERSION, meta["namespace"], plural, meta["name"]
            )


def assert_no_datapath_left(state_dir: Path) -> None:
    """Nothing of the operator's embedded datapath (namespace, bridge, tap, dnsmasq, file) is
    left once its Networks are gone; what is found is removed, and the test fails naming it."""
    datapath = Datapath.of_operator(state_dir.resolve())
    left = asyncio.run(datapath.inventory())
    if left.empty:
        return
    removed = asyncio.run(datapath.cleanup())
    raise AssertionError(f"the datapath left {left} (now removed: {removed})")


def remove_webhooks(api: client.ApiClient) -> None:
    """kopf removes its webhooks when it stops cleanly; a crashed operator's must not make
    every later create in the session fail (failurePolicy Fail)."""
    admission = client.AdmissionregistrationV1Api(api)
    with contextlib.suppress(client.ApiException):
        admission.delete_validating_webhook_configuration(WEBHOOK_CONFIGURATION)
    with contextlib.suppress(client.ApiException):
        admission.delete_mutating_webhook_configuration(WEBHOOK_CONFIGURATION)
