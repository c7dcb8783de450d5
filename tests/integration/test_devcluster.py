"""The control plane starts on loopback and leaves nothing behind: stop, Ctrl-C or SIGKILL."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kubenova.devcluster import DevCluster
from kubenova.devcluster.cluster import sweep_orphaned_state
from tests.proc import children_of, command_of, running, wait_gone

pytestmark = pytest.mark.integration


def test_stop_reaps_processes_and_removes_state():
    cluster = DevCluster()
    cluster.start()
    pids, state = cluster.pids, cluster.state_dir
    assert len(pids) == 2 and all(running(p) for p in pids)
    assert cluster.server.startswith("https://127.0.0.1:")
    cluster.stop()
    cluster.stop()  # idempotent
    assert not any(running(p) for p in pids)
    assert not state.exists()


def start_up() -> tuple[subprocess.Popen, str]:
    """Run `kubenova up` and return it with the KUBECONFIG it printed."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "kubenova.cli", "up"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 1)
        if ready:
            line = proc.stdout.readline()
            if line.startswith("export KUBECONFIG="):
                return proc, line.strip().split("=", 1)[1]
            if not line and proc.poll() is not None:
                break
    proc.kill()
    pytest.fail(f"kubenova up printed no KUBECONFIG: {proc.communicate()[1]}")


def control_plane_children(pid: int) -> list[int]:
    kids = children_of(pid)
    names = sorted(Path(command_of(k)).name for k in kids)
    assert names == ["etcd", "kube-apiserver"], names
    return kids


def test_up_serves_kubectl_from_another_shell_and_ctrl_c_cleans_up(kubectl):
    proc, kubeconfig = start_up()
    kids = control_plane_children(proc.pid)
    try:
        # "Another shell": a separate kubectl process that only has the printed KUBECONFIG.
        env = {**os.environ, "KUBECONFIG": kubeconfig}
        out = subprocess.run(
            [kubectl.binary, "get", "nova", "-A"], env=env, capture_output=True, text=True
        )
        assert out.returncode == 0, out.stderr
        assert "No resources found" in out.stderr
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 0
    assert wait_gone(kids) == []
    assert not Path(kubeconfig).exists()


def test_sigkilled_up_takes_its_control_plane_with_it_and_its_files_are_swept():
    proc, kubeconfig = start_up()
    kids = control_plane_children(proc.pid)
    proc.kill()
    proc.wait()
    assert wait_gone(kids) == [], "PR_SET_PDEATHSIG should have killed etcd and kube-apiserver"
    state = Path(kubeconfig).parent
    assert state.exists()  # no teardown ran...
    assert state in sweep_orphaned_state()  # ...so the next start removes what it left
    assert not state.exists()


def test_restart_apiserver_keeps_port_certificates_and_data():
    """restart_apiserver(): the same port, certificates and etcd, so clients (the operator)
    reconnect with the kubeconfig they have and find every object."""
    from kubernetes import client, config

    with DevCluster() as cluster:
        api = config.new_client_from_config(str(cluster.kubeconfig))
        core = client.CoreV1Api(api)
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="kept")))
        server, etcd_pid, old_pid = cluster.server, cluster.pids[0], cluster.pids[1]
        cluster.restart_apiserver(down_for=0.5)
        assert cluster.server == server and cluster.pids[0] == etcd_pid
        assert cluster.pids[1] != old_pid and not running(old_pid)
        fresh = config.new_client_from_config(str(cluster.kubeconfig))
        assert client.CoreV1Api(fresh).read_namespace("kept").metadata.name == "kept"
        fresh.close()
        api.close()
