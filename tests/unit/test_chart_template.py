"""The Helm chart, rendered with `helm template` and read back: least-privilege RBAC equal to
what the operator checks it needs, a locked-down operator pod, and the same CRDs as crds/.

No cluster here: tests/integration/test_chart.py installs the chart into the real apiserver.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from kubenova.kube import permissions
from kubenova.scheduler.config import SchedulerConfig
from kubenova.tools import find_tool
from tests.chart import (
    CHART,
    REPO,
    find,
    helm,
    operator_config,
    operator_container,
    ours,
    render,
)

DRIVERS = ("pod", "kubevirt", "qemu")
OPERATOR_GROUP = "compute.kubenova.io"


def granted(objects: list[dict]) -> set[permissions.Permission]:
    """What the release's ClusterRole and Roles grant, as single permissions."""
    perms: set[permissions.Permission] = set()
    for obj in ours(objects):
        if obj["kind"] == "ClusterRole":
            perms |= permissions.expand(obj["rules"])
        elif obj["kind"] == "Role":
            perms |= permissions.expand(obj["rules"], obj["metadata"]["namespace"])
    return perms


def bindings_point_at_the_service_account(objects: list[dict]) -> None:
    account = find(ours(objects), "ServiceAccount")["metadata"]
    for obj in ours(objects):
        if obj["kind"] in ("ClusterRoleBinding", "RoleBinding"):
            assert obj["subjects"] == [
                {"kind": "ServiceAccount", "name": account["name"], "namespace": "nova-system"}
            ]
            kind = "ClusterRole" if obj["kind"] == "ClusterRoleBinding" else "Role"
            assert obj["roleRef"]["kind"] == kind
            role = find(ours(objects), kind, obj["roleRef"]["name"])
            if kind == "Role":
                assert role["metadata"]["namespace"] == obj["metadata"]["namespace"]


# -- lint -------------------------------------------------------------------------------------
@pytest.mark.parametrize("driver", DRIVERS)
def test_helm_lint_is_clean(driver):
    out = helm(
        "lint",
        "--strict",
        str(CHART),
        "--set",
        f"driver={driver}",
        "--set",
        "admission.enabled=true",
        "--set",
        "metrics.serviceMonitor.enabled=true",
    )
    assert "[WARNING]" not in out and "[ERROR]" not in out, out
    assert "0 chart(s) failed" in out, out


@pytest.mark.parametrize(
    ("setting", "refused"), [("driver=libvirt", "driver"), ("scheduler.cpu_ratio=2", "cpu_ratio")]
)
def test_values_schema_refuses_bad_values(setting, refused):
    """values.schema.json: a driver the operator lacks, a scheduler key it would refuse."""
    result = subprocess.run(
        [
            find_tool("helm"),
            "template",
            "nova",
            str(CHART),
            "--kube-version=1.34.0",
            "--set",
            setting,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0 and refused in result.stderr, result.stderr


# -- RBAC -------------------------------------------------------------------------------------
CASES = [
    pytest.param({"driver": d, "admission.enabled": a, "vmNamespace": ns}, id=f"{d}-{a}-{ns!r}")
    for d in DRIVERS
    for a in (False, True)
    for ns in ("", "*", "vms")
    if d != "qemu" or ns == ""
] + [
    pytest.param({"driver": "qemu", "embedded.hosts": 3}, id="qemu-3-hosts"),
    *(pytest.param({"driver": d, "console.enabled": True}, id=f"{d}-console") for d in DRIVERS),
]


@pytest.mark.parametrize("values", CASES)
def test_rbac_grants_exactly_what_the_operator_checks_it_needs(values):
    """The operator started with the Deployment's own arguments needs (kube/permissions.py,
    checked at its start-up) precisely what the chart's ClusterRole and Roles grant."""
    objects = render(values)
    config = operator_config(operator_container(objects)["args"])
    assert granted(objects) == set(permissions.required(config))
    bindings_point_at_the_service_account(objects)


def test_rbac_per_driver():
    """Only the chosen driver's rules; webhook rules only with admission; no wildcards and
    nothing that reads secrets, execs into pods or escalates."""
    by_driver = {d: granted(render({"driver": d})) for d in DRIVERS}
    admission = granted(render({"driver": "pod", "admission.enabled": True}))
    every = set().union(*by_driver.values(), admission)

    def groups(perms):
        return {p.group for p in perms}

    # coordination.k8s.io for every driver: hosts' heartbeats (Leases) are listed (host failure)
    assert groups(by_driver["pod"]) == {"", OPERATOR_GROUP, "coordination.k8s.io"}
    assert groups(by_driver["kubevirt"]) == {
        "",
        OPERATOR_GROUP,
        "kubevirt.io",
        "coordination.k8s.io",
    }
    assert groups(by_driver["qemu"]) == {"", OPERATOR_GROUP, "coordination.k8s.io"}
    assert groups(admission - by_driver["pod"]) == {"admissionregistration.k8s.io"}

    # The pod driver creates pods only in the VM namespace (the release's by default).
    pod_writes = {p for p in by_driver["pod"] if p.resource == "pods" and p.verb == "create"}
    assert pod_writes == {permissions.Permission("", "pods", "create", "nova-system")}
    # Embedded hosts (driver qemu only): create Nodes, patch only their own Nodes and Leases.
    for driver in ("pod", "kubevirt"):
        assert not {
            p
            for p in by_driver[driver]
            if p.resource.startswith("nodes") and p.verb in ("create", "patch", "update")
        }
        leases = {p for p in by_driver[driver] if p.resource == "leases"}
        assert leases == {
            permissions.Permission("coordination.k8s.io", "leases", "list", "kube-node-lease")
        }
    for perm in by_driver["qemu"]:
        if perm.verb == "patch" and perm.resource in ("nodes", "nodes/status", "leases"):
            assert perm.name == "compute-0", perm
    # The webhook configuration: create, and patch only kopf's own one.
    webhook = {p for p in admission if p.group == "admissionregistration.k8s.io"}
    assert {(p.verb, p.name) for p in webhook} == {
        ("create", ""),
        ("patch", permissions.WEBHOOK_CONFIGURATION),
    }

    for perm in every:
        assert "*" not in (perm.group, perm.resource, perm.verb), perm
        assert perm.resource not in ("secrets", "pods/exec", "pods/attach", "serviceaccounts")
        assert perm.verb not in ("escalate", "bind", "impersonate", "deletecollection")
        # CRDs are never touched: kopf runs with resource scanning off.
        assert perm.resource != "customresourcedefinitions"


# -- the Deployment ---------------------------------------------------------------------------
@pytest.mark.parametrize("driver", DRIVERS)
def test_deployment_one_replica_recreate_probes_and_args(driver):
    objects = render({"driver": driver, "admission.enabled": True})
    deployment = find(objects, "Deployment")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    pod = deployment["spec"]["template"]
    assert set(deployment["spec"]["selector"]["matchLabels"].items()) <= set(
        pod["metadata"]["labels"].items()
    )
    container = operator_container(objects)
    args = container["args"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    liveness = next(a for a in args if a.startswith("--liveness="))
    assert liveness == f"--liveness=http://0.0.0.0:{ports['health']}/healthz"
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "health"}, probe
    assert f"--metrics-port={ports['metrics']}" in args and "--metrics-host=0.0.0.0" in args
    assert f"--webhook-listen=0.0.0.0:{ports['webhook']}" in args
    assert f"--driver={driver}" in args
    # Every flag is one the operator knows (argparse would exit otherwise).
    config = operator_config(args)
    assert config.hosts == (1 if driver == "qemu" else 0)
    image = container["image"]
    assert image.startswith("kubenova-launcher:" if driver == "qemu" else "kubenova:"), image
    if driver == "pod":
        assert "--pod-image=kubenova-launcher:0.1.0" in args


def test_deployment_pod_security():
    """The operator pod meets PodSecurity "restricted" (so "baseline" too) for every driver:
    no host namespaces, paths or ports, no privilege, non-root, read-only root filesystem, no
    capabilities, RuntimeDefault seccomp. (The apiserver's own PodSecurity admission checks the
    same pod in tests/integration/test_chart.py.)"""
    for driver in DRIVERS:
        pod = find(render({"driver": driver, "admission.enabled": True}), "Deployment")["spec"][
            "template"
        ]["spec"]
        for host_field in ("hostNetwork", "hostPID", "hostIPC", "hostUsers"):
            assert not pod.get(host_field), host_field
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] != 0
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert "sysctls" not in pod["securityContext"]
        for volume in pod["volumes"]:
            kinds = set(volume) - {"name"}
            assert kinds <= {"emptyDir", "configMap", "secret", "projected"}, volume
        for container in pod["containers"] + pod.get("initContainers", []):
            ctx = container["securityContext"]
            assert ctx["allowPrivilegeEscalation"] is False
            assert ctx["readOnlyRootFilesystem"] is True
            assert ctx["capabilities"] == {"drop": ["ALL"]}
            assert ctx.get("privileged") is not True
            assert ctx["runAsNonRoot"] is True
            assert "procMount" not in ctx and "seLinuxOptions" not in ctx
            assert all("hostPort" not in p for p in container.get("ports", []))
            # Writable places are volumes: the state (image cache, VMs) and /tmp.
            mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
            assert {"/var/lib/kubenova", "/tmp"} <= set(mounts)


def test_scheduler_configmap_is_the_operators_scheduler_config():
    objects = render({"scheduler.cpu_allocation_ratio": 8, "scheduler.max_attempts": 5})
    configmap = find(objects, "ConfigMap")
    config = SchedulerConfig.model_validate(yaml.safe_load(configmap["data"]["scheduler.yaml"]))
    assert (config.cpu_allocation_ratio, config.ram_allocation_ratio) == (8.0, 1.0)
    assert config.max_attempts == 5
    deployment = find(objects, "Deployment")
    spec = deployment["spec"]["template"]["spec"]
    volume = next(v for v in spec["volumes"] if v.get("configMap"))
    assert volume["configMap"]["name"] == configmap["metadata"]["name"]
    mount = next(m for m in spec["containers"][0]["volumeMounts"] if m["name"] == volume["name"])
    assert (
        f"--scheduler-config={mount['mountPath']}/scheduler.yaml" in spec["containers"][0]["args"]
    )
    # A changed configuration rolls the pod.
    other = find(render({"scheduler.cpu_allocation_ratio": 2}), "Deployment")
    key = "checksum/scheduler-config"
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations[key] != other["spec"]["template"]["metadata"]["annotations"][key]


def test_services_and_service_monitor():
    plain = ours(render({}))
    assert {o["kind"] for o in plain} == {
        "ServiceAccount",
        "ConfigMap",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "Service",
        "Deployment",
    }
    metrics = find(plain, "Service")
    assert metrics["spec"]["ports"][0]["targetPort"] == "metrics"
    full = ours(render({"admission.enabled": True, "metrics.serviceMonitor.enabled": True}))
    monitor = find(full, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    monitored = [
        s
        for s in full
        if s["kind"] == "Service"
        and set(monitor["spec"]["selector"]["matchLabels"].items())
        <= set(s["metadata"]["labels"].items())
    ]
    assert [s["metadata"]["name"] for s in monitored] == [metrics["metadata"]["name"]]
    webhook = find(full, "Service", "nova-kubenova-webhook")
    args = operator_container(full)["args"]
    assert "--webhook-host=nova-kubenova-webhook.nova-system.svc" in args
    assert webhook["spec"]["ports"][0]["port"] == 9443 and "--webhook-listen=0.0.0.0:9443" in args


def test_standard_labels_and_the_release_namespace():
    objects = ours(
        render(
            {"driver": "qemu", "admission.enabled": True, "console.enabled": True},
            namespace="elsewhere",
        )
    )
    for obj in objects:
        labels = obj["metadata"]["labels"]
        for key in ("name", "instance", "version", "managed-by", "part-of"):
            assert f"app.kubernetes.io/{key}" in labels, (obj["kind"], key)
        assert labels["helm.sh/chart"] == "kubenova-0.1.0"
        namespace = obj["metadata"].get("namespace")
        if obj["kind"] in ("ClusterRole", "ClusterRoleBinding"):
            assert namespace is None
        elif obj["metadata"]["name"].endswith("-node-lease"):
            assert namespace == "kube-node-lease"  # Kubernetes' own namespace for node leases
        elif obj["metadata"]["name"].endswith("-client-ca"):
            assert namespace == "kube-system"  # where kube-apiserver publishes its client CA
        else:
            assert namespace == "elsewhere", obj["kind"]
    text = (CHART / "templates").glob("*.yaml")
    for template in text:
        literal = r"namespace: (?!\{\{|kube-node-lease|kube-system)"
        assert not re.search(literal, template.read_text()), template


def test_notes_say_how_to_boot_the_example_and_where_the_metrics_are():
    """(Rendered by `helm install` in tests/integration/test_chart.py.)"""
    notes = (CHART / "templates" / "NOTES.txt").read_text()
    for needle in ("examples/instance.yaml", "kubectl wait --for=condition=Ready", "/metrics"):
        assert needle in notes


# -- CRDs -------------------------------------------------------------------------------------
def test_chart_crds_are_the_generated_crds():
    repo = sorted((REPO / "crds").glob("*.yaml"))
    chart = sorted((CHART / "crds").glob("*.yaml"))
    assert [p.name for p in chart] == [p.name for p in repo] and repo
    for a, b in zip(repo, chart, strict=True):
        assert a.read_text() == b.read_text(), b
    check = subprocess.run(
        [sys.executable, "-m", "kubenova.cli", "crds", "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stderr
    assert str(REPO / "crds") in check.stdout and str(CHART / "crds") in check.stdout


def test_crds_check_names_a_stale_chart_copy(tmp_path):
    stale = tmp_path / "chart-crds"
    stale.mkdir()
    for path in (REPO / "crds").glob("*.yaml"):
        (stale / path.name).write_text(path.read_text())
    (stale / "compute.kubenova.io_instances.yaml").write_text("# stale\n")
    check = subprocess.run(
        [
            sys.executable,
            "-m",
            "kubenova.cli",
            "crds",
            "--check",
            "--dir",
            str(REPO / "crds"),
            "--dir",
            str(stale),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 1
    assert f"stale CRDs in {stale}: compute.kubenova.io_instances.yaml" in check.stderr


# -- Dockerfile -------------------------------------------------------------------------------
def dockerfile_stages(path: Path) -> dict[str, list[tuple[str, str]]]:
    """Stage name -> its instructions (keyword, rest), continuation lines joined."""
    text = re.sub(r"\\\n", " ", path.read_text())
    stages: dict[str, list[tuple[str, str]]] = {}
    current = None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            match = re.fullmatch(r"(\S+) AS (\S+)", rest.strip(), flags=re.IGNORECASE)
            assert match, f"every stage is named: {line}"
            current = match.group(2)
            stages[current] = [("FROM", match.group(1))]
        elif current is not None:
            stages[current].append((keyword, rest.strip()))
    return stages


def test_dockerfile_stages_non_root_and_pinned_base():
    dockerfile = REPO / "Dockerfile"
    stages = dockerfile_stages(dockerfile)
    assert {"operator", "launcher", "guest"} <= set(stages)
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", dockerfile.read_text(), re.MULTILINE).group(1)
    assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+", base), "pin the base by full version"
    for stage in ("operator", "launcher", "guest"):
        users = [rest for keyword, rest in stages[stage] if keyword == "USER"]
        assert users and not users[-1].startswith(("0", "root")), stage
    assert [r for k, r in stages["operator"] if k == "USER"][-1] == "10001:10001"
    assert stages["launcher"][0] == ("FROM", "operator")
    install = " ".join(r for k, r in stages["launcher"] if k == "RUN")
    for package in ("qemu-system-x86", "qemu-utils", "genisoimage"):
        assert package in install
    entrypoint = dict(stages["operator"])["ENTRYPOINT"]
    assert entrypoint == '["kubenova"]'
    # The build context is an allow-list: no .git, .venv, .bin or state in the image.
    rules = [line for line in (REPO / ".dockerignore").read_text().splitlines() if line]
    assert next(r for r in rules if not r.startswith("#")) == "*"
