"""The asyncio Kubernetes client the operator uses (never the blocking one on the event loop)."""

from __future__ import annotations

import os
from typing import Any

from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException

from kubenova import GROUP, VERSION
from kubenova.kube.connections import CLIENT_CONNECTIONS, no_proxy_lookups

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"

__all__ = ["ApiException", "Objects", "new_api_client"]


async def new_api_client() -> client.ApiClient:
    """From $KUBECONFIG (or ~/.kube/config), else the in-cluster service account; with a
    bounded connection pool that reads no proxy settings (kube/connections.py)."""
    configuration = type.__call__(client.Configuration)  # not a copy of the global default
    if os.environ.get("KUBERNETES_SERVICE_HOST") and not os.environ.get("KUBECONFIG"):
        config.load_incluster_config(client_configuration=configuration)
    else:
        await config.load_kube_config(
            config_file=os.environ.get("KUBECONFIG"), client_configuration=configuration
        )
    configuration.connection_pool_maxsize = CLIENT_CONNECTIONS
    api = client.ApiClient(configuration=configuration)
    no_proxy_lookups(api.rest_client.pool_manager)
    return api


class Objects:
    """compute.kubenova.io objects by plural; namespace None for cluster-scoped kinds."""

    def __init__(self, api: client.ApiClient) -> None:
        self.api = api
        self._custom = client.CustomObjectsApi(api)

    async def get(self, plural: str, name: str, namespace: str | None = None) -> dict[str, Any]:
        if namespace is None:
            return await self._custom.get_cluster_custom_object(GROUP, VERSION, plural, name)
        return await self._custom.get_namespaced_custom_object(
            GROUP, VERSION, namespace, plural, name
        )

    async def find(
        self, plural: str, name: str, namespace: str | None = None
    ) -> dict[str, Any] | None:
        """The object, or None when it does not exist."""
        try:
            return await self.get(plural, name, namespace)
        except ApiException as err:
            if err.status == 404:
                return None
            raise

    async def list(
        self, plural: str, namespace: str | None = None, label_selector: str = ""
    ) -> list[dict[str, Any]]:
        if namespace is None:
            result = await self._custom.list_cluster_custom_object(
                GROUP, VERSION, plural, label_selector=label_selector
            )
        else:
            result = await self._custom.list_namespaced_custom_object(
                GROUP, VERSION, namespace, plural, label_selector=label_selector
            )
        return result["items"]

    async def create(self, plural: str, body: dict[str, Any]) -> dict[str, Any]:
        namespace = body["metadata"].get("namespace")
        if namespace is None:
            return await self._custom.create_cluster_custom_object(GROUP, VERSION, plural, body)
        return await self._custom.create_namespaced_custom_object(
            GROUP, VERSION, namespace, plural, body
        )

    async def replace(self, plural: str, body: dict[str, Any]) -> dict[str, Any]:
        """Whole-object update; fails with 409 if metadata.resourceVersion is stale."""
        meta = body["metadata"]
        if meta.get("namespace") is None:
            return await self._custom.replace_cluster_custom_object(
                GROUP, VERSION, plural, meta["name"], body
            )
        return await self._custom.replace_namespaced_custom_object(
            GROUP, VERSION, meta["namespace"], plural, meta["name"], body
        )

    async def patch(
        self, plural: str, name: str, namespace: str | None, patch: dict[str, Any]
    ) -> dict[str, Any]:
        """JSON merge patch of the object (a key set to None is removed)."""
        if namespace is None:
            return await self._custom.patch_cluster_custom_object(
                GROUP, VERSION, plural, name, patch, _content_type=MERGE_PATCH
            )
        return await self._custom.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, plural, name, patch, _content_type=MERGE_PATCH
        )

    async def json_patch(
        self, plural: str, name: str, namespace: str, operations: list[dict[str, Any]]
    ) -> dict[str, Any]:
        """RFC 6902 JSON patch of a namespaced object: with a `test` operation it is atomic
        (422 when the test fails)."""
        return await self._custom.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, plural, name, operations, _content_type=JSON_PATCH
        )

    async def patch_status(
        self, plural: str, name: str, namespace: str | None, patch: dict[str, Any]
    ) -> dict[str, Any]:
        """JSON merge patch of the status subresource (a resourceVersion in it makes it a CAS)."""
        if namespace is None:
            return await self._custom.patch_cluster_custom_object_status(
                GROUP, VERSION, plural, name, patch, _content_type=MERGE_PATCH
            )
        return await self._custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, namespace, plural, name, patch, _content_type=MERGE_PATCH
        )

    async def patch_status_unless_changed(
        self, plural: str, obj: dict[str, Any], status: dict[str, Any]
    ) -> dict[str, Any] | None:
        """Merge `status` into the object's status only if nobody wrote it since `obj` was
        read (a compare-and-swap on its resourceVersion): the updated object, or None when
        the race was lost (409) or the object is gone (404); the caller re-reads."""
        meta = obj["metadata"]
        patch = {"metadata": {"resourceVersion": meta["resourceVersion"]}, "status": status}
        try:
            return await self.patch_status(plural, meta["name"], meta.get("namespace"), patch)
        except ApiException as err:
            if err.status in (404, 409):
                return None
            raise

    async def delete(
        self, plural: str, name: str, namespace: str | None = None, uid: str | None = None
    ) -> bool:
        """Delete the object; with `uid`, only that very object (a uid precondition: an object
        re-created under the name meanwhile stays). False when it was gone already."""
        options = {}
        if uid is not None:
            options["body"] = client.V1DeleteOptions(preconditions=client.V1Preconditions(uid=uid))
        try:
            if namespace is None:
                await self._custom.delete_cluster_custom_object(
                    GROUP, VERSION, plural, name, **options
                )
            else:
                await self._custom.delete_namespaced_custom_object(
                    GROUP, VERSION, namespace, plural, name, **options
                )
        except ApiException as err:
            # 409 on a uid precondition: the name now belongs to another object
            if err.status == 404 or (err.status == 409 and uid is not None):
                return False
            raise
        return True
