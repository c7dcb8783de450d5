"""Leader election (issue 12 part 6) with real operators on the real apiserver: two replicas, one
active (the holder of a Lease), the admission webhook served by both; killing the active one
hands over within the lease duration with no duplicate VM; a SIGTERM hands over at once.

The operators are `kubenova operator --leader-elect` processes with the QEMU pod driver: a VM
is a Pod object, so what the killed leader made is in the apiserver for its successor to find,
and "exactly one VM" is exactly one Pod carrying the instance's uid. The compute host is a kwok
Node whose pods kwok leaves Pending (a `hold` node): the build waits in SPAWNING for the pod to
run, the leader is killed there, and once the successor has taken over the test writes the
pod's status as the kubelet would (Running, Ready), which is when the instance becomes ACTIVE.
Short election timings (lease 6 s, renew deadline 4 s, retry 1 s) keep the test quick; the
rules do not depend on them.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import signal
import ssl
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
from kubernetes import client

from kubenova import GROUP, VERSION
from kubenova.devcluster.cluster import free_port
from kubenova.devcluster.operator_process import OperatorProcess
from kubenova.virt.cluster import INSTANCE_UID_LABEL
from tests.chart import installed, local_operator, service_account_kubeconfig
from tests.cloud import Cloud
from tests.kit import delete_all, image_dir_args, remove_webhooks, wait_for, webhook_answers
from tests.kwok import delete_kwok_nodes, kwok_node, running_kwok, wait_pod

pytestmark = pytest.mark.integration

LEASE, RENEW, RETRY = 6, 4, 1
JITTER = 1.2  # client-go's: a candidate retries every RETRY * (1 + up to JITTER)
LEASE_NAME = "kubenova-test"
CA_SECRET = "kubenova-test-webhook-ca"
HOLD, ZONE = "kwok-leader-hold", "kwok-leader"
POD_IMAGE = "registry.test/kubenova-launcher:test"


class Replica:
    """One `kubenova operator --leader-elect` process, named like a pod (POD_NAME)."""

    def __init__(self, cluster, work: Path, pod: str, namespace: str) -> None:
        self.pod = pod
        self.work = work / pod
        self.work.mkdir(parents=True)
        self.metrics_port, self.health_port = free_port(), free_port()
        self.webhook_port = free_port()
        self.process = OperatorProcess(
            cluster.kubeconfig,
            self.work / "state",
            self.work / "operator.log",
            hosts=0,
            metrics_port=self.metrics_port,
            extra_args=(
                *image_dir_args(self.work),
                "--driver=pod",
                f"--pod-image={POD_IMAGE}",
                "--console-listen=off",
                f"--liveness=http://127.0.0.1:{self.health_port}/healthz",
                "--admission",
                f"--webhook-listen=127.0.0.1:{self.webhook_port}",
                f"--webhook-ca-secret={CA_SECRET}",
                "--leader-elect",
                f"--leader-elect-resource-name={LEASE_NAME}",
                f"--leader-elect-resource-namespace={namespace}",
                f"--leader-elect-lease-duration={LEASE}",
                f"--leader-elect-renew-deadline={RENEW}",
                f"--leader-elect-retry-period={RETRY}",
            ),
        )

    def start(self) -> None:
        self.process.start({**os.environ, "POD_NAME": self.pod})

    def log(self) -> str:
        return (self.work / "operator.log").read_text(errors="replace")

    def leader_metric(self) -> float | None:
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=2
            ) as r:
                text = r.read().decode()
        except OSError:
            return None
        found = re.search(r"^kubenova_leader (\S+)$", text, re.M)
        return float(found.group(1)) if found else None

    def healthy(self) -> bool:
        """kopf's liveness endpoint, the chart's probes' target."""
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.health_port}/healthz", timeout=2
            ) as r:
                return r.status == 200
        except OSError:
            return False


def lease(api, namespace) -> client.V1Lease | None:
    try:
        return client.CoordinationV1Api(api).read_namespaced_lease(LEASE_NAME, namespace)
    except client.ApiException as err:
        if err.status == 404:
            return None
        raise


def holder(api, namespace) -> str:
    found = lease(api, namespace)
    return (found.spec.holder_identity or "") if found else ""


def held_by(api, namespace, replica: Replica) -> bool:
    return holder(api, namespace).startswith(f"{replica.pod}_")


def leading(api, namespace, replica: Replica) -> bool:
    """Holds the Lease and reports it; its webhook and metrics are up."""
    return held_by(api, namespace, replica) and replica.leader_metric() == 1


def standing_by(replica: Replica) -> bool:
    return (
        "standing by with the admission webhook" in replica.log()
        and replica.leader_metric() == 0
        and replica.healthy()
    )


def pods_of(api, namespace, uid) -> list[client.V1Pod]:
    selector = f"{INSTANCE_UID_LABEL}={uid}"
    return client.CoreV1Api(api).list_namespaced_pod(namespace, label_selector=selector).items


def run_pod(api, pod: client.V1Pod) -> None:
    """What the kubelet writes once the QEMU container runs and its readiness probe passes."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    client.CoreV1Api(api).patch_namespaced_pod_status(
        pod.metadata.name,
        pod.metadata.namespace,
        {
            "status": {
                "phase": "Running",
                "conditions": [
                    {"type": "Initialized", "status": "True"},
                    {"type": "Ready", "status": "True"},
                    {"type": "ContainersReady", "status": "True"},
                ],
                "containerStatuses": [
                    {
                        "name": c.name,
                        "image": c.image,
                        "imageID": "",
                        "ready": True,
                        "restartCount": 0,
                        "state": {"running": {"startedAt": stamp}},
                    }
                    for c in pod.spec.containers
                ],
                "startTime": stamp,
            }
        },
    )


def webhook_refuses(replica: Replica, ca_pem: bytes, namespace: str) -> str:
    """An AdmissionReview for an Instance naming a flavor that does not exist, sent straight to
    the replica's webhook (TLS checked against the CA shared in the Secret): its refusal."""
    context = ssl.create_default_context(cadata=ca_pem.decode())
    review = {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": str(uuid.uuid4()),
            "kind": {"group": GROUP, "version": VERSION, "kind": "Instance"},
            "resource": {"group": GROUP, "version": VERSION, "resource": "instances"},
            "requestKind": {"group": GROUP, "version": VERSION, "kind": "Instance"},
            "requestResource": {"group": GROUP, "version": VERSION, "resource": "instances"},
            "name": "probe",
            "namespace": namespace,
            "operation": "CREATE",
            "userInfo": {"username": "test"},
            "object": {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "Instance",
                "metadata": {"name": "probe", "namespace": namespace},
                "spec": {"flavor": "no-such-flavor", "image": "tiny"},
            },
            "oldObject": None,
            "dryRun": True,
            "options": {},
        },
    }
    request = urllib.request.Request(
        f"https://127.0.0.1:{replica.webhook_port}/instance-create",
        data=json.dumps(review).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, context=context, timeout=10) as r:
        answer = json.loads(r.read())["response"]
    assert answer["allowed"] is False, answer
    return answer["status"]["message"]


@pytest.fixture
def kwok_hold_node(cluster, api, tmp_path):
    (tmp_path / "kwok").mkdir()
    with running_kwok(cluster.kubeconfig, tmp_path / "kwok", hold=[HOLD]) as kwok:
        kwok_node(api, HOLD, ZONE)
        try:
            yield kwok
        finally:
            delete_kwok_nodes(api)
            with contextlib.suppress(client.ApiException):
                client.CustomObjectsApi(api).delete_cluster_custom_object(
                    GROUP, VERSION, "resourceproviders", HOLD
                )


@pytest.fixture
def replicas(cluster, api, crds, namespace, kwok_hold_node, tmp_path):
    """A factory of replicas; every one is stopped at the end whatever happened, after the
    instances were deleted through whichever of them leads then."""
    made: list[Replica] = []

    def replica(pod: str) -> Replica:
        one = Replica(cluster, tmp_path, pod, namespace)
        made.append(one)
        one.start()
        return one

    try:
        yield replica
    finally:
        try:
            delete_all(api, "instances")
            alive = [r for r in made if r.process.alive()]
            if alive:
                custom = client.CustomObjectsApi(api)
                with contextlib.suppress(AssertionError):
                    wait_for(
                        lambda: (
                            not custom.list_namespaced_custom_object(
                                GROUP, VERSION, namespace, "instances"
                            )["items"]
                        ),
                        60,
                        "the instances to be deleted",
                    )
        finally:
            for one in made:
                one.process.stop()
            remove_webhooks(api)


def test_one_replica_leads_both_serve_the_webhook_and_the_other_takes_over(
    api, namespace, replicas, tmp_path
):
    core = client.CoreV1Api(api)
    a = replicas("replica-a")
    wait_for(lambda: leading(api, namespace, a), 60, "replica-a to lead")
    b = replicas("replica-b")
    wait_for(lambda: standing_by(b), 60, "replica-b to stand by, Ready, serving its webhook")
    assert held_by(api, namespace, a) and a.leader_metric() == 1, "exactly one holds the Lease"
    wait_for(lambda: webhook_answers(api, namespace), 60, "the apiserver to call the webhook")

    # The webhook is served by both, with the one CA the Secret holds.
    secret = core.read_namespaced_secret(CA_SECRET, namespace)
    ca_pem = base64.b64decode(secret.data["ca.crt"])
    for replica in (a, b):
        assert (replica.work / "state" / "webhook" / "ca.crt").read_bytes() == ca_pem
        assert "no-such-flavor does not exist" in webhook_refuses(replica, ca_pem, namespace)

    # An instance whose build waits in SPAWNING for its VM pod (the hold node) ...
    cloud = Cloud(api, namespace, tmp_path)
    cloud.instance("vm", zone=ZONE)
    uid = cloud.get("vm")["metadata"]["uid"]
    pod = wait_pod(core, namespace, f"{INSTANCE_UID_LABEL}={uid}")
    status = cloud.get("vm")["status"]
    assert (status["vmState"], status["taskState"], status["host"]) == (
        "BUILDING",
        "SPAWNING",
        HOLD,
    )
    assert b.leader_metric() == 0 and "became leader" not in b.log()

    # ... when the leader dies (SIGKILL: no cleanup, no release).
    killed = time.time()
    a.process.kill()
    wait_for(lambda: held_by(api, namespace, b), LEASE + JITTER * RETRY + 10, "b to take over")
    took = lease(api, namespace).spec.acquire_time.timestamp() - killed
    assert LEASE - RETRY - 1 <= took <= LEASE + (1 + JITTER) * RETRY + 2, (
        f"took over {took:.1f}s after the kill; the lease is {LEASE}s"
    )
    wait_for(lambda: b.leader_metric() == 1, 30, "b's kubenova_leader to be 1")

    def leader_events():  # posted after the takeover, not with it
        found = core.list_namespaced_event(namespace, field_selector="reason=LeaderElection")
        return sorted(e.message for e in found.items)

    messages = wait_for(lambda: len(leader_events()) >= 2 and leader_events(), 15, "2 events")
    assert len(messages) == 2 and all(m.endswith(" became leader") for m in messages), messages
    assert any(m.startswith("replica-b_") for m in messages)

    # The successor finds the VM pod the dead leader made (it adopts it: no second one) and
    # goes on waiting for it; once it runs, the instance is ACTIVE, built once, on its host.
    time.sleep(2)  # b's build resumes, finds the pod, waits for it to run
    assert cloud.get("vm")["status"]["taskState"] == "SPAWNING"
    run_pod(api, pod)
    status = cloud.settled("vm")
    assert status["vmState"] == "ACTIVE", status.get("fault")
    assert status["host"] == HOLD and not status.get("attempts"), status
    (vm,) = pods_of(api, namespace, uid)
    assert vm.metadata.uid == pod.metadata.uid, "the same pod, adopted, not made again"
    providers = cloud.custom.list_cluster_custom_object(GROUP, VERSION, "resourceproviders")
    claims = [p for p in providers["items"] if uid in (p["spec"].get("allocations") or {})]
    assert [p["metadata"]["name"] for p in claims] == [HOLD], "one claim, on its host"

    # A SIGTERM hands over at once, once the leader has stopped: until then it keeps renewing
    # (its ACTIVE instance's daemon is given handlers/lifecycle.py's 30 s to exit), so the
    # standby never leads beside it; then it gives the Lease up and the standby takes it at its
    # next retry, long before the lease would have expired.
    c = replicas("replica-c")
    wait_for(lambda: standing_by(c), 60, "replica-c to stand by")
    transitions = lease(api, namespace).spec.lease_transitions
    os.kill(b.process.pid, signal.SIGTERM)
    deadline = time.monotonic() + 90
    while b.process.alive() and "released Lease" not in b.log():
        assert held_by(api, namespace, b), "the Lease left b before b had stopped"
        assert time.monotonic() < deadline, "b did not stop"
        time.sleep(0.1)
    stopped = time.time()  # b's controllers are done: it gave the Lease up, or it is gone
    b.process.stop()  # reaps it
    wait_for(lambda: held_by(api, namespace, c), LEASE, "c to take over")
    acquired = lease(api, namespace).spec.acquire_time.timestamp()
    assert acquired - stopped <= (1 + JITTER) * RETRY + 1, (
        f"c took over {acquired - stopped:.1f}s after b stopped: b did not release the Lease"
    )
    assert "released Lease" in b.log()
    assert lease(api, namespace).spec.lease_transitions == transitions + 1
    wait_for(lambda: c.leader_metric() == 1, 30, "c's kubenova_leader to be 1")
    wait_for(lambda: webhook_answers(api, namespace), 60, "c to manage the webhook")
    assert cloud.get("vm")["status"]["vmState"] == "ACTIVE"
    assert len(pods_of(api, namespace, uid)) == 1


def test_the_charts_replicas_elect_a_leader_with_its_service_account(cluster, api, crds, tmp_path):
    """`helm install` with two replicas and admission, then the chart's operator command run
    twice out of cluster (no kubelet here) with a token of the chart's ServiceAccount and the
    downward API's POD_NAME and POD_NAMESPACE: its Role is enough to take the Lease, fill the
    chart's empty webhook CA Secret and post the Event; the second replica stands by with the
    same CA and answers the probes, and takes over when the first stops."""
    values = {
        "driver": "pod",
        "admission.enabled": True,
        "leaderElection.enabled": True,
        "leaderElection.leaseDuration": LEASE,
        "leaderElection.renewDeadline": RENEW,
        "leaderElection.retryPeriod": RETRY,
        "persistence.enabled": False,
        "replicas": 2,
    }
    with installed(cluster, api, values) as release:
        core = client.CoreV1Api(api)
        ns, lease_name = release.namespace, f"{release.name}-kubenova"
        secret = f"{release.name}-kubenova-webhook-ca"
        assert core.read_namespaced_secret(secret, ns).data is None, "the chart's is empty"
        objects = release.objects()
        kubeconfig = service_account_kubeconfig(
            cluster, api, ns, release.service_account, tmp_path / "kubeconfig"
        )

        def replica(pod: str):
            process, health = local_operator(objects, tmp_path / pod, kubeconfig)
            process.argv = [_local(arg, tmp_path / pod) for arg in process.argv]
            process.start({**os.environ, "POD_NAME": pod, "POD_NAMESPACE": ns})
            return process, health, tmp_path / pod / "operator.log"

        def holder_pod() -> str:
            try:
                found = client.CoordinationV1Api(api).read_namespaced_lease(lease_name, ns)
            except client.ApiException as err:
                if err.status == 404:
                    return ""
                raise
            return (found.spec.holder_identity or "").split("_")[0]

        started = []
        try:
            started.append(a := replica("chart-a"))
            wait_for(lambda: holder_pod() == "chart-a", 90, "chart-a to take the chart's Lease")
            started.append(b := replica("chart-b"))
            wait_for(
                lambda: "standing by with the admission webhook" in b[2].read_text(),
                60,
                "chart-b to stand by",
            )
            wait_for(lambda: _answers(b[1]), 30, "chart-b's health endpoint (the probes)")
            assert holder_pod() == "chart-a"
            ca = base64.b64decode(core.read_namespaced_secret(secret, ns).data["ca.crt"])
            for pod in ("chart-a", "chart-b"):
                assert (tmp_path / pod / "state" / "webhook" / "ca.crt").read_bytes() == ca
            events = core.list_namespaced_event(ns, field_selector="reason=LeaderElection").items
            assert [e.message.split("_")[0] for e in events] == ["chart-a"]
            a[0].stop()
            wait_for(lambda: holder_pod() == "chart-b", 3 * RETRY + 5, "chart-b to lead")
            assert "released Lease" in a[2].read_text()
        finally:
            for process, _, _ in started:
                process.stop()
            remove_webhooks(api)


def _local(arg: str, work: Path) -> str:
    """The pod's paths and addresses that local_operator keeps, made this process's own (both
    replicas would bind 0.0.0.0:9443 and write /var/lib/kubenova here)."""
    flag = arg.partition("=")[0]
    local = {
        "--webhook-listen": f"127.0.0.1:{free_port()}",
        "--webhook-host": "127.0.0.1",
        "--webhook-cert-dir": str(work / "state" / "webhook"),
        "--console-listen": "off",
        "--console-cert-dir": str(work / "state" / "console"),
    }
    return f"{flag}={local[flag]}" if flag in local else arg


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status == 200
    except OSError:
        return False
