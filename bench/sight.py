"""The benchmark's watcher: a process of its own that stamps when each object is first seen placed
and first seen running, so parsing the watch stream costs neither the scheduler under test nor the
process making the create calls any CPU time (on 2 cores, that matters).

Stamps are `time.monotonic()`: CLOCK_MONOTONIC is one clock for every process on the machine, so
they compare with the create-call stamps taken in the parent. Events are parsed as plain JSON,
never into client models, the same on both sides.
"""

from __future__ import annotations

import json
import multiprocessing
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client, config, watch

from kubenova import GROUP, VERSION


@dataclass
class Stamps:
    """When each object (by name) was first seen placed and running, where, and what failed."""

    placed: dict[str, float] = field(default_factory=dict)
    running: dict[str, float] = field(default_factory=dict)
    where: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)

    def observe(self, kind: str, obj: dict, now: float) -> None:
        name = obj["metadata"]["name"]
        host, running, failure = READERS[kind](obj)
        if host and name not in self.placed:
            self.placed[name], self.where[name] = now, host
        if running and name not in self.running:
            self.running[name] = now
            self.failed.pop(name, None)
        elif failure is not None and name not in self.running:
            self.failed[name] = failure

    def settled(self) -> int:
        """Objects that reached an end: running, or failed for good."""
        return len(self.running) + len(self.failed)


def _instance(obj: dict) -> tuple[str | None, bool, str | None]:
    status = obj.get("status") or {}
    vm_state = status.get("vmState")
    failure = None
    if vm_state == "ERROR":
        failure = str((status.get("fault") or {}).get("message") or "ERROR")
    return status.get("host"), vm_state == "ACTIVE", failure


def _pod(obj: dict) -> tuple[str | None, bool, str | None]:
    # An unschedulable pod stays Pending and is retried: it never fails, it stays unplaced.
    running = (obj.get("status") or {}).get("phase") == "Running"
    return (obj.get("spec") or {}).get("nodeName"), running, None


READERS = {"instances": _instance, "pods": _pod}


def _list_call(api: client.ApiClient, kind: str, namespace: str):
    if kind == "pods":
        core = client.CoreV1Api(api)
        return core.list_namespaced_pod, (namespace,)
    custom = client.CustomObjectsApi(api)
    return custom.list_namespaced_custom_object, (GROUP, VERSION, namespace, kind)


def watch_until_settled(
    kubeconfig: str, kind: str, namespace: str, expected: int, out: str, ready, counts
) -> None:
    """List, signal `ready`, then watch from the list's resourceVersion until `expected`
    objects settled or SIGTERM; write the stamps to `out` as JSON either way."""
    stamps = Stamps()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    configuration = client.Configuration()
    config.load_kube_config(kubeconfig, client_configuration=configuration)
    api = client.ApiClient(configuration)
    call, args = _list_call(api, kind, namespace)
    try:
        version = _list(stamps, kind, call, args)
        ready.set()
        while stamps.settled() < expected:
            try:
                for event in watch.Watch().stream(
                    call, *args, resource_version=version, timeout_seconds=60, deserialize=False
                ):
                    obj: dict[str, Any] = event["object"]
                    if event["type"] == "ERROR":  # 410 Gone: list afresh
                        raise RuntimeError(obj.get("message"))
                    version = obj["metadata"]["resourceVersion"]
                    stamps.observe(kind, obj, time.monotonic())
                    counts[:] = [len(stamps.placed), len(stamps.running), len(stamps.failed)]
                    if stamps.settled() >= expected:
                        break
            except Exception:  # expired or dropped watch: list again (stamps keep the earliest)
                time.sleep(0.2)
                version = _list(stamps, kind, call, args)
    finally:
        Path(out).write_text(json.dumps(stamps.__dict__))
        api.close()


def _list(stamps: Stamps, kind: str, call, args) -> str:
    response = call(*args, _preload_content=False)
    body = json.loads(response.data)
    now = time.monotonic()
    for obj in body["items"]:
        stamps.observe(kind, obj, now)
    return body["metadata"]["resourceVersion"]


class Watcher:
    """The watcher process, from the parent's side."""

    def __init__(self, kubeconfig: Path, kind: str, namespace: str, expected: int, out: Path):
        ctx = multiprocessing.get_context("spawn")
        self.ready = ctx.Event()
        self.counts = ctx.Array("i", 3)
        self.out = out
        self.process = ctx.Process(
            target=watch_until_settled,
            args=(str(kubeconfig), kind, namespace, expected, str(out), self.ready, self.counts),
            name=f"watch-{kind}",
            daemon=True,
        )

    def start(self, timeout: float = 120) -> None:
        self.process.start()
        if not self.ready.wait(timeout):
            self.process.terminate()
            raise RuntimeError(f"the watcher did not list within {timeout:.0f}s")

    def progress(self) -> tuple[int, int, int]:
        placed, running, failed = self.counts[:]
        return placed, running, failed

    def done(self) -> bool:
        return not self.process.is_alive()

    def stop(self) -> Stamps:
        if self.process.is_alive():
            self.process.terminate()
        self.process.join(30)
        if not self.out.exists():
            raise RuntimeError(f"the watcher wrote no stamps (exit code {self.process.exitcode})")
        return Stamps(**json.loads(self.out.read_text()))
