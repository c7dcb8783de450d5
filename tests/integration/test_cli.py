"""`kubenova` (and `kubectl nova`) against the real control plane: stop, start and reboot with
`--wait`, refusals and failures as one line on stderr with a non-zero exit, the namespace from
the kubeconfig's context, and the kubectl plugin mechanism.

The operator runs as its own process with Nova's FakeDriver and the admission webhook (the
`admission_cloud` fixture), so the webhook refuses what the instance's state does not allow.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from kubenova.conductor.actions import REBOOT_ANNOTATION
from kubenova.devcluster.cluster import free_port
from kubenova.tools import find_tool
from tests.cloud import Cloud

pytestmark = pytest.mark.integration

KUBECTL_NOVA = Path(sys.executable).parent / "kubectl-nova"


def kubenova(cluster, *args: str, kubeconfig: Path | None = None, env: dict | None = None):
    """`python -m kubenova.cli ARGS` as a user would run it (KUBECONFIG set, no -n unless
    given)."""
    environment = {**os.environ, "KUBECONFIG": str(kubeconfig or cluster.kubeconfig), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "kubenova.cli", *args],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def one_error_line(result: subprocess.CompletedProcess) -> str:
    """The single `error: ...` line a failed command printed (and nothing else)."""
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines
    return lines[0].removeprefix("error: ")


def booted(cloud: Cloud, name: str) -> dict:
    cloud.node("a")
    cloud.instance(name)
    status = cloud.settled(name)
    assert status["vmState"] == "ACTIVE", status
    return status


def progress_of(stdout: str) -> list[tuple[str, str]]:
    """The (status, task) of each progress line `  1.23s  SHUTOFF  -`."""
    rows = []
    for line in stdout.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0].endswith("s") and parts[0][:-1].replace(".", "").isdigit():
            rows.append((parts[1], parts[2]))
    return rows


def resting(cloud: Cloud, name: str) -> tuple[str, str | None, str | None]:
    status = cloud.get(name)["status"]
    return status["vmState"], status.get("taskState"), status.get("powerState")


def test_stop_start_and_reboot_wait_until_done(admission_cloud, cluster):
    cloud = admission_cloud
    booted(cloud, "demo")
    ns = ("-n", cloud.ns)

    stop = kubenova(cluster, "stop", "demo", *ns, "--wait", "--timeout=60")
    assert stop.returncode == 0, stop.stderr
    assert stop.stdout.splitlines()[0] == "stop requested for instance demo"
    assert ("ACTIVE", "POWERING_OFF") in progress_of(stop.stdout), stop.stdout
    assert progress_of(stop.stdout)[-1] == ("SHUTOFF", "-"), stop.stdout
    assert stop.stdout.splitlines()[-1].startswith("instance demo is SHUTOFF: the VM on ")
    assert resting(cloud, "demo") == ("STOPPED", None, "SHUTDOWN")

    again = kubenova(cluster, "stop", "demo", *ns, "--wait")
    assert (again.returncode, again.stdout) == (0, "instance demo is already SHUTOFF\n")

    start = kubenova(cluster, "start", "demo", *ns, "--wait", "--timeout=60")
    assert start.returncode == 0, start.stderr
    assert ("SHUTOFF", "POWERING_ON") in progress_of(start.stdout), start.stdout
    assert progress_of(start.stdout)[-1] == ("ACTIVE", "-"), start.stdout
    assert resting(cloud, "demo") == ("ACTIVE", None, "RUNNING")

    hard = kubenova(cluster, "reboot", "--hard", "demo", *ns, "--wait", "--timeout=60")
    assert hard.returncode == 0, hard.stderr
    assert hard.stdout.splitlines()[0] == "hard reboot requested for instance demo"
    assert ("HARD_REBOOT", "REBOOTING_HARD") in progress_of(hard.stdout), hard.stdout
    assert hard.stdout.splitlines()[-1].startswith("instance demo is ACTIVE: hard reboot: ")

    soft = kubenova(cluster, "reboot", "demo", *ns, "--wait", "--timeout=60")
    assert soft.returncode == 0, soft.stderr
    assert ("REBOOT", "REBOOTING") in progress_of(soft.stdout), soft.stdout

    obj = cloud.get("demo")
    assert REBOOT_ANNOTATION not in (obj["metadata"].get("annotations") or {})
    log = [(a["action"], a.get("rebootType"), a["result"]) for a in obj["status"]["actions"]]
    assert log == [
        ("create", None, "Success"),
        ("stop", None, "Success"),
        ("start", None, "Success"),
        ("reboot", "HARD", "Success"),
        ("reboot", "SOFT", "Success"),
    ]

    events = kubenova(cluster, "events", "demo", *ns)
    assert events.returncode == 0, events.stderr
    for action in ("stop", "start", "reboot (HARD)", "reboot (SOFT)"):
        assert f"\n{action} " in events.stdout, events.stdout


def test_without_wait_the_request_is_written_and_left_to_the_operator(admission_cloud, cluster):
    cloud = admission_cloud
    booted(cloud, "quick")
    result = kubenova(cluster, "stop", "quick", "-n", cloud.ns)
    assert (result.returncode, result.stdout) == (0, "stop requested for instance quick\n")
    assert cloud.get("quick")["spec"]["powerState"] == "Stopped"


def test_a_hard_reboot_that_started_a_stopped_instance_can_be_stopped_again(
    admission_cloud, cluster
):
    """A hard reboot starts a STOPPED instance (Nova) and leaves spec.powerState Stopped:
    `kubenova stop` still stops it."""
    cloud = admission_cloud
    booted(cloud, "cycle")
    ns = ("-n", cloud.ns)
    assert kubenova(cluster, "stop", "cycle", *ns, "--wait").returncode == 0
    hard = kubenova(cluster, "reboot", "--hard", "cycle", *ns, "--wait")
    assert hard.returncode == 0, hard.stderr
    assert resting(cloud, "cycle")[0] == "ACTIVE"
    assert cloud.get("cycle")["spec"]["powerState"] == "Stopped"

    stop = kubenova(cluster, "stop", "cycle", *ns, "--wait", "--timeout=60")
    assert stop.returncode == 0, stop.stderr
    assert resting(cloud, "cycle") == ("STOPPED", None, "SHUTDOWN")


def test_a_refused_action_is_one_line_with_novas_message(admission_cloud, cluster):
    cloud = admission_cloud
    booted(cloud, "off")
    assert kubenova(cluster, "stop", "off", "-n", cloud.ns, "--wait").returncode == 0

    refused = kubenova(cluster, "reboot", "off", "-n", cloud.ns, "--wait")
    assert one_error_line(refused) == (
        "Cannot 'reboot' instance off while it is in vm_state STOPPED: a soft reboot needs a "
        "running guest; set spec.powerState: Running, or ask for a hard reboot"
    )
    assert refused.stdout == ""
    assert REBOOT_ANNOTATION not in (cloud.get("off")["metadata"].get("annotations") or {})


def test_failures_are_one_line_each(admission_cloud, cluster, api, tmp_path):
    cloud = admission_cloud
    booted(cloud, "srv")

    missing = kubenova(cluster, "stop", "srv", kubeconfig=tmp_path / "no-such-kubeconfig")
    assert one_error_line(missing) == (
        f"no kubeconfig: {tmp_path / 'no-such-kubeconfig'} ($KUBECONFIG) does not exist; "
        "pass --kubeconfig FILE or set KUBECONFIG"
    )

    absent = kubenova(cluster, "start", "nope", "-n", cloud.ns, "--wait")
    assert one_error_line(absent) == f"instance nope not found in namespace {cloud.ns}"

    # eve may read instances, not change them: the apiserver says who was refused what
    rbac = client.RbacAuthorizationV1Api(api)
    rbac.create_namespaced_role(
        cloud.ns,
        {
            "metadata": {"name": "viewer"},
            "rules": [
                {
                    "apiGroups": ["compute.kubenova.io"],
                    "resources": ["instances"],
                    "verbs": ["get", "list", "watch"],
                }
            ],
        },
    )
    rbac.create_namespaced_role_binding(
        cloud.ns,
        {
            "metadata": {"name": "eve-viewer"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": "viewer",
            },
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "eve"}],
        },
    )
    eve = cluster.write_kubeconfig_for("eve")
    forbidden = kubenova(cluster, "stop", "srv", "-n", cloud.ns, kubeconfig=eve)
    assert one_error_line(forbidden) == (
        f'instances.compute.kubenova.io "srv" is forbidden: User "eve" cannot patch resource '
        f'"instances" in API group "compute.kubenova.io" in the namespace "{cloud.ns}"'
    )
    assert resting(cloud, "srv")[0] == "ACTIVE"

    # an API server that is not there
    config = yaml.safe_load(cluster.kubeconfig.read_text())
    port = free_port()
    config["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{port}"
    down = tmp_path / "down-kubeconfig"
    down.write_text(yaml.safe_dump(config))
    refused = kubenova(cluster, "events", "srv", "-n", cloud.ns, kubeconfig=down)
    assert one_error_line(refused) == (
        f"cannot reach the Kubernetes API server at https://127.0.0.1:{port}: Connection refused"
    )


def test_kubectl_nova_plugin_with_the_contexts_namespace(admission_cloud, cluster, tmp_path):
    """kubectl runs `kubectl-nova` from PATH with the arguments after `nova`; with no -n the
    namespace is the kubeconfig context's."""
    if not KUBECTL_NOVA.exists():
        pytest.fail(f"{KUBECTL_NOVA} is missing: `make setup` installs the entry points")
    cloud = admission_cloud
    booted(cloud, "plug")
    config = yaml.safe_load(cluster.kubeconfig.read_text())
    for context in config["contexts"]:
        context["context"]["namespace"] = cloud.ns
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(config))
    env = {
        **os.environ,
        "KUBECONFIG": str(kubeconfig),
        "PATH": f"{KUBECTL_NOVA.parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }

    def kubectl(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [find_tool("kubectl"), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    listed = kubectl("plugin", "list")
    assert str(KUBECTL_NOVA) in listed.stdout, listed.stdout + listed.stderr

    stop = kubectl("nova", "stop", "plug", "--wait", "--timeout=60")
    assert stop.returncode == 0, stop.stderr
    assert stop.stdout.splitlines()[-1].startswith("instance plug is SHUTOFF")
    assert resting(cloud, "plug") == ("STOPPED", None, "SHUTDOWN")

    events = kubectl("nova", "events", "plug")
    assert events.returncode == 0, events.stderr
    assert f"Instance plug in namespace {cloud.ns}: STOPPED" in events.stdout

    usage = kubectl("nova", "--help")
    assert usage.stdout.startswith("usage: kubectl nova "), usage.stdout
