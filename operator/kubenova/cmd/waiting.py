"""`--wait`: follow an instance (one watch, no polling) until the action the CLI asked for
has completed, printing each change of its status and task state.

Completion is read from what the operator records (conductor/actions.py): the action log entry
of the request, one new entry in `status.actions` that was not there before the CLI's write,
finished with Success or Error in the same status write that clears the task state. A power
request with nothing to do (already in that state) leaves no entry: the operator then only
records `status.observedPowerState`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TextIO

from kubenova import GROUP, VERSION
from kubenova.cmd.errors import CliError
from kubenova.cmd.printable import printable_status

ERROR_STATUS = "ERROR"


@dataclass(frozen=True)
class Request:
    """What the CLI asked for, and what the log held before it asked."""

    name: str  # the instance
    action: str  # as the action log names it: stop, start, reboot
    goal: str  # the printable status it ends in: SHUTOFF or ACTIVE
    before: frozenset[str]  # request ids in the log before the write
    reboot_type: str | None = None  # SOFT or HARD
    power: str | None = None  # stop/start: the spec.powerState value written


@dataclass(frozen=True)
class Outcome:
    ok: bool
    message: str


Judge = Callable[[Mapping[str, Any]], "Outcome | None"]


def request_ids(obj: Mapping[str, Any]) -> frozenset[str]:
    actions = (obj.get("status") or {}).get("actions") or []
    return frozenset(a["requestId"] for a in actions if a.get("requestId"))


def entry_of(request: Request, status: Mapping[str, Any]) -> dict[str, Any] | None:
    """The newest log entry of `request`'s kind made after the CLI's write."""
    for record in reversed(list(status.get("actions") or ())):
        if record.get("requestId") in request.before or record.get("action") != request.action:
            continue
        if request.reboot_type and record.get("rebootType") != request.reboot_type:
            continue
        return dict(record)
    return None


def _fault(status: Mapping[str, Any]) -> str:
    fault = status.get("fault") or {}
    return fault.get("message") or "no fault recorded"


def judge(request: Request, obj: Mapping[str, Any]) -> Outcome | None:
    """How the request ended, or None while it has not."""
    status = obj.get("status") or {}
    if (obj.get("metadata") or {}).get("deletionTimestamp"):
        return Outcome(False, f"instance {request.name} is being deleted")
    if status.get("taskState"):
        return None
    shown = printable_status(status)
    record = entry_of(request, status)
    if record is not None:
        if not record.get("result"):
            return None
        message = str(record.get("message") or "").removeprefix("refused: ")
        if record["result"] != "Success":
            return Outcome(False, message or f"{request.action} failed")
        if shown == ERROR_STATUS:
            return Outcome(False, f"instance {request.name} is ERROR: {_fault(status)}")
        return Outcome(True, f"instance {request.name} is {shown}: {message}")
    if request.power is not None and status.get("observedPowerState") == request.power:
        if shown == request.goal:  # taken up with nothing to do
            return Outcome(True, f"instance {request.name} is {shown}")
        if shown == ERROR_STATUS:
            return Outcome(False, f"instance {request.name} is ERROR: {_fault(status)}")
        return Outcome(
            False,
            f"instance {request.name} is {shown}, and the operator had already taken "
            f"spec.powerState {request.power} up (see kubenova events {request.name})",
        )
    return None


class Progress:
    """Prints `<seconds>  <status>  <task>` each time either changes."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.start = time.monotonic()
        self.last: tuple[str, str] | None = None

    def show(self, obj: Mapping[str, Any]) -> None:
        status = obj.get("status") or {}
        now = (printable_status(status), status.get("taskState") or "-")
        if now != self.last:
            self.last = now
            elapsed = time.monotonic() - self.start
            print(f"  {elapsed:6.2f}s  {now[0]:<12} {now[1]}", file=self.out, flush=True)


def follow(
    api,
    namespace: str,
    name: str,
    obj: Mapping[str, Any],
    decide: Judge,
    timeout: float,
    what: str,
    progress: Progress | None = None,
) -> tuple[Outcome, Mapping[str, Any]]:
    """Watch the instance from `obj` on until `decide` returns an Outcome (and the object it
    judged); a CliError after `timeout` seconds, or when the instance is deleted."""
    from kubernetes import client, watch

    custom = client.CustomObjectsApi(api)
    deadline = time.monotonic() + timeout
    if progress is not None:
        progress.show(obj)
    outcome = decide(obj)
    version = obj["metadata"]["resourceVersion"]
    while outcome is None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise CliError(_timed_out(name, what, timeout, obj))
        stream = watch.Watch()
        try:
            events: Iterable[dict] = stream.stream(
                custom.list_namespaced_custom_object,
                GROUP,
                VERSION,
                namespace,
                "instances",
                field_selector=f"metadata.name={name}",
                resource_version=version,
                timeout_seconds=max(1, int(remaining)),
                _request_timeout=remaining + 30,
            )
            for event in events:
                if event["type"] == "DELETED":
                    raise CliError(f"instance {name} was deleted while waiting for it to {what}")
                obj = event["object"]
                version = obj["metadata"]["resourceVersion"]
                if progress is not None:
                    progress.show(obj)
                outcome = decide(obj)
                if outcome is not None:
                    break
        except client.ApiException as err:
            if err.status != 410:  # Gone: the version is too old; read again
                raise
            obj = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "instances", name)
            version = obj["metadata"]["resourceVersion"]
            outcome = decide(obj)
        finally:
            stream.stop()
    return outcome, obj


def _timed_out(name: str, what: str, timeout: float, obj: Mapping[str, Any]) -> str:
    status = obj.get("status") or {}
    return (
        f"timed out after {timeout:.0f}s waiting for instance {name} to {what}: it is "
        f"{printable_status(status)}, task {status.get('taskState') or 'none'} (is the "
        "operator running? kubenova events " + name + ")"
    )
