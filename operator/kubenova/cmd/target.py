"""Which cluster, user and namespace a command talks to, found the way kubectl finds them:
`--kubeconfig`, else $KUBECONFIG (a list of files, merged), else ~/.kube/config; `--context`,
else the current context; `-n/--namespace`, else the context's namespace, else `default`."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path

from kubenova.cmd.errors import CliError

DEFAULT_KUBECONFIG = Path("~/.kube/config")


def add_target_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags every command that talks to a cluster takes (one spelling for all)."""
    parser.add_argument(
        "-n", "--namespace", help="default: the kubeconfig context's namespace, else default"
    )
    parser.add_argument("--kubeconfig", help="default: $KUBECONFIG, else ~/.kube/config")
    parser.add_argument("--context", help="default: the kubeconfig's current context")


@dataclass(frozen=True)
class Target:
    kubeconfig: str
    """One path, or several joined with os.pathsep (merged, as $KUBECONFIG is)."""
    context: str | None
    namespace: str

    def api_client(self):
        """A blocking Kubernetes client (the CLI runs no event loop)."""
        from kubernetes import config

        return config.new_client_from_config(config_file=self.kubeconfig, context=self.context)


def kubeconfig_files(given: str | None) -> tuple[str, list[Path]]:
    """The kubeconfig spelling to pass on and the files it names that exist."""
    spelled = given or os.environ.get("KUBECONFIG") or str(DEFAULT_KUBECONFIG)
    paths = [Path(p).expanduser() for p in spelled.split(os.pathsep) if p]
    return spelled, [p for p in paths if p.is_file()]


def context_namespace(kubeconfig: str, context: str | None) -> str | None:
    from kubernetes import config

    contexts, active = config.list_kube_config_contexts(config_file=kubeconfig)
    if context:
        chosen = next((c for c in contexts if c["name"] == context), None)
        if chosen is None:
            names = ", ".join(c["name"] for c in contexts) or "none"
            raise CliError(f"context {context!r} is not in the kubeconfig (it has: {names})")
    else:
        chosen = active
    return ((chosen or {}).get("context") or {}).get("namespace")


def resolve(args: argparse.Namespace) -> Target:
    """The target of `args`; a missing kubeconfig is a CliError that names where it looked."""
    spelled, found = kubeconfig_files(getattr(args, "kubeconfig", None))
    if not found:
        source = (
            "--kubeconfig"
            if getattr(args, "kubeconfig", None)
            else "$KUBECONFIG"
            if os.environ.get("KUBECONFIG")
            else "the default"
        )
        raise CliError(
            f"no kubeconfig: {spelled} ({source}) does not exist; pass --kubeconfig FILE or "
            "set KUBECONFIG"
        )
    context = getattr(args, "context", None)
    namespace = getattr(args, "namespace", None) or context_namespace(spelled, context)
    target = Target(spelled, context, namespace or "default")
    args.target = target  # the error handler names the namespace in a 404
    return target
