"""When the admission webhook is announced as a Service reference (handlers/admission.py)."""

from __future__ import annotations

import pytest

from kubenova.handlers.admission import service_of


@pytest.mark.parametrize(
    ("host", "service"),
    [
        ("kubenova-webhook.kubenova-system.svc", ("kubenova-system", "kubenova-webhook")),
        ("hook.ns.svc.cluster.local", ("ns", "hook")),
        ("127.0.0.1", None),
        ("localhost", None),
        ("hook.example.com", None),
        ("a.b.c.svc", None),  # not <name>.<namespace>.svc
    ],
)
def test_a_services_dns_name_is_announced_as_the_service(host, service):
    assert service_of(host) == service
