"""The operator as a child process, as it runs beside a dev control plane (and in tests)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from kubenova.devcluster.process import ManagedProcess


class OperatorProcess(ManagedProcess):
    """`kubenova operator` against a kubeconfig. Its VMs are not its children's children:
    QEMU daemonizes, so killing the operator leaves them for the next operator to adopt."""

    def __init__(
        self,
        kubeconfig: Path,
        state_dir: Path,
        log_path: Path,
        hosts: int = 1,
        metrics_port: int = 0,
        extra_args: tuple[str, ...] = (),
        pod_namespace: str | None = None,
    ) -> None:
        """`pod_namespace`: $POD_NAMESPACE, as the downward API sets it in the chart's pod."""
        self.kubeconfig = kubeconfig
        self.pod_namespace = pod_namespace
        super().__init__(
            "kubenova-operator",
            [
                sys.executable,
                "-m",
                "kubenova.cli",
                "operator",
                f"--state-dir={state_dir}",
                f"--hosts={hosts}",
                f"--metrics-port={metrics_port}",
                *extra_args,
            ],
            log_path,
        )

    def start(self, env: dict[str, str] | None = None) -> None:
        env = {**(env or os.environ), "KUBECONFIG": str(self.kubeconfig)}
        if self.pod_namespace:
            env.setdefault("POD_NAMESPACE", self.pod_namespace)
        super().start(env)

    def kill(self) -> None:
        """SIGKILL: no cleanup handlers run (a crash)."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        self._proc = None
