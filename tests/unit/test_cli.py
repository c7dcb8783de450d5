"""The CLI's pure parts: when a --wait is over (from the action log the operator writes), the
status shown while waiting, webhook refusals and API errors as one line, the namespace from
the kubeconfig's context, --version."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from importlib.metadata import version

import pytest
import yaml
from kubernetes.client import ApiException

from kubenova.cmd.errors import CliError, describe, refusal_line
from kubenova.cmd.printable import printable_status
from kubenova.cmd.target import resolve
from kubenova.cmd.waiting import Outcome, Request, judge, request_ids

CREATE = {"action": "create", "requestId": "req-1", "result": "Success", "message": "ok"}


def instance(vm: str, task: str | None = None, actions=(CREATE,), **status) -> dict:
    body = {"vmState": vm, "actions": list(actions), **status}
    if task:
        body["taskState"] = task
    return {"metadata": {"name": "demo"}, "status": body}


def stop_request(obj: dict) -> Request:
    return Request("demo", "stop", "SHUTOFF", request_ids(obj), power="Stopped")


# -- judging a --wait --------------------------------------------------------------------------
def test_a_stop_is_done_when_its_new_log_entry_finished_and_the_task_cleared():
    request = stop_request(instance("ACTIVE"))
    assert judge(request, instance("ACTIVE", observedPowerState="Running")) is None
    entry = {"action": "stop", "requestId": "req-2"}
    busy = instance("ACTIVE", "POWERING_OFF", [CREATE, entry], observedPowerState="Stopped")
    assert judge(request, busy) is None
    done = {**entry, "result": "Success", "message": "the VM on h1 is powered off"}
    stopped = instance("STOPPED", None, [CREATE, done], observedPowerState="Stopped")
    assert judge(request, stopped) == Outcome(
        True, "instance demo is SHUTOFF: the VM on h1 is powered off"
    )


def test_an_entry_from_before_the_request_does_not_end_the_wait():
    old_stop = {"action": "stop", "requestId": "req-0", "result": "Success", "message": "old"}
    before = instance("ACTIVE", None, [old_stop, CREATE], observedPowerState="Running")
    request = stop_request(before)
    assert judge(request, before) is None


def test_a_refusal_or_failure_recorded_by_the_operator_ends_it_not_ok():
    request = Request("demo", "reboot", "ACTIVE", request_ids(instance("STOPPED")), "SOFT")
    refused = {
        "action": "reboot",
        "rebootType": "SOFT",
        "requestId": "req-9",
        "result": "Error",
        "message": "refused: Cannot 'reboot' instance demo while it is in vm_state STOPPED",
    }
    outcome = judge(request, instance("STOPPED", None, [CREATE, refused]))
    assert outcome == Outcome(
        False, "Cannot 'reboot' instance demo while it is in vm_state STOPPED"
    )


def test_a_reboot_of_the_other_type_is_not_ours():
    request = Request("demo", "reboot", "ACTIVE", frozenset({"req-1"}), "HARD")
    soft = {"action": "reboot", "rebootType": "SOFT", "requestId": "req-5", "result": "Success"}
    assert judge(request, instance("ACTIVE", None, [CREATE, soft])) is None


def test_ending_in_error_fails_even_when_the_entry_says_success():
    request = Request("demo", "reboot", "ACTIVE", frozenset({"req-1"}), "HARD")
    done = {"action": "reboot", "rebootType": "HARD", "requestId": "req-3", "result": "Success"}
    failed = instance("ERROR", None, [CREATE, done], fault={"message": "the VM vanished"})
    assert judge(request, failed) == Outcome(False, "instance demo is ERROR: the VM vanished")


def test_a_power_request_with_nothing_to_do_ends_on_the_observed_power_state():
    request = stop_request(instance("STOPPED", observedPowerState="Running"))
    noop = instance("STOPPED", observedPowerState="Stopped")
    assert judge(request, noop) == Outcome(True, "instance demo is SHUTOFF")


def test_an_instance_being_deleted_ends_the_wait():
    obj = instance("ACTIVE", "POWERING_OFF")
    obj["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    assert judge(stop_request(instance("ACTIVE")), obj).ok is False


# -- status ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("status", "shown"),
    [
        ({}, "BUILD"),
        ({"vmState": "BUILDING", "taskState": "SPAWNING"}, "BUILD"),
        ({"vmState": "ACTIVE", "taskState": "POWERING_OFF"}, "ACTIVE"),
        ({"vmState": "ACTIVE", "taskState": "REBOOTING"}, "REBOOT"),
        ({"vmState": "ACTIVE", "taskState": "REBOOTING_HARD"}, "HARD_REBOOT"),
        ({"vmState": "STOPPED", "taskState": "REBOOTING_HARD"}, "SHUTOFF"),
        ({"vmState": "STOPPED"}, "SHUTOFF"),
        ({"vmState": "ERROR", "taskState": "POWERING_OFF"}, "ERROR"),
        ({"vmState": "ACTIVE", "printableStatus": "SOMETHING_NEWER"}, "SOMETHING_NEWER"),
        ({"vmState": "SHELVED"}, "UNKNOWN"),
    ],
)
def test_printable_status_prefers_the_field_and_maps_as_nova(status, shown):
    assert printable_status(status) == shown


# -- errors ------------------------------------------------------------------------------------
def api_error(status: int, body: dict | str) -> ApiException:
    err = ApiException(status=status, reason="x")
    err.body = body if isinstance(body, str) else json.dumps(body)
    return err


def test_a_webhook_refusal_loses_the_webhook_and_field_prefixes():
    message = (
        'admission webhook "instance-action.kubenova.compute.kubenova.io" denied the request: '
        "annotation compute.kubenova.io/reboot=soft: Cannot 'reboot' instance demo while it is "
        "in vm_state STOPPED: a soft reboot needs a running guest"
    )
    assert refusal_line(message) == (
        "Cannot 'reboot' instance demo while it is in vm_state STOPPED: a soft reboot needs a "
        "running guest"
    )
    err = api_error(409, {"message": message, "code": 409})
    assert describe(err, argparse.Namespace()) == refusal_line(message)


def test_a_404_names_the_instance_and_the_namespace():
    args = argparse.Namespace(target=argparse.Namespace(namespace="proj"))
    body = {"message": "x", "details": {"name": "web", "kind": "instances"}, "code": 404}
    assert describe(api_error(404, body), args) == "instance web not found in namespace proj"
    assert "CRDs installed" in describe(api_error(404, "404 page not found"), args)


def test_a_bug_is_not_described_as_a_user_error():
    assert describe(ZeroDivisionError("x"), argparse.Namespace()) is None
    assert describe(CliError("plain"), argparse.Namespace()) == "plain"


# -- the target --------------------------------------------------------------------------------
def kubeconfig(path, namespace: str | None, contexts=("one", "two")) -> str:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": name, "context": {"cluster": "c", "user": "u"}} for name in contexts],
        "current-context": contexts[0],
    }
    if namespace:
        config["contexts"][1]["context"]["namespace"] = namespace
    path.write_text(yaml.safe_dump(config))
    return str(path)


def target_args(**given) -> argparse.Namespace:
    return argparse.Namespace(**{"namespace": None, "kubeconfig": None, "context": None, **given})


def test_the_namespace_is_the_flag_else_the_contexts_else_default(tmp_path, monkeypatch):
    path = kubeconfig(tmp_path / "config", "proj")
    monkeypatch.delenv("KUBECONFIG", raising=False)
    assert resolve(target_args(kubeconfig=path)).namespace == "default"  # context one
    assert resolve(target_args(kubeconfig=path, context="two")).namespace == "proj"
    monkeypatch.setenv("KUBECONFIG", path)
    assert resolve(target_args(context="two", namespace="x")).namespace == "x"
    with pytest.raises(CliError, match="context 'three' is not in the kubeconfig"):
        resolve(target_args(context="three"))


def test_a_missing_kubeconfig_says_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "gone"))
    with pytest.raises(CliError, match=r"gone \(\$KUBECONFIG\) does not exist"):
        resolve(target_args())


def test_version_is_the_package_metadata():
    result = subprocess.run(
        [sys.executable, "-m", "kubenova.cli", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (result.returncode, result.stdout) == (0, f"kubenova {version('kubenova')}\n")


def test_a_bug_is_one_line_that_says_where(capsys):
    from kubenova.cmd.errors import guarded

    def broken(args: argparse.Namespace) -> int:
        return {}["missing"]

    assert guarded(broken, argparse.Namespace()) == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("error: internal error: KeyError: 'missing' at test_cli.py:")


def test_events_of_one_second_keep_the_order_they_were_written_in():
    from datetime import UTC, datetime
    from types import SimpleNamespace

    from kubenova.eventlist import event_rows

    second = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)

    def event(reason: str, version: str):
        return SimpleNamespace(
            metadata=SimpleNamespace(resource_version=version),
            last_timestamp=second,
            event_time=None,
            first_timestamp=second,
            type="Normal",
            reason=reason,
            count=1,
            message="",
        )

    rows = event_rows([event("Stopped", "1002"), event("Stopping", "998")])
    assert [row[2] for row in rows] == ["Stopping", "Stopped"]
