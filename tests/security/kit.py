"""What the attacker's tests share: who is acting (a user with real credentials), the two
projects, and how a refusal is taken apart and recorded."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from kubernetes import client

from kubenova.console.client import ConsoleClient, ConsoleError, credentials
from tests.kit import wait_for


@dataclass
class SecurityOperator:
    state_dir: Path
    log: Path
    console_url: str

    @property
    def console_ca(self) -> Path:
        return self.state_dir / "console" / "ca.crt"


# -- who -------------------------------------------------------------------------------------
@dataclass
class User:
    """Someone with credentials: the name the apiserver sees and a client as them."""

    name: str
    kubeconfig: Path
    api: client.ApiClient = field(repr=False)

    @property
    def custom(self) -> client.CustomObjectsApi:
        return client.CustomObjectsApi(self.api)

    def console(self, url: str, ca: Path) -> ConsoleClient:
        """`kubenova console`'s client as this user (the kubeconfig's certificate or token)."""
        return ConsoleClient(url, ca, credentials(str(self.kubeconfig)))


@dataclass
class Projects:
    a: str
    b: str
    alice: User
    """member of A, client certificate (group a-members)"""
    robot: User
    """member of A, ServiceAccount token (system:serviceaccount:A:robot)"""
    carol: User
    """viewer of A, client certificate (group a-viewers)"""
    peeker: User
    """viewer of A, ServiceAccount token"""
    bob: User
    """member of B, client certificate (group b-members): the victim"""
    mallory: User
    """authenticated, in no project"""

    @property
    def attackers(self) -> list[User]:
        """Members of A, one per kind of credential."""
        return [self.alice, self.robot]


# -- refusals --------------------------------------------------------------------------------
ATTACKS: list[tuple[str, str]] = []
"""(what was tried, the refusal's message), in the order tried: printed at the end (-s)."""


def refusal(what: str, call: Callable[[], object]) -> tuple[int, str]:
    """The HTTP status and message of a request the apiserver refused; recorded."""
    try:
        call()
    except client.ApiException as err:
        try:
            message = json.loads(err.body)["message"]
        except (TypeError, ValueError, KeyError):
            message = err.body or err.reason
        ATTACKS.append((what, f"{err.status} {message}"))
        return err.status, message
    raise AssertionError(f"{what}: the request was accepted")


def refused_once_seen(what: str, create: Callable[..., object], expected: str) -> tuple[int, str]:
    """The refusal of `create(**extra)` once the webhook's watch has seen what it checks
    against (a Quota just written): dry runs until then, so an early acceptance creates
    nothing."""

    def seen() -> bool:
        try:
            create(dry_run="All")
        except client.ApiException as err:
            return expected in (err.body or "")
        return False

    wait_for(seen, 15, f"the webhook to refuse with {expected!r}")
    return refusal(what, create)


def console_refusal(what: str, read: Callable[[], object]) -> tuple[int | None, str]:
    """The status and message of a refused console read; recorded."""
    try:
        read()
    except ConsoleError as err:
        ATTACKS.append((what, str(err)))
        return err.status, str(err)
    raise AssertionError(f"{what}: the console was read")
