"""The Helm chart, rendered with `helm template` and read back: least-privilege RBAC equal to
what the operator checks it needs, a locked-down operator pod, and the same CRDs as crds/.

No cluster here: tests/integration/test_chart.py installs the chart into the real apiserver.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase

from kubenova import metrics as kubenova_metrics
from kubenova.image.policy import load_policy
from kubenova.kube import permissions
from kubenova.scheduler.config import SchedulerConfig
from kubenova.tools import find_tool
from tests.chart import (
    CHART,
    KUBE_VERSION,
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


def operators(objects: list[dict]) -> list[dict]:
    """The release's objects but the users' console CA reader (rbac-console-ca.yaml)."""
    return [
        o
        for o in ours(objects)
        if o["metadata"]["labels"].get("app.kubernetes.io/component") != "console"
    ]


def granted(objects: list[dict]) -> set[permissions.Permission]:
    """What the release's ClusterRole and Roles grant the operator, as single permissions."""
    perms: set[permissions.Permission] = set()
    for obj in operators(objects):
        if obj["kind"] == "ClusterRole":
            perms |= permissions.expand(obj["rules"])
        elif obj["kind"] == "Role":
            perms |= permissions.expand(obj["rules"], obj["metadata"]["namespace"])
    return perms


def bindings_point_at_the_service_account(objects: list[dict]) -> None:
    account = find(ours(objects), "ServiceAccount")["metadata"]
    for obj in operators(objects):
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
        "--set",
        "metrics.dashboard.enabled=true",
        "--set",
        "console.enabled=true",
    )
    assert "[WARNING]" not in out and "[ERROR]" not in out, out
    assert "0 chart(s) failed" in out, out


# -- the project's helm -----------------------------------------------------------------------
def pinned(name: str) -> str:
    """A pin from hack/versions.env."""
    text = (REPO / "hack" / "versions.env").read_text()
    return re.search(rf"^{name}=(\S+)$", text, re.MULTILINE).group(1)


def test_project_helm_is_the_pinned_release_build():
    """hack/install-go-tools.sh stamps helm's version and commit as helm's release build does."""
    assert Path(find_tool("helm")).parent in {
        REPO / ".bin",
        Path(os.environ.get("KUBENOVA_BIN_DIR") or REPO / ".bin"),
    }
    version = helm("version", "--template", "{{.Version}} {{.GitCommit}} {{.GitTreeState}}")
    assert version.split() == [pinned("HELM_VERSION"), pinned("HELM_GIT_COMMIT"), "clean"]


def test_helm_template_meets_the_charts_kube_version_without_being_told():
    """Built with its Kubernetes version (1.34, from its client-go), helm's default capabilities
    satisfy the chart's kubeVersion; helm's plain `go install` default (1.20) would not."""
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["kubeVersion"] == ">=1.31.0-0"
    out = helm("template", "nova", str(CHART))
    kinds = [doc["kind"] for doc in yaml.safe_load_all(out) if doc]
    assert "Deployment" in kinds and "PersistentVolumeClaim" in kinds
    too_old = helm("template", "nova", str(CHART), "--kube-version=1.30.0", check=False)
    assert "chart requires kubeVersion: >=1.31.0-0" in too_old, too_old


# -- values.schema.json -----------------------------------------------------------------------
def helm_refuses(command: str, *settings: str) -> str:
    """`helm template` or `helm lint` with these --set values; asserts it failed, returns why."""
    args = [find_tool("helm"), command]
    if command == "template":
        args += ["nova", str(CHART), f"--kube-version={KUBE_VERSION}"]
    else:
        args += ["--strict", str(CHART)]
    for setting in settings:
        args += ["--set", setting]
    result = subprocess.run(args, capture_output=True, text=True, check=False, timeout=120)
    assert result.returncode != 0, result.stdout
    return result.stdout + result.stderr


@pytest.mark.parametrize(
    ("setting", "refused"),
    [
        ("driver=libvirt", "driver"),
        ("scheduler.cpu_ratio=2", "cpu_ratio"),
        ("persistence.accessMode=ReadOnlyMany", "accessMode"),
        ("persistence.size=lots", "size"),
        ("image.digest=latest", "digest"),
        ("pod.disk=hostPath", "/pod/disk"),
    ],
)
def test_values_schema_refuses_bad_values(setting, refused):
    """values.schema.json: a driver the operator lacks, a scheduler key it would refuse, an
    access mode or size Kubernetes would refuse, a digest that is no digest."""
    assert refused in helm_refuses("template", setting)


@pytest.mark.parametrize("command", ["template", "lint"])
@pytest.mark.parametrize(
    ("setting", "path", "key"),
    [
        ("bootTimout=60", "", "bootTimout"),  # top level
        ("persistance.enabled=false", "", "persistance"),
        ("persistence.storageclass=fast", "/persistence", "storageclass"),  # nested
        ("metrics.serviceMonitor.intervall=10s", "/metrics/serviceMonitor", "intervall"),
        ("metrics.dashboard.enable=true", "/metrics/dashboard", "enable"),
        ("image.repo=x", "/image", "repo"),  # through a $ref
        ("pod.storageClassName=fast", "/pod", "storageClassName"),
    ],
)
def test_values_schema_refuses_misspelt_keys(command, setting, path, key):
    """Every object the chart defines is closed: a misspelt key fails, naming where it is."""
    out = helm_refuses(command, setting)
    assert f"at '{path}': additional properties '{key}' not allowed" in out, out


def test_values_schema_keeps_user_maps_open():
    """Labels, annotations, nodeSelector, resources and friends take any key."""
    objects = render(
        {
            "commonLabels.team": "nova",
            "podAnnotations.example\\.com/any": "x",
            "nodeSelector.disktype": "ssd",
            "resources.limits.cpu": "1500m",
            "extraEnv.KUBENOVA_ACCEL": "tcg",
            "persistence.annotations.backup": "daily",
            "metrics.dashboard.enabled": True,
            "metrics.dashboard.labels.grafana_folder": "kubenova",
            "scheduler.weight_multipliers.RAMWeigher": -2,
        }
    )
    pod = find(objects, "Deployment")["spec"]["template"]
    assert pod["metadata"]["annotations"]["example.com/any"] == "x"
    assert pod["spec"]["nodeSelector"] == {"disktype": "ssd"}
    assert pod["spec"]["containers"][0]["resources"]["limits"]["cpu"] == "1500m"
    assert find(objects, "PersistentVolumeClaim")["metadata"]["annotations"]["backup"] == "daily"
    dashboard = find(objects, "ConfigMap", "nova-kubenova-dashboard")
    assert dashboard["metadata"]["labels"]["grafana_folder"] == "kubenova"


def test_every_default_value_is_in_the_schema():
    """The schema closes every object values.yaml defines, and names each of their keys."""
    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())

    def resolve(node: dict) -> dict:
        ref = node.get("$ref")
        return resolve(schema["definitions"][ref.rsplit("/", 1)[1]]) if ref else node

    def walk(value, node: dict, where: str) -> None:
        node = resolve(node)
        if not isinstance(value, dict) or "properties" not in node:
            return
        assert node.get("additionalProperties") is False, where
        for key, item in value.items():
            assert key in node["properties"], f"{where}.{key} is not in the schema"
            walk(item, node["properties"][key], f"{where}.{key}")

    walk(values, schema, "values")


# -- RBAC -------------------------------------------------------------------------------------
CASES = [
    pytest.param({"driver": d, "admission.enabled": a, "vmNamespace": ns}, id=f"{d}-{a}-{ns!r}")
    for d in DRIVERS
    for a in (False, True)
    for ns in ("", "*", "vms")
    if d != "qemu" or ns == ""
] + [
    pytest.param({"driver": "qemu", "embedded.hosts": 3}, id="qemu-3-hosts"),
    *(
        pytest.param(
            {"driver": "pod", "pod.disk": "emptyDir", "vmNamespace": ns}, id=f"emptyDir-{ns!r}"
        )
        for ns in ("", "*")
    ),
    *(pytest.param({"driver": d, "console.enabled": True}, id=f"{d}-console") for d in DRIVERS),
    *(
        pytest.param(
            {"driver": "pod", "leaderElection.enabled": True, "admission.enabled": a},
            id=f"leader-election-admission-{a}",
        )
        for a in (False, True)
    ),
]


@pytest.mark.parametrize("values", CASES)
def test_rbac_grants_exactly_what_the_operator_checks_it_needs(values, monkeypatch):
    """The operator started with the Deployment's own arguments needs (kube/permissions.py,
    checked at its start-up) precisely what the chart's ClusterRole and Roles grant."""
    objects = render(values)
    # the Lease's namespace: the pod's, from the downward API ($POD_NAMESPACE)
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    monkeypatch.setenv("POD_NAMESPACE", deployment["metadata"]["namespace"])
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

    # coordination.k8s.io for every driver: hosts' heartbeats (Leases) are listed (host failure);
    # the console (on by default) checks its callers with TokenReviews and SubjectAccessReviews
    base = {"", OPERATOR_GROUP, "coordination.k8s.io"}
    console = {"authentication.k8s.io", "authorization.k8s.io"}
    assert groups(by_driver["pod"]) == base | console
    assert groups(by_driver["kubevirt"]) == base | console | {"kubevirt.io"}
    assert groups(by_driver["qemu"]) == base | console
    no_console = granted(render({"driver": "pod", "console.enabled": False}))
    assert groups(no_console) == base
    assert groups(admission - by_driver["pod"]) == {"admissionregistration.k8s.io"}

    # The pod driver creates pods only in the VM namespace (the release's by default).
    pod_writes = {p for p in by_driver["pod"] if p.resource == "pods" and p.verb == "create"}
    assert pod_writes == {permissions.Permission("", "pods", "create", "nova-system")}
    # ... and their disks' claims there too; none with the emptyDir disk.
    claims = {p for p in by_driver["pod"] if p.resource == "persistentvolumeclaims"}
    assert claims == {
        permissions.Permission("", "persistentvolumeclaims", verb, "nova-system")
        for verb in ("get", "list", "create", "delete")
    }
    ephemeral = granted(render({"driver": "pod", "pod.disk": "emptyDir"}))
    assert not {p for p in ephemeral if p.resource == "persistentvolumeclaims"}
    for driver in ("kubevirt", "qemu"):
        assert not {p for p in by_driver[driver] if p.resource == "persistentvolumeclaims"}
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
        assert "--pod-disk=pvc" in args, "the disks outlive the pods by default"
        assert config.pod_disk == "pvc" and config.pod_storage_class is None
    else:
        assert not [a for a in args if a.startswith("--pod-")]


@pytest.mark.parametrize(
    ("values", "disk", "storage_class"),
    [
        ({}, "pvc", None),
        ({"pod.disk": "emptyDir"}, "emptyDir", None),
        ({"pod.storageClass": "fast"}, "pvc", "fast"),
        ({"pod.storageClass": "-"}, "pvc", ""),  # none: pre-provisioned volumes without a class
    ],
)
def test_pod_disk_values_become_the_operators_flags(values, disk, storage_class):
    config = operator_config(operator_container(render({"driver": "pod", **values}))["args"])
    assert (config.pod_disk, config.pod_storage_class) == (disk, storage_class)


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
            assert kinds <= {"emptyDir", "configMap", "secret", "projected"} | {
                "persistentVolumeClaim"
            }, volume
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


# -- the state volume ------------------------------------------------------------------------
def state_volume(objects: list[dict]) -> tuple[dict, str]:
    """The pod's volume mounted over the state directory, and the --state-dir it holds."""
    pod = find(objects, "Deployment")["spec"]["template"]["spec"]
    container = operator_container(objects)
    state_dir = next(a for a in container["args"] if a.startswith("--state-dir=")).split("=", 1)[1]
    mount = max(
        (
            m
            for m in container["volumeMounts"]
            if (state_dir + "/").startswith(m["mountPath"] + "/")
        ),
        key=lambda m: len(m["mountPath"]),
    )
    return next(v for v in pod["volumes"] if v["name"] == mount["name"]), state_dir


@pytest.mark.parametrize("driver", DRIVERS)
def test_state_directory_lives_on_the_charts_claim(driver):
    """Instances' and volumes' state (the operator's --state-dir), and the webhook's and the
    console's certificates, are on a PersistentVolumeClaim of the values' class and size; the
    Deployment stays Recreate, so the old pod lets go of the ReadWriteOnce volume first."""
    objects = render(
        {
            "driver": driver,
            "admission.enabled": True,
            "console.enabled": True,
            "persistence.storageClass": "fast-ssd",
            "persistence.size": "50Gi",
        }
    )
    claim = find(objects, "PersistentVolumeClaim")
    assert claim["metadata"]["name"] == "nova-kubenova-state"
    assert claim["metadata"]["namespace"] == "nova-system"
    assert claim["spec"] == {
        "accessModes": ["ReadWriteOnce"],
        "storageClassName": "fast-ssd",
        "resources": {"requests": {"storage": "50Gi"}},
    }
    # helm uninstall leaves the disks alone.
    assert claim["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
    volume, state_dir = state_volume(objects)
    assert volume == {
        "name": "state",
        "persistentVolumeClaim": {"claimName": "nova-kubenova-state"},
    }
    mounts = {m["mountPath"]: m["name"] for m in operator_container(objects)["volumeMounts"]}
    args = operator_container(objects)["args"]
    for flag in ("--webhook-cert-dir=", "--console-cert-dir="):
        cert_dir = next(a for a in args if a.startswith(flag)).split("=", 1)[1]
        assert mounts[str(Path(cert_dir).parent)] == "state", flag
    assert mounts[str(Path(state_dir).parent)] == "state"
    assert find(objects, "Deployment")["spec"]["strategy"] == {"type": "Recreate"}


def test_state_claim_options():
    default = find(render({}), "PersistentVolumeClaim")["spec"]
    assert "storageClassName" not in default  # the cluster's default StorageClass
    assert default["resources"]["requests"]["storage"] == "20Gi"
    no_class = render({"persistence.storageClass": "-", "persistence.keepOnUninstall": False})
    claim = find(no_class, "PersistentVolumeClaim")
    assert claim["spec"]["storageClassName"] == ""
    assert "annotations" not in claim["metadata"]
    once = find(render({"persistence.accessMode": "ReadWriteOncePod"}), "PersistentVolumeClaim")
    assert once["spec"]["accessModes"] == ["ReadWriteOncePod"]

    existing = render({"persistence.existingClaim": "my-state"})
    assert not [o for o in existing if o["kind"] == "PersistentVolumeClaim"]
    assert state_volume(existing)[0]["persistentVolumeClaim"] == {"claimName": "my-state"}

    throwaway = render({"persistence.enabled": False, "persistence.emptyDirSizeLimit": "5Gi"})
    assert not [o for o in throwaway if o["kind"] == "PersistentVolumeClaim"]
    assert state_volume(throwaway)[0] == {"name": "state", "emptyDir": {"sizeLimit": "5Gi"}}


# -- the Grafana dashboard --------------------------------------------------------------------
DASHBOARD = CHART / "dashboards" / "kubenova-boot.json"


def exposed_series() -> dict[str, set[str]]:
    """Every series name kubenova.metrics defines (histograms' _bucket/_sum/_count, counters'
    _total, gauges), each with its labels."""
    suffixes = {"histogram": ("_bucket", "_sum", "_count"), "counter": ("_total",), "gauge": ("",)}
    series: dict[str, set[str]] = {}

    def add(name: str, kind: str, labels: set[str]) -> None:
        for suffix in suffixes[kind]:
            series[name + suffix] = labels | ({"le"} if suffix == "_bucket" else set())

    for value in vars(kubenova_metrics).values():
        if isinstance(value, MetricWrapperBase):
            (family,) = value.describe()
            add(family.name, family.type, set(value._labelnames))
    for family in kubenova_metrics.VmStateCollector(lambda: ["ACTIVE"]).collect():
        add(family.name, family.type, {label for s in family.samples for label in s.labels})
    return series


def dashboard_expressions() -> list[str]:
    board = json.loads(DASHBOARD.read_text())
    panels = [p for p in board["panels"] if p["type"] != "row"]
    return [target["expr"] for panel in panels for target in panel["targets"]]


def test_dashboard_queries_name_only_metrics_the_operator_defines():
    series = exposed_series()
    # The boot-latency metrics the dashboard is for are all shown.
    shown = {m for expr in dashboard_expressions() for m in re.findall(r"\bkubenova_\w+", expr)}
    for needed in (
        "kubenova_instance_create_to_active_seconds_bucket",
        "kubenova_instance_create_to_guest_booted_seconds_bucket",
        "kubenova_instance_task_state_duration_seconds_bucket",
        "kubenova_instance_phase_transition_time_from_creation_seconds_bucket",
        "kubenova_scheduler_decision_seconds_bucket",
        "kubenova_scheduler_no_valid_host_total",
        "kubenova_instance_reschedules_total",
    ):
        assert needed in shown, needed
    for expr in dashboard_expressions():
        names = re.findall(r"\bkubenova_\w+", expr)
        assert names, expr
        for name in names:
            assert name in series, f"{name} is not a metric kubenova.metrics defines: {expr}"
        # Grouping labels are the metric's own (or the scrape's job).
        for group in re.findall(r"by \(([^)]*)\)", expr):
            for label in (g.strip() for g in group.split(",")):
                assert any(label in series[n] for n in names) or label == "job", (label, expr)


def test_dashboard_queries_are_promql(tmp_path):
    """Each query, with Grafana's variables given values, parses as PromQL (promtool)."""
    rules = [
        {"record": f"kubenova:dashboard:{i}", "expr": expr.replace("$__rate_interval", "1m")}
        for i, expr in enumerate(dashboard_expressions())
    ]
    for rule in rules:
        rule["expr"] = rule["expr"].replace("$job", ".*")
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    check = subprocess.run(
        [find_tool("promtool"), "check", "rules", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert f"SUCCESS: {len(rules)} rules found" in check.stdout, check.stdout


def test_dashboard_configmap_is_off_by_default_and_labelled_for_the_sidecar():
    assert not [o for o in render({}) if o["metadata"]["name"].endswith("-dashboard")]
    objects = render({"metrics.dashboard.enabled": True, "metrics.dashboard.namespace": "grafana"})
    configmap = find(objects, "ConfigMap", "nova-kubenova-dashboard")
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert configmap["metadata"]["namespace"] == "grafana"
    board = json.loads(configmap["data"]["kubenova-boot.json"])
    assert board == json.loads(DASHBOARD.read_text())
    assert board["uid"] == "kubenova-boot" and board["panels"]
    # The data source is a variable, so the dashboard loads into any Grafana.
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["query"] == "prometheus"


def test_scheduler_configmap_is_the_operators_scheduler_config():
    objects = render({"scheduler.cpu_allocation_ratio": 8, "scheduler.max_attempts": 5})
    configmap = find(objects, "ConfigMap", "nova-kubenova-scheduler")
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


def test_image_import_policy_is_passed_only_when_set(tmp_path):
    default = find(render({}), "ConfigMap", "nova-kubenova-scheduler")
    assert "image-import.yaml" not in default["data"]
    assert not [a for a in operator_container(render({}))["args"] if "image-import" in a]
    objects = render(
        {"imageImport.allowedPorts": "{80,8080}", "imageImport.allowedNetworks": "{10.96.0.0/12}"}
    )
    configmap = find(objects, "ConfigMap", "nova-kubenova-scheduler")
    # The operator reads what the chart renders, as its own policy model parses it.
    (tmp_path / "policy.yaml").write_text(configmap["data"]["image-import.yaml"])
    policy = load_policy(str(tmp_path / "policy.yaml"))
    assert policy.allowed_ports == [80, 8080]
    assert [str(n) for n in policy.allowed_networks] == ["10.96.0.0/12"]
    args = operator_container(objects)["args"]
    assert "--image-import-config=/etc/kubenova/image-import.yaml" in args
    volume = next(v for v in find(objects, "Deployment")["spec"]["template"]["spec"]["volumes"]
                  if v.get("configMap"))  # fmt: skip
    assert volume["configMap"]["name"] == configmap["metadata"]["name"]


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
        "PersistentVolumeClaim",
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
        if obj["kind"] in ("ClusterRole", "ClusterRoleBinding", "ValidatingWebhookConfiguration"):
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


def test_every_authenticated_user_may_read_the_console_ca_and_nothing_else():
    """The console's CA (a public certificate) is what `kubenova console` verifies the endpoint
    with before it sends a bearer token: readable by any authenticated user, that one object."""
    users = [
        o
        for o in ours(render({"driver": "pod"}))
        if o["metadata"]["labels"].get("app.kubernetes.io/component") == "console"
    ]
    role = find(users, "Role")
    assert permissions.expand(role["rules"], role["metadata"]["namespace"]) == {
        permissions.Permission("", "configmaps", "get", "nova-system", "kubenova-console-ca")
    }
    binding = find(users, "RoleBinding")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [
        {"kind": "Group", "name": "system:authenticated", "apiGroup": "rbac.authorization.k8s.io"}
    ]
    assert not [
        o for o in ours(render({"driver": "pod", "console.enabled": False}))
        if o["metadata"]["labels"].get("app.kubernetes.io/component") == "console"
    ]  # fmt: skip
