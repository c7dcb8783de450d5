"""bench/boot.py, one boot of each kind, for correctness only: it must keep running and report
figures from real boots (kubenova to Ready, and the same QEMU command line by hand). No figure
is timed here; the ordering asserted (ACTIVE before Ready) is a fact, not a speed goal."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

BENCH = Path(__file__).resolve().parents[2] / "bench" / "boot.py"


def test_bench_boot_reports_real_boots(tmp_path: Path) -> None:
    out = tmp_path / "boot.json"
    proc = subprocess.run(
        [sys.executable, str(BENCH), "-n", "1", f"--json={out}"],
        capture_output=True,
        text=True,
        timeout=600,
        env=os.environ,
    )
    assert proc.returncode == 0, f"bench failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    assert "ratio kubenova / direct" in proc.stdout, proc.stdout
    figures = json.loads(out.read_text())
    assert figures["accelerator"] in {"kvm", "tcg"}
    assert len(figures["ready"]) == len(figures["active"]) == len(figures["direct"]) == 1
    (ready,), (active,), (direct,) = figures["ready"], figures["active"], figures["direct"]
    assert 0 < active <= ready
    assert direct > 0
