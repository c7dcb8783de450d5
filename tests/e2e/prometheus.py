"""A real Prometheus server (Debian's) scraping the operator, for the metrics tests."""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from pathlib import Path

from kubenova.devcluster.cluster import free_port
from kubenova.devcluster.process import ManagedProcess
from kubenova.tools import find_tool


class Prometheus:
    def __init__(self, work: Path, target_port: int) -> None:
        self.port = free_port()
        config = work / "prometheus.yml"
        config.write_text(
            "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
            "scrape_configs:\n"
            "  - job_name: kubenova\n"
            f"    static_configs: [{{targets: ['127.0.0.1:{target_port}']}}]\n"
        )
        self.process = ManagedProcess(
            "prometheus",
            [
                find_tool("prometheus"),
                f"--config.file={config}",
                f"--storage.tsdb.path={work / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            work / "prometheus.log",
        )

    def _get(self, path: str) -> bytes:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as resp:
            return resp.read()

    def start(self, timeout: float = 30) -> None:
        self.process.start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self._get("/-/ready")
                return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"prometheus not ready: {self.process.log_tail()}")

    def query(self, expr: str) -> list[dict]:
        body = json.loads(self._get("/api/v1/query?" + urllib.parse.urlencode({"query": expr})))
        assert body["status"] == "success", body
        return body["data"]["result"]

    def stop(self) -> None:
        self.process.stop()
