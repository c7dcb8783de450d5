"""Watch-fed caches (kopf indexes) the hot paths read instead of listing objects."""

from __future__ import annotations

import kopf

from kubenova import GROUP, VERSION
from kubenova.compute.registration import HOST_LABEL
from kubenova.scheduler.host_state import NodeSummary


@kopf.index("nodes", labels={HOST_LABEL: "true"})
def nodes(name, body, **_):
    return {name: NodeSummary.of_node(body)}


@kopf.index(GROUP, VERSION, "resourceproviders")
def providers(name, spec, **_):
    return {name: dict(spec.get("allocations") or {})}


@kopf.index(GROUP, VERSION, "flavors")
def flavors(name, spec, **_):
    return {name: dict(spec)}


@kopf.index(GROUP, VERSION, "images")
def images(namespace, name, spec, status, **_):
    return {(namespace, name): {"spec": dict(spec), "status": dict(status)}}
