"""The API permissions the operator needs, checked at start-up.

One list, by what this operator runs (its driver, its embedded hosts, admission): the Helm
chart's RBAC grants exactly these (tests/unit/test_chart_template.py compares the two for every
driver), and an operator started without one of them stops at once with a message naming each
missing permission and why it is needed, instead of failing later with a 403 deep inside a
build. The check asks the apiserver itself (SelfSubjectAccessReview, which every authenticated
user may create), so it holds whatever grants them: RBAC, a webhook authorizer, system:masters.

Keep it in step with the code: a new API call needs its rule here and in
charts/kubenova/templates/rbac.yaml.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp
from kubernetes_asyncio import client

from kubenova import GROUP, WEBHOOK_CONFIGURATION
from kubenova.compute.registration import LEASE_NAMESPACE
from kubenova.kube.client import ApiException
from kubenova.models.v1alpha1 import KINDS

log = logging.getLogger("kubenova.permissions")

#: Every kind of compute.kubenova.io: the operator is their controller and reads them all.
PLURALS = tuple(kind.crd.plural for kind in KINDS)


@dataclass(frozen=True, order=True)
class Permission:
    """One verb on one resource (`plural` or `plural/subresource`), in one namespace ("" = all
    of them, or a cluster-scoped resource), on one object ("" = any)."""

    group: str
    resource: str
    verb: str
    namespace: str = ""
    name: str = ""

    def __str__(self) -> str:
        text = f"{self.verb} {self.resource}"
        if self.group:
            text += f" ({self.group})"
        if self.name:
            text += f" named {self.name}"
        if self.namespace:
            text += f" in namespace {self.namespace}"
        return text

    def review(self) -> dict[str, Any]:
        """A SelfSubjectAccessReview asking for this permission."""
        resource, _, subresource = self.resource.partition("/")
        attributes = {"group": self.group, "resource": resource, "verb": self.verb}
        if subresource:
            attributes["subresource"] = subresource
        if self.namespace:
            attributes["namespace"] = self.namespace
        if self.name:
            attributes["name"] = self.name
        return {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": attributes},
        }


@dataclass(frozen=True)
class Rule:
    """What an RBAC PolicyRule says (verbs on resources, maybe on named objects only), where it
    applies ("" = cluster-wide, in a ClusterRole; else a Role in that namespace), and why."""

    group: str
    resources: tuple[str, ...]
    verbs: tuple[str, ...]
    why: str
    names: tuple[str, ...] = ()
    namespace: str = ""

    def permissions(self) -> Iterator[tuple[Permission, str]]:
        for resource in self.resources:
            for verb in self.verbs:
                for name in self.names or ("",):
                    yield Permission(self.group, resource, verb, self.namespace, name), self.why


def rules(config: Any) -> list[Rule]:
    """The operator's rules for `config` (an OperatorConfig: driver, hosts, vm_namespace,
    admission)."""
    driver = config.driver
    vm_namespace = getattr(config, "vm_namespace", None) or ""
    found = [
        Rule(
            "",
            ("events",),
            ("create", "get", "patch"),
            "the operator posts events about the objects it handles and counts their repeats",
        ),
        Rule(
            GROUP,
            PLURALS,
            ("get", "list", "watch"),
            "the handlers, the indexes and the build read compute.kubenova.io objects",
        ),
        Rule(
            GROUP,
            ("instances", "images", "networks", "volumes", "keypairs"),
            ("patch",),
            "kopf keeps its finalizer and progress annotations on the objects it handles",
        ),
        Rule(
            GROUP,
            (
                "instances/status",
                "images/status",
                "networks/status",
                "ports/status",
                "volumes/status",
                "keypairs/status",
                "quotas/status",
            ),
            ("patch",),
            "the operator is the only writer of status (instance states, image import, IPAM "
            "counts, port binding, volume attachment, keypair fingerprint, quota usage)",
        ),
        Rule(
            GROUP,
            ("resourceproviders",),
            ("create", "update", "patch"),
            "placement: one ResourceProvider per compute Node; a claim is written with a "
            "resourceVersion precondition, a release is a merge patch",
        ),
        Rule(
            GROUP,
            ("ports",),
            ("create", "delete"),
            "IPAM: one Port per NIC, named after its network and address",
        ),
        Rule(GROUP, ("quotas",), ("create",), "a namespace without a Quota gets Nova's defaults"),
        Rule(
            "",
            ("nodes", "pods"),
            ("list", "watch"),
            "compute hosts are Nodes; pods bound to them use room as claims do",
        ),
    ]
    if driver == "pod":
        found += [
            Rule("", ("nodes",), ("get",), "the pod driver reads the host's KVM label"),
            Rule(
                "",
                ("pods",),
                ("get", "create", "delete"),
                "the pod driver runs each VM as a QEMU pod",
                namespace=vm_namespace,
            ),
            Rule(
                "",
                ("pods/log",),
                ("get",),
                "the QEMU pod's log is the guest's serial console",
                namespace=vm_namespace,
            ),
        ]
        if getattr(config, "pod_disk", "pvc") == "pvc":
            found.append(
                Rule(
                    "",
                    ("persistentvolumeclaims",),
                    ("get", "list", "create", "delete"),
                    "the pod driver keeps each VM's disk in a PersistentVolumeClaim, so it "
                    "outlives the pod (stop, start, reboot)",
                    namespace=vm_namespace,
                )
            )
    if driver == "kubevirt":
        found += [
            Rule(
                "kubevirt.io",
                ("virtualmachineinstances",),
                ("get", "list", "create", "delete"),
                "the kubevirt driver runs each VM as a VirtualMachineInstance",
                namespace=vm_namespace,
            ),
            Rule(
                "",
                ("pods/log",),
                ("get",),
                "the virt-launcher pod's log is the guest's serial console",
                namespace=vm_namespace,
            ),
        ]
    # host failure (issue 7 part 4): every compute host's heartbeat is judged from its Lease
    found.append(
        Rule(
            "coordination.k8s.io",
            ("leases",),
            ("list",),
            "a compute host whose heartbeat (its Lease) stops is down (conductor/hosts.py)",
            namespace=LEASE_NAMESPACE,
        )
    )
    hosts = tuple(config.host_names())
    if hosts:
        found += [
            Rule("", ("nodes",), ("create",), "embedded compute hosts register as Nodes"),
            Rule(
                "",
                ("nodes", "nodes/status"),
                ("patch",),
                "embedded compute hosts keep their labels and Ready condition",
                names=hosts,
            ),
            Rule(
                "coordination.k8s.io",
                ("leases",),
                ("create",),
                "each embedded host's heartbeat is a Lease",
                namespace=LEASE_NAMESPACE,
            ),
            Rule(
                "coordination.k8s.io",
                ("leases",),
                ("patch",),
                "each embedded host's heartbeat is a Lease",
                names=hosts,
                namespace=LEASE_NAMESPACE,
            ),
        ]
    if getattr(config, "console_listen", None):
        found += [
            Rule(
                "authentication.k8s.io",
                ("tokenreviews",),
                ("create",),
                "the console endpoint checks a caller's bearer token with the apiserver",
            ),
            Rule(
                "authorization.k8s.io",
                ("subjectaccessreviews",),
                ("create",),
                "the console endpoint asks whether the caller may get instances/console",
            ),
        ]
        if not getattr(config, "console_client_ca", None):
            found.append(
                Rule(
                    "",
                    ("configmaps",),
                    ("get",),
                    "the console endpoint accepts client certificates of the cluster's client CA",
                    names=("extension-apiserver-authentication",),
                    namespace="kube-system",
                )
            )
    if getattr(config, "admission", False):
        found += [
            Rule(
                "admissionregistration.k8s.io",
                ("validatingwebhookconfigurations",),
                ("create",),
                "kopf creates the webhook configuration",
            ),
            Rule(
                "admissionregistration.k8s.io",
                ("validatingwebhookconfigurations",),
                ("patch",),
                "kopf keeps the webhook configuration up to date",
                names=(WEBHOOK_CONFIGURATION,),
            ),
        ]
    found += _leader_election_rules(config)
    if getattr(config, "console_listen", None) and getattr(config, "console_ca_configmap", False):
        found += _console_ca_rules()
    return found


def _console_ca_rules() -> list[Rule]:
    """The console's CA published in the pod's namespace (console/server.py)."""
    from kubenova.console.forward import CA_CONFIGMAP
    from kubenova.leader import default_namespace

    namespace = default_namespace()
    why = "the console publishes its CA, which `kubenova console` reads through the API"
    return [
        Rule("", ("configmaps",), ("create",), why, namespace=namespace),
        Rule("", ("configmaps",), ("get", "update"), why, (CA_CONFIGMAP,), namespace),
    ]


def _leader_election_rules(config: Any) -> list[Rule]:
    """The Lease (and the shared webhook CA Secret) in the Lease's namespace (leader.py)."""
    election = getattr(config, "leader_election", None)
    if election is None or not election.enabled:
        return []
    from kubenova.leader import default_namespace

    namespace = election.namespace or default_namespace()
    found = [
        Rule(
            "coordination.k8s.io",
            ("leases",),
            ("create",),
            "leader election: the first replica creates the Lease",
            namespace=namespace,
        ),
        Rule(
            "coordination.k8s.io",
            ("leases",),
            ("get", "update"),
            "leader election: replicas read the Lease; its holder renews and releases it",
            names=(election.lease_name,),
            namespace=namespace,
        ),
    ]
    if getattr(config, "admission", False) and getattr(config, "webhook_ca_secret", None):
        found.append(
            Rule(
                "",
                ("secrets",),
                ("get", "update"),
                "every replica's webhook certificate comes from the one CA in this Secret",
                names=(config.webhook_ca_secret,),
                namespace=namespace,
            )
        )
    return found


def required(config: Any) -> dict[Permission, str]:
    """Every permission the operator needs with `config`, and why."""
    return {perm: why for rule in rules(config) for perm, why in rule.permissions()}


def expand(rbac_rules: Iterable[dict[str, Any]], namespace: str = "") -> set[Permission]:
    """The permissions RBAC PolicyRules (as in a ClusterRole, or a Role in `namespace`) grant,
    for the kinds of rules this module writes (no wildcards, no nonResourceURLs)."""
    granted = set()
    for rule in rbac_rules:
        for group in rule.get("apiGroups") or ():
            for resource in rule.get("resources") or ():
                for verb in rule.get("verbs") or ():
                    for name in rule.get("resourceNames") or ("",):
                        granted.add(Permission(group, resource, verb, namespace, name))
    return granted


class NotVerified(Exception):
    """The operator may not run: its permissions are lacking or could not be checked.
    `summary` is one line for the start-up failure; str() the whole explanation."""

    summary: str


class MissingPermissions(NotVerified):
    def __init__(self, who: str, missing: dict[Permission, str]) -> None:
        self.who, self.missing = who, missing
        self.summary = f"missing {len(missing)} permission(s); see above"
        lines = [f"  - {perm}: {why}" for perm, why in sorted(missing.items())]
        super().__init__(
            f"{who} lacks {len(missing)} permission(s) the operator needs:\n"
            + "\n".join(lines)
            + "\nGrant them (the Helm chart's RBAC has exactly these: "
            "charts/kubenova/templates/rbac.yaml), then restart the operator."
        )


class CheckFailed(NotVerified):
    """The SelfSubjectAccessReviews themselves failed: fail closed, with the reason (running
    unchecked would only defer the failure to a 403 in the middle of some build)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        self.summary = f"could not check the operator's permissions: {reason}"
        super().__init__(
            f"{self.summary}\nThe operator asks the apiserver (SelfSubjectAccessReview, allowed to "
            "every authenticated user by the system:basic-user ClusterRole) whether it may do "
            "what it needs, and does not start unless it gets an answer. Check that the "
            "apiserver is reachable and that the ClusterRoleBinding system:basic-user exists, "
            "then restart the operator."
        )


async def _allowed(authz: client.AuthorizationV1Api, perm: Permission) -> bool:
    review = await authz.create_self_subject_access_review(perm.review())
    if review.status is None:
        raise CheckFailed(f"SelfSubjectAccessReview for {perm} came back without a status")
    return bool(review.status.allowed)


async def whoami(api: client.ApiClient) -> str:
    """The authenticated user's name (SelfSubjectReview), or a generic phrase."""
    try:
        review = await client.AuthenticationV1Api(api).create_self_subject_review(
            {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
        )
        return f'user "{review.status.user_info.username}"'
    except (ApiException, AttributeError):
        return "the operator's credentials"


async def missing(api: client.ApiClient, wanted: dict[Permission, str]) -> dict[Permission, str]:
    authz = client.AuthorizationV1Api(api)
    perms = list(wanted)
    answers = await asyncio.gather(*(_allowed(authz, p) for p in perms))
    return {p: wanted[p] for p, ok in zip(perms, answers, strict=True) if not ok}


async def verify(api: client.ApiClient, config: Any) -> None:
    """Raise MissingPermissions unless the operator may do everything `config` needs, and
    CheckFailed when the reviews themselves fail (refused, unreachable apiserver, no answer):
    the check fails closed."""
    wanted = required(config)
    try:
        lacking = await missing(api, wanted)
    except ApiException as err:
        detail = f" ({err.body.strip()[:300]})" if isinstance(err.body, str) and err.body else ""
        raise CheckFailed(
            f"SelfSubjectAccessReview answered {err.status} {err.reason}{detail}"
        ) from None
    except (aiohttp.ClientError, OSError, TimeoutError) as err:
        raise CheckFailed(f"SelfSubjectAccessReview failed: {type(err).__name__}: {err}") from None
    if lacking:
        raise MissingPermissions(await whoami(api), lacking)
    log.info("permissions checked: all %d the operator needs are granted", len(wanted))
