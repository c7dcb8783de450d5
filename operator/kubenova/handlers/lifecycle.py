"""Operator start-up and shutdown: settings, the conductor, the embedded compute hosts."""

from __future__ import annotations

import asyncio
import logging

import kopf
from prometheus_client import REGISTRY

from kubenova import GROUP, metrics
from kubenova.compute.registration import HostCapacity, HostRegistration
from kubenova.conductor.context import ComputeHost, ComputeHosts, Conductor, cluster_driver_for
from kubenova.conductor.status import StatusWriter
from kubenova.config import OperatorConfig
from kubenova.console.server import ConsoleServer
from kubenova.handlers.audit import start_audit
from kubenova.handlers.hosts import start_host_monitor
from kubenova.handlers.instance import FINALIZER, VM_STATES
from kubenova.image.cache import ImageCache
from kubenova.image.importer import ImageImporter
from kubenova.kube import events, permissions
from kubenova.kube.client import Objects, new_api_client
from kubenova.leader import default_namespace
from kubenova.network.datapath import Datapath, probe
from kubenova.network.ports import Ports
from kubenova.quota.quotas import Quotas
from kubenova.scheduler.filter_scheduler import FilterScheduler
from kubenova.scheduler.host_cache import HostCache
from kubenova.scheduler.placement import Placement
from kubenova.virt.fake import FakeDriver
from kubenova.virt.qemu.driver import QemuProcessDriver
from kubenova.volume.attachments import Attachments
from kubenova.volume.backend import VolumeBackend

log = logging.getLogger("kubenova.operator")


@kopf.on.startup(retries=1)  # a broken start-up must stop the operator, not loop
async def start(settings: kopf.OperatorSettings, memo: kopf.Memo, **indexes):
    config: OperatorConfig = memo.config
    # Progress and diff-base in our own annotations; status belongs to the conductor alone.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration"
    )
    settings.persistence.finalizer = FINALIZER  # a build waits for it (handlers/instance.py)
    # Every Event comes from kube/events.py (one component, declared reasons, repeats
    # counted); kopf's own would be a second source, posting its log lines.
    settings.posting.enabled = False
    settings.watching.server_timeout = 300
    # A cancelled build (the instance was deleted) cleans up its VM before it exits: give it
    # that time instead of kopf's default of a few zero-time loop cycles, after which kopf would
    # only look again when the daemon's whole cancellation_timeout has passed.
    settings.background.instant_exit_timeout = 30
    settings.networking.connect_timeout = 10
    # Resources are discovered once, at start: kopf needs no access to CRDs (least privilege;
    # restart the operator after adding a CRD version).
    settings.scanning.disabled = True

    api = await new_api_client()
    try:  # every permission this configuration needs, or stop now naming the missing ones
        await permissions.verify(api, config)
    except permissions.NotVerified as err:  # lacking, or the check itself failed: fail closed
        await api.close()
        log.error("%s", err)
        raise kopf.PermanentError(err.summary) from None
    objects = Objects(api)
    events.install(events.EventRecorder(api))
    placement = Placement(objects)
    state_dir = config.state_dir.resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    volumes = VolumeBackend(state_dir / "volumes")
    quotas = Quotas(objects)
    quotas.limits = indexes["quota_limits"]
    quotas.indexes = (indexes["instance_quota"], indexes["volume_quota"])
    conductor = Conductor(
        objects=objects,
        writer=StatusWriter(objects),
        scheduler=FilterScheduler(placement, config.scheduler),
        placement=placement,
        image_cache=ImageCache(state_dir / "_base", policy=config.image_import),
        ports=Ports(objects),
        attachments=Attachments(objects, volumes),
        volumes=volumes,
        quotas=quotas,
        hosts=ComputeHosts(
            fake_everywhere=config.driver == "fake",
            cluster_driver=cluster_driver_for(config, api),
        ),
        scheduling=config.scheduler,
        host_cache=HostCache(config.scheduler.ratios),
        start_timeout=config.start_timeout,
        boot_timeout=config.boot_timeout,
    )
    capacity = HostCapacity.of_machine(state_dir, share=max(1, config.hosts))
    qemu_hosts = config.driver != "fake" and bool(config.host_names())
    datapath, datapath_problem = await embedded_datapath(state_dir) if qemu_hosts else (None, None)
    conductor.datapath = datapath
    tasks = []
    for name in config.host_names():
        registration = HostRegistration(
            api, name, capacity, zone=config.zone, interval=config.heartbeat_interval
        )
        await registration.register()
        tasks.append(asyncio.create_task(registration.heartbeat_forever(), name=f"hb-{name}"))
        driver = (
            FakeDriver(name)
            if config.driver == "fake"
            else QemuProcessDriver(
                state_dir / name,
                datapath=datapath,
                datapath_problem=datapath_problem,
                host=name,
            )
        )
        conductor.hosts.local[name] = ComputeHost(name, driver, registration)
    # host failure and the audit (issue 7 parts 4-5): background tasks, cancelled at cleanup
    tasks.append(start_host_monitor(conductor, api, config, indexes))
    if (audit := start_audit(conductor, config)) is not None:
        tasks.append(audit)
    memo.api, memo.conductor, memo.tasks = api, conductor, tasks
    memo.image_importer = ImageImporter(
        objects, conductor.image_cache, download=config.imports_images
    )
    if config.metrics_port:
        REGISTRY.register(metrics.VmStateCollector(lambda: list(VM_STATES.values())))
        metrics.serve(config.metrics_port, config.metrics_host)
    if config.console_address is not None:  # the serial console for `kubenova console`
        console = ConsoleServer(
            conductor,
            api,
            config.console_address,
            config.console_certs,
            config.console_client_ca,
            publish_ca_in=default_namespace() if config.console_ca_configmap else None,
        )
        try:
            await console.start()
        except OSError as err:  # e.g. the port is taken: the operator runs on without it
            log.error("console endpoint on %s not started: %s", config.console_listen, err)
        else:
            memo.console = console
    log.info(
        "kubenova operator up: hosts %s, state in %s, metrics on %s:%s",
        list(conductor.hosts.local),
        state_dir,
        config.metrics_host,
        config.metrics_port,
    )


async def embedded_datapath(state_dir) -> tuple[Datapath | None, str | None]:
    """The one Datapath all embedded QEMU hosts share, or None and why not: asked once here,
    so a missing privilege is one clear line now, not a puzzling failure at every spawn
    (instances without networks still boot)."""
    found = await probe()
    if not found.ok:
        log.error("%s; instances with networks cannot spawn on the embedded hosts", found.message())
        return None, found.message()
    datapath = Datapath.of_operator(state_dir)
    log.info("embedded datapath: scope %s, files in %s", datapath.scope, datapath.state_dir)
    return datapath, None


@kopf.on.cleanup()
async def stop(memo: kopf.Memo, **_):
    for task in getattr(memo, "tasks", []):
        task.cancel()
    conductor: Conductor | None = getattr(memo, "conductor", None)
    if conductor is not None:
        for host in conductor.hosts.local.values():
            if host.registration is not None:
                try:
                    await host.registration.mark_stopped()
                except Exception as err:  # the apiserver may already be gone
                    log.warning("could not mark %s stopped: %s", host.name, err)
    console = getattr(memo, "console", None)
    if console is not None:
        await console.stop()
    if conductor is not None:
        await conductor.quotas.close()
    await events.recorder().flush()  # the Events emitted last, before the client closes
    api = getattr(memo, "api", None)
    if api is not None:
        await api.close()
