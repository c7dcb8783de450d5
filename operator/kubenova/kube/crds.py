"""Install kubenova's CRDs into a cluster and wait until the apiserver serves them."""

from __future__ import annotations

import time
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from kubenova.models.base import Resource
from kubenova.models.crd import build_crd


def _established(crd: Any) -> bool:
    conditions = (crd.status and crd.status.conditions) or []
    return any(c.type == "Established" and c.status == "True" for c in conditions)


def install_crds(
    api: client.ApiClient, kinds: tuple[type[Resource], ...], timeout: float = 60.0
) -> list[str]:
    """Create or update one CRD per kind; return their names once all are Established."""
    ext = client.ApiextensionsV1Api(api)
    names = []
    for kind in kinds:
        body = build_crd(kind)
        name = body["metadata"]["name"]
        names.append(name)
        try:
            ext.create_custom_resource_definition(body)
        except ApiException as err:
            if err.status != 409:
                raise
            current = ext.read_custom_resource_definition(name)
            body["metadata"]["resourceVersion"] = current.metadata.resource_version
            ext.replace_custom_resource_definition(name, body)
    deadline = time.monotonic() + timeout
    pending = set(names)
    while pending:
        pending = {n for n in pending if not _established(ext.read_custom_resource_definition(n))}
        if pending and time.monotonic() > deadline:
            raise TimeoutError(f"CRDs not Established after {timeout:.0f}s: {sorted(pending)}")
        if pending:
            time.sleep(0.2)
    return names
