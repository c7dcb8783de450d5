"""Shared fixtures: one real etcd + kube-apiserver per test session, with the CRDs.

Started lazily: a run of only the unit tests starts nothing.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kubernetes import client, config

from kubenova.devcluster import DevCluster
from kubenova.kube.crds import install_crds
from kubenova.models.v1alpha1 import KINDS
from kubenova.tools import find_tool
from tests import event_reasons
from tests.event_reasons import (  # noqa: F401  (the check's hooks, registered with this conftest)
    pytest_deselected,
    pytest_sessionfinish,
    pytest_terminal_summary,
)

Kubectl = Callable[..., subprocess.CompletedProcess]


@pytest.fixture(scope="session")
def cluster() -> Iterator[DevCluster]:
    """The control plane, its Events' reasons recorded for the suite's check
    (tests/event_reasons.py)."""
    with DevCluster() as dev, event_reasons.CHECK.watching(dev.kubeconfig):
        yield dev


@pytest.fixture(scope="session")
def api(cluster: DevCluster) -> Iterator[client.ApiClient]:
    with config.new_client_from_config(str(cluster.kubeconfig)) as api_client:
        yield api_client


@pytest.fixture(scope="session")
def crds(api: client.ApiClient) -> list[str]:
    return install_crds(api, KINDS)


@pytest.fixture
def namespace(api: client.ApiClient, crds: list[str]) -> Iterator[str]:
    """A fresh namespace (a project) per test."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    core = client.CoreV1Api(api)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    core.delete_namespace(name)


@pytest.fixture(scope="session")
def kubectl(cluster: DevCluster) -> Kubectl:
    """Run the kubectl `make setup` built; `kubeconfig=` picks another user."""
    binary = find_tool("kubectl")

    def run(*args: str, kubeconfig: Path | None = None, stdin: str | None = None):
        return subprocess.run(
            [binary, f"--kubeconfig={kubeconfig or cluster.kubeconfig}", *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    run.binary = binary
    return run
