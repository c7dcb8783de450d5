"""A bad scheduler configuration stops the operator at start, with a message naming the fault."""

import subprocess
import sys

import pytest

from kubenova.scheduler.config import SchedulerConfig


def start_operator(config_text: str, tmp_path) -> subprocess.CompletedProcess:
    path = tmp_path / "scheduler.yaml"
    path.write_text(config_text)
    return subprocess.run(
        [sys.executable, "-m", "kubenova.cli", "operator", f"--scheduler-config={path}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PATH": "/usr/bin:/bin", "KUBECONFIG": str(tmp_path / "none")},
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("enabled_filters: [ComputeFilter, NoSuchFilter]\n", "unknown filter NoSuchFilter"),
        ("weighers: [RAMWeigher, FastestWeigher]\n", "unknown weigher FastestWeigher"),
        ("weight_multipliers: {Bogus: 2}\n", "unknown weigher in weight_multipliers Bogus"),
        ("host_subset_size: 0\n", "host_subset_size"),
        ("cpu_allocation_ratio: -1\n", "cpu_allocation_ratio"),
        ("max_attempt: 3\n", "max_attempt"),
    ],
)
def test_bad_configuration_stops_the_operator(tmp_path, text, message):
    result = start_operator(text, tmp_path)
    assert result.returncode == 2
    assert "invalid configuration" in result.stderr and message in result.stderr


def test_defaults_are_novas():
    config = SchedulerConfig()
    assert (config.ratios.cpu, config.ratios.ram, config.ratios.disk) == (4.0, 1.0, 1.0)
    assert config.max_attempts == 3 and config.host_subset_size == 1
    assert config.enabled_filters[0] == "ComputeFilter"
