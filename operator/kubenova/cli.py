"""The `kubenova` command (also `kubectl nova`, as a kubectl plugin): act on instances as the
kubeconfig's user, run the operator or a local control plane, generate the CRDs.

The instance commands live in kubenova/cmd/, one module per group."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from kubenova.models.crd import stale_files, write
from kubenova.models.v1alpha1 import KINDS

REPO = Path(__file__).resolve().parents[2]
DEFAULT_CRD_DIR = REPO / "crds"
CHART_CRD_DIR = REPO / "charts" / "kubenova" / "crds"
"""The Helm chart installs the same generated CRDs (Helm's crds/ directory)."""


def cmd_crds(args: argparse.Namespace) -> int:
    directories = [Path(d) for d in args.dir or (DEFAULT_CRD_DIR, CHART_CRD_DIR)]
    if args.check:
        failed = False
        for directory in directories:
            stale = stale_files(directory, KINDS)
            if stale:
                print(
                    f"stale CRDs in {directory}: {', '.join(stale)}; run `kubenova crds`",
                    file=sys.stderr,
                )
                failed = True
            else:
                print(f"{len(KINDS)} CRDs in {directory} match the models")
        return 1 if failed else 0
    for directory in directories:
        for path in write(directory, KINDS):
            print(path)
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    from kubernetes import config

    from kubenova.devcluster import DevCluster
    from kubenova.kube.crds import install_crds

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: stop.set())
    state_dir = Path(args.state_dir) if args.state_dir else None
    with DevCluster(state_dir=state_dir) as cluster:
        api = config.new_client_from_config(str(cluster.kubeconfig))
        with api:
            install_crds(api, KINDS)
        print(
            f"control plane up at {cluster.server} (etcd pid {cluster.pids[0]}, "
            f"kube-apiserver pid {cluster.pids[1]}); Ctrl-C stops it",
            file=sys.stderr,
        )
        print(f"export KUBECONFIG={cluster.kubeconfig}", flush=True)
        stop.wait()
        print("stopping the control plane", file=sys.stderr)
    return 0


def cmd_operator(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from kubenova.config import LeaderElection, OperatorConfig
    from kubenova.image.policy import load_policy
    from kubenova.operator_main import run
    from kubenova.scheduler.config import SchedulerConfig

    try:
        scheduler = SchedulerConfig.from_file(args.scheduler_config)
        image_import = load_policy(
            args.image_import_config,
            allowed_path_prefixes=args.image_allowed_path_prefix,
            allowed_networks=args.image_allowed_network,
            allowed_ports=args.image_allowed_port,
            allow_guest_dir=args.image_guest_dir,
        )
        config = OperatorConfig(
            state_dir=Path(args.state_dir),
            hosts=args.hosts,
            driver=args.driver,
            pod_image=args.pod_image,
            pod_disk=args.pod_disk,
            pod_storage_class=args.pod_storage_class,
            vm_namespace=args.vm_namespace,
            kubevirt_container_disk=args.kubevirt_container_disk,
            metrics_port=args.metrics_port,
            metrics_host=args.metrics_host,
            start_timeout=args.start_timeout,
            boot_timeout=args.boot_timeout,
            scheduler=scheduler,
            admission=args.admission,
            webhook_listen=args.webhook_listen,
            webhook_host=args.webhook_host,
            webhook_cert_dir=args.webhook_cert_dir,
            webhook_client_ca=args.webhook_client_ca,
            webhook_ca_secret=args.webhook_ca_secret,
            leader_election=LeaderElection(
                enabled=args.leader_elect,
                lease_name=args.leader_elect_resource_name,
                namespace=args.leader_elect_resource_namespace,
                lease_duration=args.leader_elect_lease_duration,
                renew_deadline=args.leader_elect_renew_deadline,
                retry_period=args.leader_elect_retry_period,
            ),
            shutdown_timeout=args.shutdown_timeout,
            sync_power_state_interval=args.sync_power_state_interval,
            console_listen=None if args.console_listen in ("", "off") else args.console_listen,
            console_cert_dir=args.console_cert_dir,
            console_client_ca=args.console_client_ca,
            console_ca_configmap=args.console_ca_configmap,
            # host failure and the audit (issue 7 parts 4-5)
            host_down_after=args.host_down_after,
            resume_guests_state_on_host_boot=args.resume_guests_state_on_host_boot,
            audit_interval=args.audit_interval,
            audit_grace=args.audit_grace,
            image_import=image_import,
            remove_unused_base_images=args.remove_unused_base_images,
            remove_unused_original_minimum_age_seconds=(
                args.remove_unused_original_minimum_age_seconds
            ),
        )
    except (ValidationError, OSError) as err:
        print(f"kubenova operator: invalid configuration: {err}", file=sys.stderr)
        return 2
    run(config, verbose=args.verbose, liveness=args.liveness)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from kubenova.embedded import run

    return run(once=args.once, hosts=args.hosts, timeout=args.timeout)


def cmd_launch(args: argparse.Namespace) -> int:
    from kubenova.virt.qemu.launcher import main

    ready = Path(args.ready_file) if args.ready_file else None
    return main(args.spec, Path(args.workdir), ready, args.qemu, args.shutdown_grace)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("kubenova")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def _prog() -> str:
    """`kubectl nova` when kubectl runs us as its plugin (kubectl-nova), else kubenova."""
    return "kubectl nova" if Path(sys.argv[0]).name == "kubectl-nova" else "kubenova"


def build_parser() -> argparse.ArgumentParser:
    from kubenova.cmd import actions, instances, schedule

    parser = argparse.ArgumentParser(prog=_prog(), description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    actions.add_parsers(sub)
    instances.add_parsers(sub)

    crds = sub.add_parser("crds", help="write crds/*.yaml and the chart's from the models")
    crds.add_argument(
        "--dir",
        action="append",
        help="write or check this directory (repeatable; default: crds/ and the chart's crds/)",
    )
    crds.add_argument("--check", action="store_true", help="exit 1 when the files are stale")
    crds.set_defaults(func=cmd_crds)

    up = sub.add_parser("up", help="run etcd + kube-apiserver locally with the CRDs installed")
    up.add_argument("--state-dir", help="keep the control plane's files here (default: a temp dir)")
    up.set_defaults(func=cmd_up)

    op = sub.add_parser("operator", help="run the operator (uses $KUBECONFIG)")
    op.add_argument("--state-dir", default=".kubenova/state")
    op.add_argument(
        "--hosts",
        type=int,
        help="embedded compute hosts to register (default 1; 0 with --driver pod|kubevirt)",
    )
    op.add_argument("--metrics-port", type=int, default=9464, help="0 disables metrics")
    op.add_argument("--metrics-host", default="127.0.0.1", help="0.0.0.0 in a pod")
    op.add_argument(
        "--liveness",
        metavar="URL",
        help="kopf's health endpoint for probes, e.g. http://0.0.0.0:8080/healthz",
    )
    op.add_argument(
        "--start-timeout",
        type=float,
        default=120.0,
        help="seconds a spawn, start or reboot waits for the VM to run",
    )
    op.add_argument(
        "--boot-timeout",
        type=float,
        default=300.0,
        help="seconds condition Ready waits for a sign that the guest OS is up",
    )
    op.add_argument("--driver", choices=("qemu", "fake", "pod", "kubevirt"), default="qemu")
    op.add_argument("--pod-image", default="kubenova-launcher:dev", help="pod driver's image")
    op.add_argument(
        "--pod-disk",
        choices=("pvc", "emptyDir"),
        default="pvc",
        help="pod driver: each disk a PersistentVolumeClaim kept while stopped (stop, start and "
        "reboot work), or the pod's emptyDir (lost with the pod; no power operations)",
    )
    op.add_argument(
        "--pod-storage-class",
        metavar="NAME",
        help="pod driver: the disk claims' StorageClass (default: the cluster's default class; "
        "an empty value: none, pre-provisioned volumes without a class)",
    )
    op.add_argument("--vm-namespace", help="pod/kubevirt: namespace of the VM objects")
    op.add_argument(
        "--kubevirt-container-disk",
        help="kubevirt: containerDisk image template, e.g. registry/images:{checksum}",
    )
    op.add_argument("--scheduler-config", help="YAML file (e.g. a mounted ConfigMap)")
    op.add_argument(
        "--admission", action="store_true", help="serve the validating admission webhook"
    )
    op.add_argument("--webhook-listen", default="127.0.0.1:9443", metavar="HOST:PORT")
    op.add_argument(
        "--webhook-host", help="the name or IP the apiserver dials (default: the listen host)"
    )
    op.add_argument("--webhook-cert-dir", help="TLS files (default: <state-dir>/webhook)")
    op.add_argument(
        "--webhook-client-ca",
        metavar="FILE",
        help="answer only callers with a client certificate of this CA (the apiserver's, "
        "from its AdmissionConfiguration); default: any caller",
    )
    op.add_argument(
        "--webhook-ca-secret",
        metavar="NAME",
        help="share the webhook's CA with the other replicas through this Secret (in the "
        "Lease's namespace; filled when empty or absent)",
    )
    # -- leader election (several replicas, one active; kube-controller-manager's flags) ----
    op.add_argument(
        "--leader-elect",
        action="store_true",
        help="run the controllers only while holding a Lease; standing by, serve the webhook",
    )
    op.add_argument("--leader-elect-resource-name", default="kubenova", help="the Lease's name")
    op.add_argument(
        "--leader-elect-resource-namespace",
        help="the Lease's namespace (default: $POD_NAMESPACE, else the service account's)",
    )
    op.add_argument(
        "--leader-elect-lease-duration",
        type=float,
        default=15.0,
        help="seconds a standby waits for an unrenewed Lease before taking it",
    )
    op.add_argument(
        "--leader-elect-renew-deadline",
        type=float,
        default=10.0,
        help="seconds the leader tries to renew before it gives up (and exits)",
    )
    op.add_argument(
        "--leader-elect-retry-period",
        type=float,
        default=2.0,
        help="seconds between tries to acquire or renew the Lease",
    )
    op.add_argument(
        "--shutdown-timeout",
        type=float,
        default=60.0,
        help="seconds a stop waits for the guest's ACPI power-off before forcing it",
    )
    op.add_argument(
        "--sync-power-state-interval",
        type=float,
        default=60.0,
        help="seconds between power-state syncs of ACTIVE instances (0: off)",
    )
    op.add_argument(
        "--console-listen",
        default="127.0.0.1:9465",
        metavar="HOST:PORT",
        help="the console endpoint (HTTPS, Kubernetes users, RBAC instances/console); off: none",
    )
    op.add_argument("--console-cert-dir", help="its TLS files (default: <state-dir>/console)")
    op.add_argument(
        "--console-client-ca",
        help="CA of client certificates it accepts (default: the cluster's client CA)",
    )
    op.add_argument(
        "--console-ca-configmap",
        action="store_true",
        help="publish the console's CA in ConfigMap kubenova-console-ca of the pod's namespace "
        "($POD_NAMESPACE), where `kubenova console` reads it through the API",
    )
    # -- host failure and the audit (issue 7 parts 4-5; README "Host failure", "Resilience") --
    op.add_argument(
        "--host-down-after",
        type=float,
        default=60.0,
        help="seconds without a heartbeat (Lease renewal) after which a host is down",
    )
    op.add_argument(
        "--resume-guests-state-on-host-boot",
        action="store_true",
        help="start again the VMs found not running when their host returns (else: STOPPED)",
    )
    op.add_argument(
        "--audit-interval", type=float, default=60.0, help="seconds between orphan audits (0: off)"
    )
    op.add_argument(
        "--audit-grace",
        type=float,
        default=60.0,
        help="seconds something must have been an orphan before the audit removes it",
    )
    # -- images (issues 14-15; the imageImport policy and the base-image cache) ------------
    op.add_argument(
        "--image-import-config",
        metavar="FILE",
        help="YAML of imageImport keys (allowedPathPrefixes, allowedSchemes, allowedPorts, "
        "allowedHosts, disallowedHosts, allowedNetworks, blockedNetworks, maxRedirects)",
    )
    op.add_argument(
        "--image-allowed-path-prefix",
        action="append",
        metavar="DIR",
        help="a directory Image file sources may be under (repeatable)",
    )
    op.add_argument(
        "--image-guest-dir",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also allow the guest directory `make setup` builds, .bin/guest and its cache "
        "(default: yes)",
    )
    op.add_argument(
        "--image-allowed-network",
        action="append",
        metavar="CIDR",
        help="non-public addresses Image URLs may reach, e.g. 127.0.0.1/32 (repeatable)",
    )
    op.add_argument(
        "--image-allowed-port",
        action="append",
        type=int,
        metavar="PORT",
        help="ports Image URLs may name (repeatable; default 80 and 443)",
    )
    op.add_argument(
        "--remove-unused-base-images",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="the audit removes cached base images no instance here uses (Nova's option)",
    )
    op.add_argument(
        "--remove-unused-original-minimum-age-seconds",
        type=float,
        default=86400.0,
        help="seconds a base image must have been unused before it is removed",
    )
    op.add_argument("-v", "--verbose", action="store_true")
    op.set_defaults(func=cmd_operator)

    schedule.add_parsers(sub)

    run = sub.add_parser("run", help="control plane + operator + local host; boot the example")
    run.add_argument("--once", action="store_true", help="tear down after the boot")
    run.add_argument("--hosts", type=int, default=1)
    run.add_argument("--timeout", type=float, default=300.0)
    run.set_defaults(func=cmd_run)

    launch = sub.add_parser(
        "launch", help="run one VM in the foreground (the QEMU pod driver's container)"
    )
    launch.add_argument("--spec", help="the launch spec, JSON (default: $KUBENOVA_LAUNCH_SPEC)")
    launch.add_argument("--workdir", default="/var/lib/kubenova", help="image cache and VM files")
    launch.add_argument("--ready-file", help="written once the guest booted (<workdir>/ready)")
    launch.add_argument("--qemu", default="qemu-system-x86_64")
    launch.add_argument(
        "--shutdown-grace", type=float, default=20.0, help="seconds for ACPI power-off on SIGTERM"
    )
    launch.set_defaults(func=cmd_launch)
    return parser


def main(argv: list[str] | None = None) -> int:
    from kubenova.cmd.errors import guarded

    args = build_parser().parse_args(argv)
    return guarded(args.func, args)


if __name__ == "__main__":
    sys.exit(main())
