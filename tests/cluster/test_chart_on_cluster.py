"""The chart with its defaults on a real kubelet (issue 12): the operator in its Pods (two
replicas, one leader), the example instance a QEMU pod under the kubelet, its console read with
`kubenova console` through the API, the boot-latency histogram scraped by a real Prometheus
from the operator's Service endpoints, power actions on the pod driver shown by the guest's
console, a leader killed during a boot, and `helm uninstall` leaving nothing.

The tests run in file order and share one install (the `chart` fixture).
"""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from kubenova.devcluster.cluster import free_port
from kubenova.devcluster.process import ManagedProcess
from kubenova.tools import find_tool
from kubenova.virt.cluster import INSTANCE_UID_LABEL
from tests.cluster.conftest import (
    CLUSTER_SCOPED_LEFTOVERS,
    NAMESPACE,
    NODE,
    RELEASE,
    REPO,
    TENANT,
    Cluster,
)
from tests.kit import wait_for

pytestmark = pytest.mark.cluster

BOOT_LINE = "kubenova-guest booted hostname="
ACPI_LINE = "kubenova-guest powering off"


def instance(c: Cluster, name: str) -> dict:
    return c.get("-n", TENANT, "instance", name)


def state(c: Cluster, name: str) -> tuple[str, str | None]:
    status = instance(c, name).get("status") or {}
    return status.get("vmState"), status.get("taskState")


def wait_state(c: Cluster, name: str, vm_state: str, timeout: float = 300) -> dict:
    def reached():
        obj = instance(c, name)
        status = obj.get("status") or {}
        if status.get("vmState") == "ERROR":
            raise AssertionError(f"{name} went ERROR: {status.get('fault')}")
        return obj if (status.get("vmState"), status.get("taskState")) == (vm_state, None) else None

    return wait_for(reached, timeout, f"{name} {vm_state}", interval=1)


def vm_pods(c: Cluster, uid: str) -> list[dict]:
    pods = c.get("pods", "-A", "-l", f"{INSTANCE_UID_LABEL}={uid}")["items"]
    return [p for p in pods if not p["metadata"].get("deletionTimestamp")]


def booted_pod(c: Cluster, uid: str, timeout: float = 180) -> dict:
    """The instance's one pod once Ready: the launcher's readiness follows the guest's boot."""

    def ready():
        pods = vm_pods(c, uid)
        conditions = {
            k["type"]: k["status"] for p in pods for k in p["status"].get("conditions") or []
        }
        return pods[0] if len(pods) == 1 and conditions.get("Ready") == "True" else None

    return wait_for(ready, timeout, "the instance's pod Ready (the guest booted)", interval=1)


def console(c: Cluster, name: str) -> str:
    return c.kubenova(
        "console", name, "-n", TENANT, "--operator-namespace", NAMESPACE, timeout=60
    ).stdout


def operator_pods(c: Cluster) -> list[dict]:
    return c.get("-n", NAMESPACE, "pods", "-l", "app.kubernetes.io/name=kubenova")["items"]


def leader(c: Cluster) -> str:
    leases = c.get("-n", NAMESPACE, "leases")["items"]
    holders = [(lease.get("spec") or {}).get("holderIdentity") or "" for lease in leases]
    pods = [p["metadata"]["name"] for p in operator_pods(c)]
    found = [p for p in pods if any(h == p or h.startswith(f"{p}_") for h in holders)]
    assert len(found) == 1, f"leases {holders}, pods {pods}"
    return found[0]


@pytest.fixture(scope="module")
def demo(chart: Cluster) -> dict:
    return wait_state(chart, "demo", "ACTIVE")


# -- the tests -------------------------------------------------------------------------------
def test_example_runs_as_a_qemu_pod_under_the_kubelet(chart: Cluster, demo: dict):
    node = chart.get("node", NODE)
    assert node["status"]["nodeInfo"]["containerRuntimeVersion"].startswith("containerd://")
    ready = {c["type"]: c["status"] for c in demo["status"]["conditions"]}
    assert ready.get("Ready") == "True", demo["status"]["conditions"]
    (pod,) = vm_pods(chart, demo["metadata"]["uid"])
    assert pod["spec"]["nodeName"] == NODE == demo["status"]["host"]
    assert pod["status"]["phase"] == "Running"
    (container,) = pod["status"]["containerStatuses"]
    assert container["containerID"].startswith("containerd://") and container["ready"]
    # the operator runs in its pod with its ServiceAccount token (the chart's default: one)
    (operator,) = operator_pods(chart)
    assert operator["status"]["phase"] == "Running"
    assert operator["spec"]["serviceAccountName"] == RELEASE
    assert operator["spec"].get("automountServiceAccountToken") is not False
    # PodSecurity "restricted" is enforced where the operator and the QEMU pods run
    labels = chart.get("namespace", NAMESPACE)["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    assert pod["metadata"]["namespace"] == NAMESPACE


def test_console_through_the_api(chart: Cluster, demo: dict):
    text = wait_for(lambda: (t := console(chart, "demo")) and BOOT_LINE in t and t, 60, "boot")
    assert f"{BOOT_LINE}demo" in text
    # the CA the CLI verifies the endpoint with, published by the operator through the API
    ca = chart.get("-n", NAMESPACE, "configmap", "kubenova-console-ca").get("data") or {}
    assert ca.get("ca.crt", "").startswith("-----BEGIN CERTIFICATE-----"), ca


def test_prometheus_scrapes_the_operator_service(chart: Cluster, demo: dict, tmp_path: Path):
    """Prometheus on the host, discovering the metrics Service's endpoints through the apiserver
    (kubernetes_sd_configs, role endpoints, the port named metrics), as a ServiceMonitor does;
    upstream's build (hack/build-cluster.sh): Debian's has no Kubernetes discovery."""
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        "  - job_name: kubenova\n"
        "    kubernetes_sd_configs:\n"
        f"      - {{role: endpoints, kubeconfig_file: {chart.kubeconfig},"
        f" namespaces: {{names: [{NAMESPACE}]}}}}\n"
        "    relabel_configs:\n"
        "      - {source_labels: [__meta_kubernetes_service_name], regex: "
        f"'{RELEASE}-metrics', action: keep}}\n"
        "      - {source_labels: [__meta_kubernetes_endpoint_port_name], regex: metrics,"
        " action: keep}\n"
    )
    prometheus = ManagedProcess(
        "prometheus",
        [
            find_tool("prometheus-k8s-sd"),
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        tmp_path / "prometheus.log",
    )

    def query(expr: str) -> list[dict]:
        url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        with urllib.request.urlopen(url, timeout=5) as response:
            body = json.loads(response.read())
        assert body["status"] == "success", body
        return body["data"]["result"]

    prometheus.start()
    try:
        expr = "sum(kubenova_instance_create_to_active_seconds_count)"
        result = wait_for(
            lambda: _safe(query, expr), 90, f"{expr} in Prometheus ({tmp_path}/prometheus.log)"
        )
        assert float(result[0]["value"][1]) >= 1
        targets = query('up{job="kubenova"}')
        assert len(targets) == len(operator_pods(chart)), targets
        assert all(t["value"][1] == "1" for t in targets), targets
    finally:
        prometheus.stop()


def _safe(query, expr):
    try:
        return query(expr)
    except OSError:
        return None


def test_power_actions_on_the_pod_driver(chart: Cluster, demo: dict):
    """stop → SHUTOFF (pod gone, disk kept), start → ACTIVE (a new pod on the same claim), soft
    and hard reboot, each seen on the guest's console (`kubenova console`, through the API): a
    restarted pod's console repeats how the earlier run ended (the log is on the kept disk),
    then the new boot, as Nova's console log keeps a reboot's output."""
    uid = demo["metadata"]["uid"]
    first = booted_pod(chart, uid)
    (claim,) = chart.get("pvc", "-A", "-l", f"{INSTANCE_UID_LABEL}={uid}")["items"]

    chart.kubenova("stop", "demo", "-n", TENANT, "--wait", "--timeout", "180")
    stopped = instance(chart, "demo")
    assert (stopped["status"]["vmState"], stopped["status"]["powerState"]) == (
        "STOPPED",
        "SHUTDOWN",
    )
    assert vm_pods(chart, uid) == []

    # each action once the guest is up again (its pod Ready), as a user would
    chart.kubenova("start", "demo", "-n", TENANT, "--wait", "--timeout", "300")
    second = booted_pod(chart, uid)
    assert second["metadata"]["uid"] != first["metadata"]["uid"]
    assert ACPI_LINE in ending_of_the_last_run(chart), "stop: the guest's ACPI handler ran"

    chart.kubenova("reboot", "demo", "-n", TENANT, "--wait", "--timeout", "300")
    third = booted_pod(chart, uid)
    assert third["metadata"]["uid"] != second["metadata"]["uid"]
    assert ACPI_LINE in ending_of_the_last_run(chart), "soft reboot: an ACPI shutdown first"

    chart.kubenova("reboot", "--hard", "demo", "-n", TENANT, "--wait", "--timeout", "300")
    fourth = booted_pod(chart, uid)
    assert fourth["metadata"]["uid"] != third["metadata"]["uid"]
    # hard: the pod deleted with a 1 s grace (the launcher cannot tell it from a stop, so the
    # guest's ACPI handler gets that second before qemu is killed), then a new boot
    assert "again from its kept disk" in console(chart, "demo")
    (still,) = chart.get("pvc", "-A", "-l", f"{INSTANCE_UID_LABEL}={uid}")["items"]
    assert still["metadata"]["uid"] == claim["metadata"]["uid"]  # one disk throughout


def test_a_qemu_pod_deleted_by_hand_is_noticed_and_a_hard_reboot_brings_it_back(
    chart: Cluster, demo: dict
):
    """The kubelet's pod deleted behind the operator's back: the power-state sync finds the VM
    stopped without a stop request (the disk's claim is there) and puts the instance in ERROR
    with Nova's fault; a hard reboot makes the pod again on the kept disk."""
    uid = demo["metadata"]["uid"]
    pod = booted_pod(chart, uid)
    meta = pod["metadata"]
    chart.kubectl("-n", meta["namespace"], "delete", "pod", meta["name"], "--wait=true")

    def errored():
        status = instance(chart, "demo").get("status") or {}
        return status if status.get("vmState") == "ERROR" else None

    status = wait_for(errored, 150, "the power-state sync to notice the pod is gone", interval=1)
    assert "stopped without a stop request" in status["fault"]["message"], status["fault"]
    chart.kubenova("reboot", "--hard", "demo", "-n", TENANT, "--wait", "--timeout", "300")
    again = booted_pod(chart, uid)
    assert again["metadata"]["uid"] != meta["uid"]
    assert instance(chart, "demo")["status"].get("fault") is None
    assert "again from its kept disk" in console(chart, "demo")


def ending_of_the_last_run(c: Cluster) -> str:
    """The console between the last two boot announcements: how the run before this boot
    ended. Read once this boot is on the console, started again from the kept disk."""
    text = wait_for(lambda: (t := console(c, "demo")).count(BOOT_LINE) >= 2 and t, 60, "two boots")
    assert "again from its kept disk" in text, text[-3000:]
    *_, before, _last = text.split(f"{BOOT_LINE}demo")
    return before


def test_leader_killed_during_a_boot_the_other_replica_finishes_it(chart: Cluster):
    """Two replicas (leader election on; the state on an emptyDir: a ReadWriteOnce claim
    mounts on one node only), the leader's pod force-deleted while an instance boots."""
    chart.run(
        "helm", "upgrade", RELEASE, str(REPO / "charts/kubenova"), "-n", NAMESPACE,
        "--reuse-values", "--set", "replicas=2", "--set", "leaderElection.enabled=true",
        "--set", "persistence.enabled=false", "--set", "admission.enabled=true",
        "--wait", "--timeout", "5m",
    )  # fmt: skip
    wait_for(lambda: len(operator_pods(chart)) == 2 and _leader_or_none(chart), 120, "2 replicas")
    first = leader(chart)
    # the webhook, served from the pods: a missing flavor is refused at apply time
    bad = (REPO / "examples/instance.yaml").read_text().replace("name: demo", "name: nope")
    bad = bad.replace("flavor: m1.tiny", "flavor: m1.nope")
    # (server-side dry runs: every try reaches admission, and nothing is created meanwhile)
    dry_run = ("-n", TENANT, "create", "--dry-run=server", "-f", "-")
    refused = wait_for(
        lambda: (
            (r := chart.kubectl(*dry_run, input=bad, check=False))
            and r.returncode != 0
            and "m1.nope" in r.stderr
            and r
        ),
        60,
        "the webhook to refuse a missing flavor",
    )
    assert "denied the request" in refused.stderr, refused.stderr
    manifest = (REPO / "examples/instance.yaml").read_text().replace("name: demo", "name: failover")
    chart.kubectl("-n", TENANT, "apply", "-f", "-", input=manifest)
    wait_for(lambda: state(chart, "failover")[0] == "BUILDING", 60, "failover BUILDING")
    chart.kubectl("-n", NAMESPACE, "delete", "pod", first, "--grace-period=0", "--force")
    started = time.monotonic()
    active = wait_state(chart, "failover", "ACTIVE", timeout=300)
    print(f"failover: ACTIVE {time.monotonic() - started:.1f}s after the leader was killed")
    second = wait_for(lambda: _leader_or_none(chart), 60, "a new leader")
    assert second != first
    assert len(vm_pods(chart, active["metadata"]["uid"])) == 1
    chart.kubectl("-n", TENANT, "delete", "instance", "failover", "--wait=true", timeout=300)
    assert vm_pods(chart, active["metadata"]["uid"]) == []


def _leader_or_none(c: Cluster) -> str | None:
    try:
        return leader(c)
    except AssertionError:
        return None


def test_helm_uninstall_removes_everything(chart: Cluster, demo: dict):
    uid = demo["metadata"]["uid"]
    chart.kubectl("-n", TENANT, "delete", "instance", "demo", "--wait=true", timeout=300)
    assert vm_pods(chart, uid) == []
    # the disk's claim goes once no pod uses it (pvc-protection), its folder with it
    wait_for(
        lambda: not chart.get("pvc", "-A", "-l", f"{INSTANCE_UID_LABEL}={uid}")["items"],
        120,
        "the instance's claim to be deleted",
    )
    chart.run("helm", "uninstall", RELEASE, "-n", NAMESPACE, "--wait")
    started = time.monotonic()
    # the operator's pods belong to its ReplicaSet, not to Helm: they stop in their own time
    wait_for(lambda: not operator_pods(chart), 120, "the operator's pods to be gone")
    print(f"operator pods gone {time.monotonic() - started:.1f}s after helm uninstall returned")
    for kind in CLUSTER_SCOPED_LEFTOVERS:
        names = [o["metadata"]["name"] for o in chart.get(kind)["items"]]
        assert not [n for n in names if "kubenova" in n and not n.startswith("kubenova:local")], (
            kind,
            names,
        )
    left = chart.get("-n", NAMESPACE, "all,configmaps,secrets,pvc,leases,roles,rolebindings")
    ours = [
        f"{o['kind']}/{o['metadata']['name']}"
        for o in left["items"]
        if not o["metadata"]["name"].startswith("kubenova-guest")  # the demo's, not the chart's
        and (
            (o["metadata"].get("labels") or {}).get("app.kubernetes.io/instance") == RELEASE
            or o["metadata"]["name"].startswith(RELEASE + "-")
        )
    ]
    # Left on purpose: the state claim (persistence.keepOnUninstall: volumes' data outlives the
    # release, as the chart documents). The Lease is the chart's, so it went with the release.
    assert ours == [f"PersistentVolumeClaim/{RELEASE}-state"], ours
    chart.kubectl("-n", NAMESPACE, "delete", "pvc", f"{RELEASE}-state", "--wait=true")
