"""bench/schedule.py, small, for correctness only: it must keep running and its figures must be
about a run where everything was placed and nothing overcommitted. No figure is timed here: the
benchmark prints them, this test only reads what the run did (its --json output)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

BENCH = Path(__file__).resolve().parents[2] / "bench" / "schedule.py"


def run_bench(tmp_path: Path, *args: str) -> dict:
    out = tmp_path / "figures.json"
    proc = subprocess.run(
        [sys.executable, str(BENCH), *args, "--timeout=300", f"--json={out}"],
        capture_output=True,
        text=True,
        timeout=900,
        env=os.environ,
    )
    assert proc.returncode == 0, f"bench failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    assert "ratio kubenova / unthrottled kube-scheduler" in proc.stdout, proc.stdout
    return json.loads(out.read_text())


def assert_all_placed(side: dict, objects: int) -> None:
    assert side["objects"] == objects
    assert side["placed"] == objects, side
    assert side["running"] == objects, side
    assert side["failed"] == 0, side["failures"]
    assert side["checks"]["nodes_over_capacity"] == 0, side["checks"]


@pytest.mark.parametrize(
    ("mode", "nodes", "objects", "extra"),
    [("drain", 100, 100, ()), ("stream", 20, 40, ("--as-shipped", "--order=kube-scheduler-first"))],
)
def test_bench_schedule_places_everything_within_capacity(
    tmp_path: Path, mode: str, nodes: int, objects: int, extra: tuple[str, ...]
) -> None:
    figures = run_bench(
        tmp_path, f"--mode={mode}", f"--nodes={nodes}", f"--instances={objects}", *extra
    )
    assert (figures["mode"], figures["nodes"], figures["objects"]) == (mode, nodes, objects)
    sides = figures["sides"]
    expected = {"kubenova", "kube-scheduler"} | ({"kube-scheduler-as-shipped"} if extra else set())
    assert set(sides) == expected
    for side in sides.values():
        assert_all_placed(side, objects)
    ours = sides["kubenova"]["checks"]
    # Placement-style claims: one allocation per instance, on the provider of its host.
    assert ours["allocations"] == objects
    assert ours["allocations_not_matching_instances"] == 0
    assert ours["resource_providers"] == nodes
    # Every figure the report's ratios use was measured, on both sides.
    for side in sides.values():
        assert side["placed_per_second"] > 0 and side["running_per_second"] > 0, side
        assert side["scheduler_cpu_seconds"] > 0 and side["scheduler_peak_rss_mib"] > 0, side
    assert figures["ratios"]["placed_per_second"] > 0
    assert sides["kube-scheduler"]["kubelet_stand_in_cpu_seconds"] > 0  # kwok ran the pods
