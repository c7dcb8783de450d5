"""`kubenova events NAME` (the action log and Events) and `kubenova console NAME` (the serial
console), read as the kubeconfig's user."""

from __future__ import annotations

import argparse
import os

from kubenova.cmd.errors import CliError
from kubenova.cmd.target import add_target_arguments, resolve


def add_parsers(sub: argparse._SubParsersAction) -> None:
    events = sub.add_parser(
        "events", help="an instance's action log (openstack server event list) and its events"
    )
    events.add_argument("name", help="the Instance")
    add_target_arguments(events)
    events.set_defaults(func=cmd_events)

    console = sub.add_parser("console", help="an instance's serial console log")
    console.add_argument("name", help="the Instance")
    add_target_arguments(console)
    console.add_argument("-f", "--follow", action="store_true", help="keep printing new output")
    console.add_argument(
        "--console-url",
        help="the operator's console endpoint (default $KUBENOVA_CONSOLE_URL, else "
        "https://127.0.0.1:9465)",
    )
    console.add_argument(
        "--operator-namespace",
        help="reach the in-cluster operator in this namespace through the API (a port-forward "
        "the CLI does; default $KUBENOVA_OPERATOR_NAMESPACE, else kubenova-system when no "
        "--console-url and no local operator's CA)",
    )
    console.add_argument(
        "--console-ca",
        help="its CA, <state-dir>/console/ca.crt (default $KUBENOVA_CONSOLE_CA, else "
        ".kubenova/state/console/ca.crt if present)",
    )
    console.set_defaults(func=cmd_console)


def cmd_events(args: argparse.Namespace) -> int:
    from kubenova.eventlist import show

    target = resolve(args)
    with target.api_client() as api:
        print(show(api, target.namespace, args.name))
    return 0


DEFAULT_OPERATOR_NAMESPACE = "kubenova-system"


def cmd_console(args: argparse.Namespace) -> int:
    from kubenova.console.client import (
        DEFAULT_CA,
        DEFAULT_URL,
        ConsoleClient,
        ConsoleError,
        console_ca,
        credentials,
        run,
    )
    from kubenova.console.forward import ForwardError, forwarded_console

    target = resolve(args)
    url = args.console_url or os.environ.get("KUBENOVA_CONSOLE_URL")
    operator_ns = args.operator_namespace or os.environ.get("KUBENOVA_OPERATOR_NAMESPACE")
    if not url and not operator_ns and not (args.console_ca or DEFAULT_CA.is_file()):
        operator_ns = DEFAULT_OPERATOR_NAMESPACE  # no local operator: the chart's
    creds = credentials(target.kubeconfig, target.context)
    try:
        if url or not operator_ns:
            reader = ConsoleClient(url or DEFAULT_URL, console_ca(args.console_ca), creds)
            return run(reader, target.namespace, args.name, args.follow)
        with target.api_client() as api, forwarded_console(api, operator_ns) as (local, ca):
            # the CA given, else the one the operator published (not a local operator's)
            given = args.console_ca or os.environ.get("KUBENOVA_CONSOLE_CA")
            reader = ConsoleClient(local, console_ca(given) if given else ca, creds)
            return run(reader, target.namespace, args.name, args.follow)
    except (ConsoleError, ForwardError) as err:
        raise CliError(f"console: {err}") from None
