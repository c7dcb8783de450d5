"""The operator's connections to the apiserver are bounded, and no request looks up proxies
(kube/connections.py): kopf's session would open one connection per concurrent request."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import kopf

from kubenova.kube import connections
from kubenova.kube.client import new_api_client
from kubenova.kube.connections import (
    CLIENT_CONNECTIONS,
    KOPF_REQUEST_CONNECTIONS,
    bounded_kopf_session,
    watch_streams,
)

KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:6443", insecure-skip-tls-verify: true}}]
users: [{name: u, user: {token: secret-token}}]
contexts: [{name: x, context: {cluster: c, user: u, namespace: proj}}]
current-context: x
"""


def test_kopf_logs_in_through_the_bounded_session_not_its_fallbacks():
    import kubenova.handlers  # noqa: F401

    logins = [
        h
        for h in kopf.get_default_registry()._activities.get_all_handlers()
        if h.activity.value == "authentication" and not h._fallback
    ]
    assert [h.id for h in logins] == ["bounded-session"]


def test_one_connection_per_watched_resource_counted_once():
    registry = kopf.OperatorRegistry()
    assert watch_streams(registry) == 0
    kopf.index("nodes", registry=registry)(lambda **_: {})
    kopf.on.event("nodes", registry=registry)(lambda **_: None)  # the same stream
    kopf.daemon("compute.kubenova.io", "v1alpha1", "instances", registry=registry)(lambda **_: None)
    assert watch_streams(registry) == 2


def test_kopfs_session_is_bounded_and_keeps_the_credentials():
    registry = kopf.OperatorRegistry()
    kopf.on.event("pods", registry=registry)(lambda **_: None)
    info = kopf.ConnectionInfo(
        server="https://127.0.0.1:6443", token="t0k", insecure=True, default_namespace="ns"
    )

    async def make():
        context = bounded_kopf_session(info, registry)
        try:
            session = context.aiohttp_session
            assert session.connector.limit == 1 + KOPF_REQUEST_CONNECTIONS
            assert session.headers["Authorization"] == "Bearer t0k"
            assert session.trust_env is False
            assert (context.server, context.default_namespace) == (info.server, "ns")
        finally:
            await context.aiohttp_session.close()

    asyncio.run(make())


def test_the_clients_session_is_bounded_and_reads_no_proxy_settings(tmp_path: Path, monkeypatch):
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(KUBECONFIG)
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)

    async def make():
        api = await new_api_client()
        try:
            session = api.rest_client.pool_manager
            assert session.connector.limit == CLIENT_CONNECTIONS
            assert session.trust_env is False
            assert api.configuration.host == "https://127.0.0.1:6443"
            assert "secret-token" in str(api.configuration.api_key)
        finally:
            await api.close()

    asyncio.run(make())


def test_no_proxy_lookups_turns_off_the_sessions_environment_reading():
    async def check():
        session = aiohttp.ClientSession(trust_env=True)
        connections.no_proxy_lookups(session)
        assert session.trust_env is False
        await session.close()

    asyncio.run(check())
