"""Events arrive, Normal ones too, all from kubenova's one component, a repeat counted on the
Event it repeats (kube/events.py). Real apiserver; the operator is a real process."""

from __future__ import annotations

import asyncio

import pytest
from kubernetes import client
from kubernetes_asyncio import config as async_config

from kubenova.kube.events import COMPONENT, EventRecorder, Reason
from tests.kit import wait_for

pytestmark = pytest.mark.integration


def events_of(api, namespace: str, uid: str | None = None) -> list:
    selector = f"involvedObject.uid={uid}" if uid else None
    return client.CoreV1Api(api).list_namespaced_event(namespace, field_selector=selector).items


async def _posting(cluster, body):
    api = await async_config.new_client_from_config(config_file=str(cluster.kubeconfig))
    try:
        return await body(api)
    finally:
        await api.close()


def test_a_repeat_is_counted_not_posted_again(cluster, api, namespace):
    config_map = client.CoreV1Api(api).create_namespaced_config_map(
        namespace, {"metadata": {"name": "subject"}}
    )
    obj = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "subject", "namespace": namespace, "uid": config_map.metadata.uid},
    }

    async def post(api_client):
        recorder = EventRecorder(api_client)
        for _ in range(3):
            await recorder.post(obj, Reason.ACTIVE, "the VM runs on h1")
        await asyncio.gather(
            *(recorder.post(obj, Reason.ACTIVE, "the VM runs on h1") for _ in range(4))
        )
        await recorder.post(obj, Reason.RESCHEDULING, "build failed on h1; trying h2")
        # a new recorder (an operator restarted) finds the Event and counts on
        await EventRecorder(api_client).post(obj, Reason.ACTIVE, "the VM runs on h1")

    asyncio.run(_posting(cluster, post))
    seen = {(e.reason, e.type): e for e in events_of(api, namespace, config_map.metadata.uid)}
    assert set(seen) == {("Active", "Normal"), ("Rescheduling", "Warning")}
    assert seen["Active", "Normal"].count == 8
    assert seen["Rescheduling", "Warning"].count == 1
    assert seen["Active", "Normal"].last_timestamp >= seen["Active", "Normal"].first_timestamp
    assert {e.source.component for e in seen.values()} == {COMPONENT}


def test_normal_events_of_a_build_and_a_delete_arrive(cloud, api):
    cloud.node("a")
    cloud.instance("vm")
    uid = cloud.get("vm")["metadata"]["uid"]
    assert cloud.settled("vm")["vmState"] == "ACTIVE"
    cloud.delete("vm")
    wait_for(lambda: not cloud.list("instances"), 30, "the instance to be deleted")

    def reasons():
        return {(e.type, e.reason) for e in events_of(api, cloud.ns, uid)}

    # One Normal Event for a plain build (issue 13's write budget): Active, naming the host and,
    # the fake guest being up at once, saying so. The acceptance, the claim and the steps with
    # nothing to do (no ports, no volumes) write status only.
    steps = {"Active", "Deleting"}
    wait_for(lambda: steps <= {r for _, r in reasons()}, 10, "an Event for each step")
    assert {t for t, _ in reasons()} == {"Normal"}
    assert {r for _, r in reasons()} == steps, reasons()
    active = next(e for e in events_of(api, cloud.ns, uid) if e.reason == "Active")
    assert "the VM runs on" in active.message and "the guest OS is up" in active.message
    image = next(i for i in cloud.list("images") if i["metadata"]["name"] == "tiny")
    image_events = events_of(api, cloud.ns, image["metadata"]["uid"])
    assert [(e.type, e.reason) for e in image_events] == [("Normal", "ImageActive")]
    everything = events_of(api, cloud.ns)
    assert {e.source.component for e in everything} == {COMPONENT}  # none of kopf's own
    assert {e.reporting_component for e in everything} == {COMPONENT}
    assert all(e.count == 1 for e in everything), [(e.reason, e.count) for e in everything]
