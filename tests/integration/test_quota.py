"""Nova's quotas on the real apiserver: the ledger in `Quota default`'s status is race-free
(compare-and-swap on its resourceVersion), and 50 instances created at once where 10 are
allowed end with exactly 10 built, the rest refused at apply or in ERROR with a quota fault."""

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
from kubenova.quota.ledger import CREATED_BY_LABEL
from tests.cloud import Cloud
from tests.kit import wait_for

pytestmark = pytest.mark.integration


def quota_of(api, namespace: str) -> dict:
    return client.CustomObjectsApi(api).get_namespaced_custom_object(
        GROUP, VERSION, namespace, "quotas", "default"
    )


async def _with_ledgers(cluster, count: int, body):
    """`count` independent ledgers (as if in as many operator processes) on one apiserver."""
    apis = [
        await async_config.new_client_from_config(config_file=str(cluster.kubeconfig))
        for _ in range(count)
    ]
    try:
        return await body([Quotas(Objects(api)) for api in apis])
    finally:
        for api in apis:
            await api.close()


def test_ledger_is_race_free_across_processes(cluster, api, namespace):
    """Four writers race for 30 reservations where 10 instances fit: exactly 10 win, each
    once, and the Quota the first of them created carries Nova's defaults."""
    flavor = {"vcpus": 1, "ramMiB": 256}

    async def race(ledgers: list[Quotas]):
        async def one(i: int) -> bool:
            try:
                await ledgers[i % len(ledgers)].reserve(
                    namespace, f"uid-{i}", instance_usage(flavor), name=f"vm-{i}"
                )
            except QuotaExceeded as err:
                assert str(err).startswith("Quota exceeded for instances: Requested 1, but")
                return False
            return True

        return await asyncio.gather(*(one(i) for i in range(30)))

    won = asyncio.run(_with_ledgers(cluster, 4, race))
    assert sum(won) == 10
    quota = quota_of(api, namespace)
    assert quota["metadata"]["labels"] == CREATED_BY_LABEL
    assert quota["spec"] == {
        "instances": 10,
        "cores": 20,
        "ramMiB": 51200,
        "volumes": 10,
        "gigabytes": 1000,
    }
    allocations = quota["status"]["allocations"]
    assert sorted(allocations) == sorted(f"uid-{i}" for i, ok in enumerate(won) if ok)
    assert quota["status"]["used"] == {
        "instances": 10,
        "cores": 10,
        "ramMiB": 2560,
        "volumes": 0,
        "gigabytes": 0,
    }


def test_reserve_is_idempotent_resizes_and_release_empties(cluster, api, namespace):
    async def steps(ledgers: list[Quotas]):
        first, restarted = ledgers
        await first.reserve(namespace, "vol-1", volume_usage(400), kind="Volume", name="data")
        # An operator restarted between reservation and status write reserves again: no-op.
        await restarted.reserve(namespace, "vol-1", volume_usage(400), kind="Volume", name="data")
        await first.reserve(namespace, "vol-2", volume_usage(500), kind="Volume", name="logs")
        with pytest.raises(QuotaExceeded) as refused:
            await first.reserve(namespace, "vol-3", volume_usage(101), kind="Volume")
        assert str(refused.value).startswith(
            "Quota exceeded for gigabytes: Requested 101, but already used 900 of 1000 gigabytes"
        )
        await first.reserve(namespace, "vol-1", volume_usage(500), kind="Volume")  # grow: fits
        with pytest.raises(QuotaExceeded):
            await first.reserve(namespace, "vol-1", volume_usage(501), kind="Volume")
        assert await restarted.release(namespace, "vol-1") is True
        assert await restarted.release(namespace, "vol-1") is False
        # A reservation arriving after its consumer was released (deleted) is not recorded.
        await restarted.reserve(namespace, "vol-1", volume_usage(1), kind="Volume")
        assert await first.release(namespace, "vol-2") is True

    asyncio.run(_with_ledgers(cluster, 2, steps))
    status = quota_of(api, namespace)["status"]
    assert status["allocations"] == {}
    assert Usage.of(status["used"]) == Usage()


def test_fifty_instances_where_ten_fit(admission_operator, api, namespace, tmp_path):
    """Refused at apply (the webhook saw the ledger full) or ERROR with a quota fault (the
    webhook saw it before concurrent creates filled it; the operator's recheck refused):
    exactly 10 built. After deleting them all, the ledger is empty."""
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

    ledger = quota_of(api, namespace)["status"]
    assert {e["name"] for e in ledger["allocations"].values()} == set(active)
    assert ledger["used"]["instances"] == 10

    # With the ledger full (and the webhook's watch caught up), a create is refused at apply.
    wait_for(lambda: create("q-late") is not None, 15, "a create to be refused at apply")
    assert cloud.list("instances") and "q-late" not in {
        i["metadata"]["name"] for i in cloud.list("instances")
    }

    for name in statuses:
        cloud.delete(name)
    wait_for(lambda: not cloud.list("instances"), 120, "the instances to be deleted")
    ledger = quota_of(api, namespace)["status"]
    assert ledger["allocations"] == {}
    assert Usage.of(ledger["used"]) == Usage()
