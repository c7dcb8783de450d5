"""Run the kopf operator in this process (`kubenova operator`).

With leader election (`--leader-elect`) the process runs in up to two phases, one kopf operator
at a time:

1. standby, while another replica holds the Lease: kopf with standby.py's registry (the
   admission webhook and the indexes its checks read; the liveness endpoint answers, so the
   pod is Ready);
2. leader, once the Lease is ours: that kopf operator is stopped and the full one runs (every
   handler, the conductor, the embedded hosts), while leader.py keeps renewing the Lease.

A process that finds the Lease free at start goes straight to 2. SIGTERM stops the running
phase; a leader then releases the Lease once kopf has stopped, so a standby takes over at its
next retry. A leader that cannot renew exits at once (leader.py).
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable

import kopf

from kubenova import metrics
from kubenova.config import OperatorConfig

log = logging.getLogger("kubenova.operator")


def run(config: OperatorConfig, verbose: bool = False, liveness: str | None = None) -> None:
    """`liveness`: kopf's health endpoint URL (answers once start-up is done), or None."""
    import kubenova.handlers  # noqa: F401  (registers the handlers)
    from kubenova.kube import kopf_toggles

    kopf_toggles.install()  # before kopf makes its toggles

    if config.admission:  # kopf refuses admission handlers without a webhook server
        from kubenova.handlers import admission  # noqa: F401

    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for noisy in ("kopf.objects", "kopf.activities", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if config.leader_election.enabled:
        code = asyncio.run(run_elected(config, liveness))
        if code:
            raise SystemExit(code)
        return
    metrics.LEADER.set(1)
    asyncio.run(run_alone(config, liveness))


async def run_alone(config: OperatorConfig, liveness: str | None) -> None:
    """The one replica: kopf.operator with every handler."""
    if config.admission and config.webhook_ca_secret:
        from kubenova.kube.client import new_api_client

        api = await new_api_client()
        try:
            await share_ca(api, config)
        finally:
            await api.close()
    await kopf.operator(
        clusterwide=True,
        standalone=True,
        memo=kopf.Memo(config=config),
        liveness_endpoint=liveness,
    )


async def share_ca(api, config: OperatorConfig) -> None:
    """The webhook's CA from (or into) the Secret `config.webhook_ca_secret`, before the
    webhook server starts (webhook_ca.py); in the Lease's namespace."""
    from kubenova.leader import default_namespace
    from kubenova.webhook_ca import share_webhook_ca

    namespace = config.leader_election.namespace or default_namespace()
    await share_webhook_ca(api, namespace, config.webhook_ca_secret, config.webhook_certs)


class Stopper:
    """SIGINT/SIGTERM for the phases: stops the phase running now and marks the process as
    stopping, so no next phase starts. Installed over kopf's own handlers (kopf installs its
    own each time it starts; a phase is stopped through its stop flag instead)."""

    def __init__(self) -> None:
        self.requested: str | None = None
        self._flag: asyncio.Event | None = None

    def install(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.stop, sig.name)

    def phase(self, flag: asyncio.Event) -> None:
        self._flag = flag
        if self.requested:
            flag.set()

    def stop(self, why: str) -> None:
        if not self.requested:
            log.info("%s: stopping", why)
        self.requested = self.requested or why
        if self._flag is not None:
            self._flag.set()


async def run_kopf(
    registry: kopf.OperatorRegistry,
    config: OperatorConfig,
    liveness: str | None,
    flag: asyncio.Event,
    stopper: Stopper,
) -> None:
    """kopf.operator, as spawn_tasks + run_tasks, with our signal handlers over kopf's."""
    existing = set(asyncio.all_tasks())  # kopf cancels what appears after this when it stops
    stopper.phase(flag)
    tasks = await kopf.spawn_tasks(
        registry=registry,
        clusterwide=True,
        standalone=True,
        memo=kopf.Memo(config=config),
        liveness_endpoint=liveness,
        stop_flag=flag,
    )
    stopper.install()
    await kopf.run_tasks(tasks, ignored=existing)


async def run_elected(config: OperatorConfig, liveness: str | None) -> int:
    """The two phases (module docstring); the exit code (1: the elector failed)."""
    from kubenova.kube.client import new_api_client
    from kubenova.leader import (
        LeaderElectionError,
        LeaderElector,
        Timing,
        default_identity,
        default_namespace,
    )
    from kubenova.standby import standby_registry

    election = config.leader_election
    namespace = election.namespace or default_namespace()
    stopper = Stopper()
    stopper.install()
    metrics.LEADER.set(0)
    if config.metrics_port:  # up while standing by too (the start-up's serve is then a no-op)
        metrics.serve(config.metrics_port, config.metrics_host)
    api = await new_api_client()
    elector = LeaderElector(
        api,
        namespace,
        election.lease_name,
        default_identity(),
        Timing(election.lease_duration, election.renew_deadline, election.retry_period),
    )
    task: asyncio.Task | None = None
    try:
        if config.admission and config.webhook_ca_secret:
            await share_ca(api, config)
        log.info("leader election: I am %s, Lease %s", elector.identity, elector.where)
        try:
            leading = await elector.acquire_once()
        except LeaderElectionError as err:
            log.error("leader election failed: %s", err)
            return 1
        if not leading and not stopper.requested:
            standby = asyncio.Event()
            elector.on_started_leading = standby.set
            task = _start_elector(elector, stopper)
            await run_kopf(standby_registry(), config, liveness, standby, stopper)
        if stopper.requested or not elector.leading:
            return 1 if stopper.requested == "leader election failed" else 0
        if task is None:
            task = _start_elector(elector, stopper)
        await run_kopf(kopf.get_default_registry(), config, liveness, asyncio.Event(), stopper)
        return 1 if stopper.requested == "leader election failed" else 0
    finally:
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await elector.release()  # only when ours: after kopf stopped every handler
        await api.close()


def _start_elector(elector, stopper: Stopper) -> asyncio.Task:
    """The elector's loop as a task; its failure stops the process (_on_elector_end)."""
    task = asyncio.create_task(elector.run(), name="leader-election")
    task.add_done_callback(_on_elector_end(stopper))
    return task


def _on_elector_end(stopper: Stopper) -> Callable[[asyncio.Task], None]:
    """An elector that fails (e.g. 403 on the Lease) stops the process: a standby can never
    lead; a leader stops at once (its watchdog would stop it at the renew deadline anyway)."""

    def done(task: asyncio.Task) -> None:
        if task.cancelled():
            return
        err = task.exception()
        if err is not None:
            log.error("leader election failed: %s", err)
            stopper.stop("leader election failed")

    return done
