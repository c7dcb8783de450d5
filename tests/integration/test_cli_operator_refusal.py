"""`--wait` reports a refusal the operator makes (no admission webhook here, so the request is
written and the operator refuses it when it takes it up): one line, Nova's message, exit 1.

A module of its own: its operator (`cloud`, the FakeDriver without `--admission`) must not run
beside test_cli.py's, which serves the webhook.
"""

from __future__ import annotations

import pytest

from kubenova.conductor.actions import REBOOT_ANNOTATION
from tests.integration.test_cli import booted, kubenova, one_error_line, resting

pytestmark = pytest.mark.integration


def test_a_refusal_by_the_operator_ends_the_wait_with_its_message(cloud, cluster):
    booted(cloud, "off")
    ns = ("-n", cloud.ns)
    assert kubenova(cluster, "stop", "off", *ns, "--wait", "--timeout=60").returncode == 0

    refused = kubenova(cluster, "reboot", "off", *ns, "--wait", "--timeout=60")
    assert one_error_line(refused) == (
        "Cannot 'reboot' instance off while it is in vm_state STOPPED: a soft reboot needs a "
        "running guest; set spec.powerState: Running, or ask for a hard reboot"
    )
    assert refused.stdout.splitlines()[0] == "soft reboot requested for instance off"
    assert resting(cloud, "off") == ("STOPPED", None, "SHUTDOWN")
    assert REBOOT_ANNOTATION not in (cloud.get("off")["metadata"].get("annotations") or {})
    last = cloud.get("off")["status"]["actions"][-1]
    assert (last["action"], last["result"]) == ("reboot", "Error")
