"""The start-up permission check fails closed: if the SelfSubjectAccessReviews themselves
fail, the operator stops with the reason instead of running unchecked."""

from __future__ import annotations

import asyncio
import socket

import pytest
from kubernetes_asyncio import client

from kubenova.config import OperatorConfig
from kubenova.kube import permissions
from kubenova.kube.client import ApiException


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def config() -> OperatorConfig:
    return OperatorConfig.model_validate({"driver": "fake"})


def verify_against_nothing() -> None:
    """permissions.verify with a client whose apiserver address nothing listens on."""

    async def check():
        configuration = client.Configuration(host=f"http://127.0.0.1:{closed_port()}")
        configuration.retries = 0
        async with client.ApiClient(configuration) as api:
            await permissions.verify(api, config())

    asyncio.run(check())


def test_an_unreachable_apiserver_stops_the_check_with_the_reason():
    with pytest.raises(permissions.CheckFailed) as caught:
        verify_against_nothing()
    assert caught.value.summary.startswith(
        "could not check the operator's permissions: SelfSubjectAccessReview failed:"
    )
    assert "Connect" in caught.value.reason, caught.value.reason
    assert isinstance(caught.value, permissions.NotVerified)


def test_refused_reviews_stop_the_check_with_the_apiservers_answer(monkeypatch):
    async def refused(authz, perm):
        raise ApiException(status=403, reason="Forbidden")

    monkeypatch.setattr(permissions, "_allowed", refused)
    with pytest.raises(permissions.CheckFailed, match="answered 403 Forbidden"):
        verify_against_nothing()


def test_a_denied_permission_is_still_named(monkeypatch):
    async def answer(authz, perm):
        return perm.resource != "ports"

    monkeypatch.setattr(permissions, "_allowed", answer)

    async def nobody(api):
        return "the operator's credentials"

    monkeypatch.setattr(permissions, "whoami", nobody)
    with pytest.raises(permissions.MissingPermissions) as caught:
        verify_against_nothing()
    assert {p.resource for p in caught.value.missing} == {"ports"}
    assert caught.value.summary == f"missing {len(caught.value.missing)} permission(s); see above"
