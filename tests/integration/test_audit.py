"""The periodic audit on the real apiserver: orphans made by hand for an instance that does not
exist (a Port, a claim, a Volume attachment) are removed within the audit's
interval and grace; what a live instance holds stays.

The operator runs as a real process with Nova's FakeDriver (`--driver fake`), an audit every
second and a grace of two. (tests/e2e/test_resilience.py does the same for a stray qemu and
instance directory.)
"""

from __future__ import annotations

import time
import urllib.request
import uuid

import pytest
from kubernetes import client

from kubenova import GROUP, VERSION
from kubenova.network.ports import INSTANCE_LABEL, NETWORK_LABEL
from tests.cloud import TEST_LABEL, Cloud
from tests.kit import running_operator, wait_for

pytestmark = pytest.mark.integration

INTERVAL, GRACE = 1.0, 2.0


@pytest.fixture(scope="module")
def audit_operator(cluster, api, crds, tmp_path_factory):
    work = tmp_path_factory.mktemp("audit-op")
    args = ("--driver=fake", f"--audit-interval={INTERVAL:g}", f"--audit-grace={GRACE:g}")
    with running_operator(cluster, api, work, *args) as op:
        yield op
    client.CoreV1Api(api).delete_collection_node(label_selector=f"{TEST_LABEL}=true")


def metric(port: int, name: str, kind: str) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    prefix = f'{name}{{kind="{kind}"}} '
    return next(
        (float(line[len(prefix) :]) for line in text.splitlines() if line.startswith(prefix)), 0.0
    )


def test_orphans_of_a_vanished_instance_are_removed_and_nothing_else(
    audit_operator, api, namespace, tmp_path
):
    cloud = Cloud(api, namespace, tmp_path)
    node = cloud.node("h")
    cloud.network("net", "10.88.0.0/24")
    for volume in ("kept", "stray"):
        cloud.create("volumes", "Volume", volume, {"sizeGiB": 1})
    cloud.instance("real", spec={"networks": [{"network": "net"}], "volumes": [{"volume": "kept"}]})
    real = cloud.settled("real")
    assert real["vmState"] == "ACTIVE" and real["host"] == node, real.get("fault")
    real_uid = cloud.get("real")["metadata"]["uid"]
    custom = cloud.custom
    before = {
        k: metric(audit_operator.metrics_port, "kubenova_audit_cleanups_total", k)
        for k in ("port", "claim", "volume_attachment")
    }

    # the orphans of "ghost", an instance that never existed
    ghost = str(uuid.uuid4())
    custom.create_namespaced_custom_object(
        GROUP,
        VERSION,
        namespace,
        "ports",
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "Port",
            "metadata": {
                "name": "net-10-88-0-200",
                "labels": {INSTANCE_LABEL: ghost, NETWORK_LABEL: "net"},
            },
            "spec": {
                "network": "net",
                "ipAddress": "10.88.0.200",
                "macAddress": "fa:16:3e:00:00:c8",
                "deviceId": "ghost",
            },
        },
    )
    allocation = {"consumer": f"{namespace}/ghost", "vcpus": 1, "ramMiB": 512, "diskGiB": 1}
    custom.patch_cluster_custom_object(
        GROUP, VERSION, "resourceproviders", node, {"spec": {"allocations": {ghost: allocation}}}
    )

    def volume(name):
        return custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "volumes", name)

    wait_for(lambda: (volume("stray").get("status") or {}).get("phase") == "available", 60, "stray")
    custom.patch_namespaced_custom_object_status(
        GROUP,
        VERSION,
        namespace,
        "volumes",
        "stray",
        {
            "status": {
                "phase": "in-use",
                "attachedTo": "ghost",
                "attachedToUid": ghost,
                "host": node,
            }
        },
    )
    made = time.monotonic()

    def ports():
        return {p["metadata"]["labels"][INSTANCE_LABEL] for p in cloud.list("ports")}

    def claims():
        rp = custom.get_cluster_custom_object(GROUP, VERSION, "resourceproviders", node)
        return set(rp["spec"].get("allocations") or {})

    def quota_used():
        q = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "quotas", "default")
        return (q.get("status") or {}).get("used")

    def gone():
        return (
            ghost not in ports()
            and ghost not in claims()
            and volume("stray")["status"]["phase"] == "available"
        )

    wait_for(gone, INTERVAL * 2 + GRACE + 10, "the audit to remove the ghost's orphans")
    took = time.monotonic() - made
    print(f"\naudit removed a port, a claim and an attachment in {took:.1f}s")
    assert took >= GRACE - 0.5, "removed before the grace period"
    # the live instance keeps everything
    assert ports() == {real_uid}
    assert claims() == {real_uid}
    assert volume("kept")["status"]["attachedToUid"] == real_uid
    # Quota is counted from what exists (each one's status.quotaUsage): nothing to audit.
    wait_for(lambda: quota_used() is not None, 10, "the usage to be published")
    assert quota_used() == {"instances": 1, "cores": 1, "ramMiB": 512, "volumes": 2, "gigabytes": 2}
    assert volume("stray")["status"].get("attachedToUid") is None
    for kind in before:
        after = metric(audit_operator.metrics_port, "kubenova_audit_cleanups_total", kind)
        assert after == before[kind] + 1, kind
    text = audit_operator.log.read_text()
    assert (
        f"audit: removed port {namespace}/net-10-88-0-200 (instance {ghost} no longer exists)"
        in text
    )
