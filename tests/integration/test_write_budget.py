"""The write budget of a build (issue 13): at most 6 API writes per instance from create to
ACTIVE (and Ready) with Nova's FakeDriver, counted by the apiserver itself.

The operator is a real process (the module's fake_operator); the counts are the apiserver's
`apiserver_request_total` read before and after (kubenova/devcluster/api_requests.py, as
bench/schedule.py counts them): every request on kubenova's kinds and on Events, whatever its
code (a 409 costs as much as a success), the test's own creates taken out. `pytest -s` prints
the table (and the operator's GETs, for information).
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from kubenova import GROUP
from kubenova.devcluster.api_requests import (
    WRITES,
    Request,
    api_requests,
    kubenova_objects,
    per_object,
    since,
    table,
)
from tests.kit import wait_for

pytestmark = pytest.mark.integration

INSTANCES = 20
BUDGET = 6.0


def quiet(api, seconds: float = 1.5, timeout: float = 30):
    """The request counts once no write on kubenova's kinds or Events came in for `seconds`
    (the Quota's usage is published about a second after a change)."""
    deadline = time.monotonic() + timeout
    last = api_requests(api)
    while time.monotonic() < deadline:
        time.sleep(seconds)
        now = api_requests(api)
        if not any(k.verb in WRITES for k in since(now, last, kubenova_objects)):
            return now
        last = now
    raise AssertionError(f"the operator kept writing for {timeout:.0f}s")


def ready(status: dict) -> bool:
    conditions = {c["type"]: c["status"] for c in status.get("conditions") or []}
    return status.get("vmState") == "ACTIVE" and conditions.get("Ready") == "True"


def test_a_build_costs_at_most_six_writes_per_instance(cloud, api):
    cloud.node("a")
    cloud.node("b")
    cloud.instance("warm-up")  # the image active, the caches caught up, a provider made
    wait_for(lambda: ready(cloud.get("warm-up").get("status") or {}), 60, "warm-up to be Ready")
    before = quiet(api)

    names = [f"vm-{i:02d}" for i in range(INSTANCES)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(cloud.instance, names))

    def all_ready():
        statuses = {i["metadata"]["name"]: i.get("status") or {} for i in cloud.list("instances")}
        return all(ready(statuses.get(name, {})) for name in names)

    wait_for(all_ready, 120, f"{INSTANCES} instances to be ACTIVE and Ready", interval=0.5)
    counts = since(quiet(api), before, kubenova_objects)
    counts[Request("POST", GROUP, "instances")] -= INSTANCES  # the test's own creates
    writes = per_object(counts, WRITES, INSTANCES)
    print(f"\nAPI writes for {INSTANCES} instances, create -> ACTIVE and Ready (fake driver):")
    print(table(counts, INSTANCES))
    print("reads (GET: the operator's; the test's own polls are LISTs, not shown):")
    print(table(counts, INSTANCES, frozenset({"GET"})))
    assert writes <= BUDGET, f"{writes} writes per instance (budget {BUDGET}):\n" + table(
        counts, INSTANCES
    )
