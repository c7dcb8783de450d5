"""RequestSpec from an Instance and what it refers to: the one place hints become filter input,
shared by the conductor and `kubenova schedule --explain`."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from kubenova.scheduler.interface import RequestSpec
from kubenova.scheduler.resources import Resources


def resources_of(flavor_spec: Mapping[str, Any]) -> Resources:
    return Resources(flavor_spec["vcpus"], flavor_spec["ramMiB"], flavor_spec.get("diskGiB", 0))


def build_request_spec(
    instance: Mapping[str, Any],
    flavor_spec: Mapping[str, Any],
    image_spec: Mapping[str, Any],
    group: Mapping[str, Any] | None,
    placements: Mapping[Any, Iterable[Any]],
) -> RequestSpec:
    """`placements` is the instance placement cache (see handlers/indexes.py)."""
    meta, spec = instance["metadata"], instance["spec"]
    namespace, uid = meta["namespace"], meta.get("uid", "")
    hints = spec.get("schedulerHints") or {}
    status = instance.get("status") or {}

    def hosts_of(names: Iterable[str]) -> frozenset[str]:
        return frozenset(h for n in names for h in placements.get(("name", namespace, n), []))

    group_hosts: Counter[str] = Counter()
    policy, max_per_host = None, 1
    if group is not None:
        policy = group["spec"]["policy"]
        max_per_host = (group["spec"].get("rules") or {}).get("maxServerPerHost", 1)
        key = ("group", namespace, group["metadata"]["name"])
        for member_uid, host in placements.get(key, []):
            if member_uid != uid:
                group_hosts[host] += 1
    return RequestSpec(
        instance_uid=uid,
        instance=f"{namespace}/{meta['name']}",
        resources=resources_of(flavor_spec),
        availability_zone=spec.get("availabilityZone"),
        image_properties=dict(image_spec.get("properties") or {}),
        extra_specs=dict(flavor_spec.get("extraSpecs") or {}),
        ignore_hosts=frozenset(a["host"] for a in status.get("attempts") or []),
        group_policy=policy,
        group_max_per_host=max_per_host,
        group_hosts=dict(group_hosts),
        same_host=hosts_of(hints["sameHost"]) if hints.get("sameHost") else None,
        different_host=hosts_of(hints.get("differentHost") or []),
    )
