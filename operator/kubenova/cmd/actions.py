"""`kubenova stop|start NAME`, `kubenova reboot [--hard] NAME`: thin writes of the fields a
user sets with kubectl (`spec.powerState`, the annotation `compute.kubenova.io/reboot`), as
`openstack server stop|start|reboot` and `virtctl stop|start|restart` are thin API calls.
With `--wait`, follow the instance until the operator has carried the action out."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from typing import Any

from kubenova import GROUP, VERSION
from kubenova.cmd.errors import CliError
from kubenova.cmd.printable import printable_status
from kubenova.cmd.target import Target, add_target_arguments, resolve
from kubenova.cmd.waiting import Outcome, Progress, Request, follow, judge, request_ids

DEFAULT_TIMEOUT = 300.0
POWER = {"stop": "Stopped", "start": "Running"}
GOAL = {"stop": "SHUTOFF", "start": "ACTIVE", "reboot": "ACTIVE"}


def add_parsers(sub: argparse._SubParsersAction) -> None:
    for command, summary in (
        ("stop", "power an instance off (spec.powerState: Stopped)"),
        ("start", "power an instance on (spec.powerState: Running)"),
        ("reboot", "reboot an instance (annotation compute.kubenova.io/reboot)"),
    ):
        parser = sub.add_parser(command, help=summary, description=summary)
        if command == "reboot":
            parser.add_argument(
                "--hard", action="store_true", help="reset the VM (default: soft, ACPI)"
            )
        parser.add_argument("name", help="the Instance")
        add_target_arguments(parser)
        parser.add_argument(
            "--wait",
            action="store_true",
            help="follow the instance until the action is done; non-zero if it fails",
        )
        parser.add_argument(
            "--timeout",
            type=float,
            default=DEFAULT_TIMEOUT,
            help=f"seconds --wait waits (default {DEFAULT_TIMEOUT:.0f})",
        )
        parser.set_defaults(func=cmd_power if command in POWER else cmd_reboot)


def _custom(api):
    from kubernetes import client

    return client.CustomObjectsApi(api)


def _get(api, target: Target, name: str) -> dict[str, Any]:
    return _custom(api).get_namespaced_custom_object(
        GROUP, VERSION, target.namespace, "instances", name
    )


def _patch(api, target: Target, name: str, body: Mapping[str, Any]) -> dict[str, Any]:
    return _custom(api).patch_namespaced_custom_object(
        GROUP, VERSION, target.namespace, "instances", name, body
    )


def cmd_power(args: argparse.Namespace) -> int:
    target = resolve(args)
    command, name = args.command, args.name
    desired = POWER[command]
    with target.api_client() as api:
        obj = _get(api, target, name)
        request = Request(name, command, GOAL[command], request_ids(obj), power=desired)
        if ((obj.get("spec") or {}).get("powerState") or "Running") != desired:
            obj = _patch(api, target, name, {"spec": {"powerState": desired}})
        else:
            already = _already_asked(api, target, obj, request, args.timeout)
            if already is not None:
                print(already)
                return 0
            obj = _patch(api, target, name, {"spec": {"powerState": desired}})
        print(f"{command} requested for instance {name}", flush=True)
        return _wait(api, target, obj, request, args) if args.wait else 0


def _already_asked(
    api, target: Target, obj: dict[str, Any], request: Request, timeout: float
) -> str | None:
    """When spec.powerState already says what the user asks: a message if there is nothing to
    do, else (spec and operator agree, the VM does not) make the request writable again and
    return None; a CliError when the instance's state refuses the action."""
    from kubenova.conductor import states
    from kubenova.conductor.actions import START, STOP, refusal
    from kubenova.models.v1alpha1.states import VmState

    name, status = request.name, obj.get("status") or {}
    if (status.get("observedPowerState") or "Running") != request.power:
        return None  # the operator has not taken it up yet: the write below is a no-op
    state = states.of_status(status)
    shown = printable_status(status)
    if state.task is None and shown == request.goal:
        return f"instance {name} is already {shown}"
    action = STOP if request.action == "stop" else START
    why = refusal(action, state, name, host=status.get("host"), vm_present=None)
    if why:
        raise CliError(why)
    opposite = VmState.ACTIVE if action is STOP else VmState.STOPPED
    if state.vm != opposite:
        raise CliError(
            f"instance {name} is {shown} with spec.powerState already {request.power}: "
            f"see kubenova events {name}"
        )
    # A hard reboot started a stopped instance, or the host-failure handling stopped one:
    # the VM is not in the state spec.powerState says. The other value is what the VM is in,
    # so the operator only records it; after that the value asked for is a new request.
    other = "Running" if request.power == "Stopped" else "Stopped"
    _patch(api, target, name, {"spec": {"powerState": other}})

    def recorded(current: Mapping[str, Any]) -> Outcome | None:
        seen = (current.get("status") or {}).get("observedPowerState") or "Running"
        return Outcome(True, "") if seen == other else None

    follow(api, target.namespace, name, obj, recorded, timeout, f"record {other}")
    return None


def cmd_reboot(args: argparse.Namespace) -> int:
    from kubenova.conductor.actions import REBOOT_ANNOTATION

    target = resolve(args)
    name, kind = args.name, "hard" if args.hard else "soft"
    with target.api_client() as api:
        obj = _get(api, target, name)
        request = Request(name, "reboot", GOAL["reboot"], request_ids(obj), kind.upper())
        obj = _patch(api, target, name, {"metadata": {"annotations": {REBOOT_ANNOTATION: kind}}})
        print(f"{kind} reboot requested for instance {name}", flush=True)
        return _wait(api, target, obj, request, args) if args.wait else 0


def _wait(api, target: Target, obj, request: Request, args: argparse.Namespace) -> int:
    what = {"stop": "stop", "start": "start", "reboot": "reboot"}[request.action]
    outcome, _ = follow(
        api,
        target.namespace,
        request.name,
        obj,
        lambda current: judge(request, current),
        args.timeout,
        what,
        Progress(sys.stdout),
    )
    if not outcome.ok:
        raise CliError(outcome.message)
    print(outcome.message)
    return 0
