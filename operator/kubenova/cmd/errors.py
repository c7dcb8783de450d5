"""One line on stderr and a non-zero exit for every failure a user can cause or meet (a
missing kubeconfig, a refusal, no such instance, an unreachable API server), never a
traceback: the one top-level handler, `guarded()`. KUBENOVA_DEBUG=1 shows tracebacks."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

#: the prefix the apiserver puts before a validating webhook's message
WEBHOOK_PREFIX = re.compile(r'^admission webhook "[^"]+" denied the request: ')
#: the admission webhook names the field of an action request; the CLI's user wrote none
FIELD_PREFIX = re.compile(r"^(spec\.powerState \w+|annotation \S+?=\S+): (?=Cannot )")


class CliError(Exception):
    """A failure to report as one line (the message says what went wrong and what to do)."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def api_message(err) -> str:
    """The apiserver's own message of an ApiException (its Status body), else the reason."""
    try:
        body = json.loads(err.body or "")
    except (TypeError, ValueError):
        body = None
    if isinstance(body, dict) and body.get("message"):
        return str(body["message"])
    text = (err.body or "").strip() if isinstance(err.body, str) else ""
    return text or f"{err.status} {err.reason}"


def refusal_line(message: str) -> str:
    """A webhook refusal as the user asked it: without the webhook's and the field's prefix."""
    message = WEBHOOK_PREFIX.sub("", message)
    return "; ".join(FIELD_PREFIX.sub("", part) for part in message.split("; "))


def _api_error(err, args: argparse.Namespace) -> str:
    message = api_message(err)
    target = getattr(args, "target", None)
    where = f" in namespace {target.namespace}" if target is not None else ""
    if err.status == 401:
        return (
            "the Kubernetes API server did not accept the kubeconfig's credentials "
            f"(401 Unauthorized){_context_hint(args)}"
        )
    if err.status == 403:
        return message  # the apiserver names the user, the verb, the resource, the namespace
    if err.status == 404:
        try:
            details = (json.loads(err.body or "") or {}).get("details") or {}
        except (TypeError, ValueError):
            details = {}
        if details.get("kind") == "instances" and details.get("name"):
            return f"instance {details['name']} not found{where}"
        if not details:  # no Status body: the API itself is missing
            return (
                "the API server has no compute.kubenova.io/v1alpha1 API: are the kubenova "
                "CRDs installed (kubenova crds; kubectl apply -f crds/)?"
            )
        return message
    if WEBHOOK_PREFIX.match(message):
        return refusal_line(message)
    return message


def _context_hint(args: argparse.Namespace) -> str:
    target = getattr(args, "target", None)
    return f" (kubeconfig {target.kubeconfig})" if target is not None else ""


def _connection_error(err) -> str:
    reason = getattr(err, "reason", None) or err
    text = str(reason)
    found = re.search(r"\[Errno -?\d+\] ([^')\"]+)", text)
    why = found.group(1).strip() if found else text
    pool = getattr(err, "pool", None)
    where = f"{pool.scheme}://{pool.host}:{pool.port}" if pool is not None else "the API server"
    return f"cannot reach the Kubernetes API server at {where}: {why}"


def describe(exc: BaseException, args: argparse.Namespace) -> str | None:
    """The one line for an exception a user can meet; None for a bug."""
    from kubernetes.client import ApiException
    from kubernetes.config import ConfigException
    from pydantic import ValidationError
    from urllib3.exceptions import HTTPError as Urllib3Error
    from yaml import YAMLError

    if isinstance(exc, CliError):
        return str(exc)
    if isinstance(exc, ApiException):
        return _api_error(exc, args)
    if isinstance(exc, ConfigException):
        return f"kubeconfig: {exc}"
    if isinstance(exc, Urllib3Error):
        return _connection_error(exc)
    if isinstance(exc, (ValidationError, YAMLError)):
        return f"invalid configuration: {exc}"
    if isinstance(exc, OSError):
        return f"{exc.strerror or exc}{': ' + exc.filename if exc.filename else ''}"
    return None


def _where(exc: BaseException) -> str:
    """Where a bug was raised (the innermost frame), so one line still points at it."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return ""
    frame = frames[-1]
    return f" at {Path(frame.filename).name}:{frame.lineno}"


def guarded(func: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Run a command; report any failure as one line `error: ...` on stderr."""
    try:
        return func(args)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if os.environ.get("KUBENOVA_DEBUG"):
            raise
        line = describe(exc, args)
        code = exc.code if isinstance(exc, CliError) else 1
        if line is None:
            line = (
                f"internal error: {type(exc).__name__}: {exc}{_where(exc)} "
                "(KUBENOVA_DEBUG=1 shows the traceback)"
            )
        print(f"error: {' '.join(line.split())}", file=sys.stderr)
        return code
