"""A real Prometheus scrapes the operator and sees boot latency after a real boot."""

from __future__ import annotations

import math

import pytest

from tests.e2e.prometheus import Prometheus
from tests.kit import wait_for

pytestmark = pytest.mark.e2e


@pytest.fixture
def prometheus(operator, tmp_path):
    server = Prometheus(tmp_path, operator.metrics_port)
    server.start()
    yield server
    server.stop()


def test_prometheus_scrapes_boot_latency(operator, boot, prometheus):
    wait_for(lambda: prometheus.query('up{job="kubenova"} == 1'), 30, "the first scrape")
    boot.instance("measured")
    boot.wait_state("measured", "ACTIVE")

    def count():
        active = prometheus.query("kubenova_instance_create_to_active_seconds_count")
        booted = prometheus.query("kubenova_instance_create_to_guest_booted_seconds_count")
        return all(r and float(r[0]["value"][1]) > 0 for r in (active, booted))

    wait_for(count, 30, "a scrape after the boot")
    median = prometheus.query(
        "histogram_quantile(0.5, sum by (le) (kubenova_instance_create_to_active_seconds_bucket))"
    )
    value = float(median[0]["value"][1])
    assert math.isfinite(value) and value > 0
    booted = prometheus.query("kubenova_instance_create_to_guest_booted_seconds_count")
    assert float(booted[0]["value"][1]) > 0
    spawning = prometheus.query(
        'kubenova_instance_task_state_duration_seconds_count{task_state="SPAWNING"}'
    )
    assert float(spawning[0]["value"][1]) > 0
    active = prometheus.query('kubenova_instances{vm_state="ACTIVE"}')
    assert float(active[0]["value"][1]) >= 1
