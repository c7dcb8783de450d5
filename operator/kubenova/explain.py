"""`kubenova schedule --explain -f instance.yaml`: the scheduler's decision as a dry run.

The caches are filled by listing the API once and passing each object through the very index
functions the operator's watches use, so the dry run sees what the operator would.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Coroutine, Iterable
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client

from kubenova import GROUP, VERSION
from kubenova.handlers import indexes
from kubenova.scheduler.config import SchedulerConfig
from kubenova.scheduler.filter_scheduler import Explanation, FilterScheduler
from kubenova.scheduler.host_state import host_states
from kubenova.scheduler.request import build_request_spec


def _awaiting_nothing(coro: Coroutine[Any, Any, dict]) -> dict:
    """The result of an index handler (async for kopf, handlers/indexes.py, but awaiting
    nothing), without an event loop."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    coro.close()
    raise RuntimeError("an index handler awaited something")


IndexHandler = Callable[..., Coroutine[Any, Any, dict]]


def _index(fn: IndexHandler, objects: Iterable[dict[str, Any]]) -> dict[Any, list]:
    out: dict[Any, list] = defaultdict(list)
    for obj in objects:
        meta = obj["metadata"]
        keys = _awaiting_nothing(
            fn(
                name=meta["name"],
                namespace=meta.get("namespace"),
                uid=meta.get("uid"),
                body=obj,
                spec=obj.get("spec") or {},
                status=obj.get("status") or {},
            )
        )
        for key, value in keys.items():
            out[key].append(value)
    return out


def explain(
    api: client.ApiClient, path: Path, namespace: str, config: SchedulerConfig
) -> tuple[str, Explanation]:
    instance = yaml.safe_load(path.read_text())
    instance.setdefault("metadata", {}).setdefault("namespace", namespace)
    namespace = instance["metadata"]["namespace"]
    core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)

    def custom_items(plural: str) -> list[dict]:
        return custom.list_cluster_custom_object(GROUP, VERSION, plural)["items"]

    spec = instance["spec"]
    flavor = custom.get_cluster_custom_object(GROUP, VERSION, "flavors", spec["flavor"])
    image = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "images", spec["image"])
    group = None
    if name := (spec.get("schedulerHints") or {}).get("group"):
        group = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "servergroups", name)
    nodes = [
        api.sanitize_for_serialization(n)
        for n in core.list_node(label_selector=f"{indexes.HOST_LABEL}=true").items
    ]
    pods = [
        api.sanitize_for_serialization(p)
        for p in core.list_pod_for_all_namespaces(
            field_selector="status.phase!=Succeeded,status.phase!=Failed"
        ).items
    ]
    placements = _index(indexes.placements, custom_items("instances"))
    request = build_request_spec(instance, flavor["spec"], image["spec"], group, placements)
    hosts = host_states(
        _index(indexes.nodes, nodes),
        _index(indexes.providers, custom_items("resourceproviders")),
        _index(indexes.pods, pods),
        placements,
        config.ratios,
        {},
    )
    return request.instance, FilterScheduler(None, config).explain(request, hosts)


def render(instance: str, result: Explanation) -> str:
    lines = [f"{instance}: {result.total} candidate hosts"]
    for name, removed in result.removed.items():
        left = result.survivors_after.get(name, [])
        lines.append(
            f"  {name:<38} removed {removed:>4}, {len(left):>4} left: "
            f"{', '.join(left[:8])}{' ...' if len(left) > 8 else ''}"
        )
    lines.append("weighed (best first):")
    for rank, weighed in enumerate(result.ranking[:20], 1):
        lines.append(f"  {rank:>3}. {weighed.host.name:<30} {weighed.weight:10.4f}")
    if not result.ranking:
        lines.append("  none: the build would end in ERROR with NoValidHost")
    return "\n".join(lines)
