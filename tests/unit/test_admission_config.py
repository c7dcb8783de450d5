"""The operator's admission flags: off by default, listen/dial/cert-dir defaults."""

from pathlib import Path

import pytest
from pydantic import ValidationError

from kubenova.cli import build_parser
from kubenova.config import OperatorConfig


def test_admission_is_off_by_default_with_loopback_defaults():
    config = OperatorConfig(state_dir=Path("/var/lib/kn"))
    assert config.admission is False
    assert config.webhook_address == ("127.0.0.1", 9443)
    assert config.webhook_dial_host == "127.0.0.1"
    assert config.webhook_certs == Path("/var/lib/kn/webhook")


def test_flags_reach_the_config():
    args = build_parser().parse_args(
        [
            "operator",
            "--admission",
            "--webhook-listen=[::1]:8443",
            "--webhook-host=kubenova-webhook.kubenova.svc",
            "--webhook-cert-dir=/certs",
        ]
    )
    config = OperatorConfig(
        admission=args.admission,
        webhook_listen=args.webhook_listen,
        webhook_host=args.webhook_host,
        webhook_cert_dir=args.webhook_cert_dir,
    )
    assert config.webhook_address == ("::1", 8443)
    assert config.webhook_dial_host == "kubenova-webhook.kubenova.svc"
    assert config.webhook_certs == Path("/certs")


@pytest.mark.parametrize("bad", ["9443", "127.0.0.1", "127.0.0.1:port", "::1:9443"])
def test_listen_must_be_host_and_port(bad):
    with pytest.raises(ValidationError):
        OperatorConfig(webhook_listen=bad)
