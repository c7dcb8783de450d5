"""Nova's quotas on the real apiserver, counted (Nova since Pike): each Instance and Volume
carries what it counts (status.quotaUsage), checks of one namespace run one at a time in the
operator, so 50 instances created at once where 10 are allowed end with exactly 10 built, the
rest refused at apply or in ERROR with a quota fault; the Quota's status.used is published from
the count and nothing in it grows with the namespace."""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor

import pytest
from kubernetes import client
from kubernetes_asyncio import config as async_config

from kubenova import GROUP, VERSION
from kubenova.kube.client import Objects
from kubenova.quota import QuotaExceeded, Quotas, Usage, instance_usage, volume_usage
from kubenova.quota.quotas import CREATED_BY_LABEL
from tests.cloud import Cloud
from tests.kit import wait_for

pytestmark = pytest.mark.integration


def quota_of(api, namespace: str) -> dict:
    return client.CustomObjectsApi(api).get_namespaced_custom_object(
        GROUP, VERSION, namespace, "quotas", "default"
    )


async def _with_quotas(cluster, body):
    api = await async_config.new_client_from_config(config_file=str(cluster.kubeconfig))
    quotas = Quotas(Objects(api), publish_delay=0.05)
    try:
        return await body(quotas)
    finally:
        await quotas.close()
        await api.close()


def test_concurrent_reservations_where_ten_fit_accept_exactly_ten(cluster, api, namespace):
    """30 reservations at once where 10 instances fit: exactly 10 are accepted, each once, the
    Quota the first of them made carries Nova's defaults, and the published usage says 10."""
    flavor = {"vcpus": 1, "ramMiB": 256}

    async def race(quotas: Quotas):
        async def one(i: int) -> bool:
            try:
                await quotas.reserve(namespace, f"uid-{i}", instance_usage(flavor), name=f"vm-{i}")
            except QuotaExceeded as err:
                assert str(err).startswith("Quota exceeded for instances: Requested 1, but")
                return False
            return True

        won = await asyncio.gather(*(one(i) for i in range(30)))
        await quotas.publish(namespace)
        return won, quotas.used(namespace)

    won, used = asyncio.run(_with_quotas(cluster, race))
    assert sum(won) == 10
    assert used == Usage(instances=10, cores=10, ram_mib=2560)
    quota = quota_of(api, namespace)
    assert quota["metadata"]["labels"] == CREATED_BY_LABEL
    assert quota["spec"] == {
        "instances": 10,
        "cores": 20,
        "ramMiB": 51200,
        "volumes": 10,
        "gigabytes": 1000,
    }
    assert quota["status"] == {"used": used.to_api()}


def test_reserve_is_idempotent_resizes_counts_status_and_release_forgets(cluster, namespace):
    async def steps(quotas: Quotas):
        await quotas.reserve(namespace, "vol-1", volume_usage(400), kind="Volume", name="data")
        await quotas.reserve(namespace, "vol-1", volume_usage(400), kind="Volume")  # no-op
        # vol-2's status already says what it counts (an operator restarted since).
        quotas.consumer_changed(namespace, "vol-2", volume_usage(500).to_api())
        with pytest.raises(QuotaExceeded) as refused:
            await quotas.reserve(namespace, "vol-3", volume_usage(101), kind="Volume")
        assert str(refused.value).startswith(
            "Quota exceeded for gigabytes: Requested 101, but already used 900 of 1000 gigabytes"
        )
        await quotas.reserve(namespace, "vol-1", volume_usage(500), kind="Volume")  # grow: fits
        with pytest.raises(QuotaExceeded):
            await quotas.reserve(namespace, "vol-1", volume_usage(501), kind="Volume")
        # Its status catches up with the growth: counted once, from the status.
        quotas.consumer_changed(namespace, "vol-1", volume_usage(500).to_api())
        assert quotas.used(namespace) == Usage(volumes=2, gigabytes=1000)
        assert await quotas.release(namespace, "vol-1") is True
        # A reservation arriving after its consumer was released (deleted) is not counted.
        await quotas.reserve(namespace, "vol-1", volume_usage(1), kind="Volume")
        quotas.consumer_changed(namespace, "vol-1", None)  # the volume is gone
        quotas.consumer_changed(namespace, "vol-2", None)
        await quotas.publish(namespace)
        return quotas.used(namespace)

    assert asyncio.run(_with_quotas(cluster, steps)) == Usage()


def test_fifty_instances_where_ten_fit(admission_operator, api, namespace, tmp_path):
    """Refused at apply (the webhook saw the usage full) or ERROR with a quota fault (the
    webhook saw it before concurrent creates filled it; the operator's recheck refused):
    exactly 10 built, each counting itself. After deleting them all, nothing is used."""
    cloud = Cloud(api, namespace, tmp_path, quota={"instances": 10})
    cloud.node("h0", cpu="64", memory="128Gi")
    names = [f"q-{i:02d}" for i in range(50)]

    def create(name: str) -> str | None:
        try:
            cloud.instance(name)
        except client.ApiException as err:
            assert err.status == 403, err.body
            return json.loads(err.body)["message"]
        return None

    with ThreadPoolExecutor(max_workers=16) as pool:
        refusals = dict(zip(names, pool.map(create, names), strict=True))
    refused = {n: m for n, m in refusals.items() if m is not None}
    for message in refused.values():
        assert "Quota exceeded for instances: Requested 1, but already used 10 of 10" in message

    statuses = {n: cloud.settled(n, timeout=120) for n in names if n not in refused}
    active = [n for n, s in statuses.items() if s["vmState"] == "ACTIVE"]
    errors = {n: s for n, s in statuses.items() if s["vmState"] == "ERROR"}
    print(f"\n50 creates, quota 10: {len(refused)} refused at apply, {len(errors)} ERROR")
    assert len(active) == 10
    assert len(refused) + len(errors) == 40
    for status in errors.values():
        assert status["fault"]["code"] == 403
        assert status["fault"]["message"].startswith(
            "Quota exceeded for instances: Requested 1, but already used 10 of 10 instances"
        )
        assert not status.get("host")  # refused before scheduling: nothing was claimed

    counting = {
        i["metadata"]["name"]: i["status"]["quotaUsage"]
        for i in cloud.list("instances")
        if (i.get("status") or {}).get("quotaUsage")
    }
    assert set(counting) == set(active)
    assert all(u["instances"] == 1 for u in counting.values())

    def used() -> dict:
        return (quota_of(api, namespace).get("status") or {}).get("used") or {}

    wait_for(lambda: used().get("instances") == 10, 15, "the usage of 10 to be published")

    # With the usage full (and the webhook's watch caught up), a create is refused at apply.
    wait_for(lambda: create("q-late") is not None, 15, "a create to be refused at apply")
    assert cloud.list("instances") and "q-late" not in {
        i["metadata"]["name"] for i in cloud.list("instances")
    }

    for name in statuses:
        cloud.delete(name)
    wait_for(lambda: not cloud.list("instances"), 120, "the instances to be deleted")
    wait_for(lambda: Usage.of(used()) == Usage(), 15, "the usage to go back to nothing")
