"""`kubenova schedule -f instance.yaml`: the scheduler's decision as a dry run (explain.py)."""

from __future__ import annotations

import argparse
from pathlib import Path

from kubenova.cmd.target import add_target_arguments, resolve


def add_parsers(sub: argparse._SubParsersAction) -> None:
    sched = sub.add_parser(
        "schedule",
        help="dry-run the scheduler for an Instance manifest: each filter's survivors and the "
        "weighed ranking",
    )
    sched.add_argument(
        "--explain",
        action="store_true",
        help="accepted for compatibility: the explanation is always printed",
    )
    sched.add_argument("-f", "--file", required=True)
    add_target_arguments(sched)
    sched.add_argument("--scheduler-config")
    sched.set_defaults(func=cmd_schedule)


def cmd_schedule(args: argparse.Namespace) -> int:
    from kubenova.explain import explain, render
    from kubenova.scheduler.config import SchedulerConfig

    scheduler = SchedulerConfig.from_file(args.scheduler_config)
    target = resolve(args)
    with target.api_client() as api:
        instance, result = explain(api, Path(args.file), target.namespace, scheduler)
    print(render(instance, result))
    return 0 if result.ranking else 1
