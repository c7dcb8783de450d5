"""The chart's ClusterRole is enough: the operator, run with the chart's own arguments and a
token of the chart's ServiceAccount, takes an instance through the whole boot flow to a real
QEMU guest and deletes it again.

The dev control plane has no controller-manager, scheduler or kubelet, so the Deployment the
chart installs never gets a pod; the operator runs out of cluster instead, as that pod would
(same arguments, same credentials: a bound token from the TokenRequest API), with the embedded
process driver (the chart's `driver: qemu`), since no kubelet could run a QEMU pod here.
"""

from __future__ import annotations

import urllib.request

import pytest
from kubernetes import client

from kubenova import GROUP, VERSION
from tests.chart import installed, local_operator, service_account_kubeconfig
from tests.e2e.conftest import GUEST, HOST
from tests.kit import all_instances, node_ready, wait_for
from tests.proc import processes_with

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def chart_operator(cluster, api, crds, tmp_path_factory):
    if not GUEST.exists():
        pytest.fail(f"{GUEST} is missing: `make setup` builds it")
    work = tmp_path_factory.mktemp("chart-operator")
    with installed(cluster, api, {"driver": "qemu", "embedded.hosts": 1}) as release:
        kubeconfig = service_account_kubeconfig(
            cluster, api, release.namespace, release.service_account, work / "kubeconfig"
        )
        process, health = local_operator(release.objects(), work, kubeconfig)
        process.start()
        try:
            wait_for(lambda: node_ready(api, HOST), 60, f"{HOST} to register")
            yield process, health, work / "state", work / "operator.log"
        finally:
            # Delete through the operator (its finalizer), then stop it.
            custom = client.CustomObjectsApi(api)
            for inst in all_instances(api):
                meta = inst["metadata"]
                custom.delete_namespaced_custom_object(
                    GROUP, VERSION, meta["namespace"], "instances", meta["name"]
                )
            try:
                wait_for(lambda: not all_instances(api), 120, "instances to be deleted")
            finally:
                process.stop()
    assert processes_with("qemu-system", str(work / "state")) == []


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def test_chart_service_account_boots_an_instance(chart_operator, boot, kubectl):
    process, health, state, log = chart_operator
    # The probes' endpoint (kopf's /healthz) answers once start-up, and its permission check,
    # passed.
    wait_for(lambda: healthy(health), 30, "the operator's health endpoint")
    assert "permissions checked: all" in log.read_text()

    uid = boot.instance("rbac-1")["metadata"]["uid"]
    waited = kubectl(
        "wait", "--for=condition=Ready", "instance/rbac-1", "-n", boot.namespace, "--timeout=180s"
    )
    assert waited.returncode == 0, waited.stderr + process.log_tail(60)
    status = boot.get("rbac-1")["status"]
    assert (status["vmState"], status["powerState"], status["host"]) == ("ACTIVE", "RUNNING", HOST)
    console = (state / HOST / "instances" / uid / "console.log").read_text(errors="replace")
    assert f"kubenova-guest booted hostname=rbac-1 instance-id={uid}" in console

    boot.delete("rbac-1")
    boot.wait_gone("rbac-1")
    assert processes_with("qemu-system", uid) == []
    # An RBAC refusal names the ServiceAccount ("User ... cannot <verb> resource ..."); other
    # 403s (events in namespaces that earlier tests left terminating) are not about the role.
    denied = [line for line in log.read_text().splitlines() if "system:serviceaccount:" in line]
    assert denied == [], "\n".join(denied[:5])
