"""Leader election (kubenova/leader.py): client-go's decisions as pure functions, the elector's
loop against an in-memory Lease API (resourceVersion-guarded writes, as the apiserver does them),
the standby's kopf registry, the webhook CA shared through a Secret, and the flags.

tests/integration/test_leader_election.py runs two real operators against the real apiserver.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import datetime as dt
import itertools
from types import SimpleNamespace

import aiohttp
import kopf
import pytest
from kubernetes_asyncio import client
from prometheus_client import REGISTRY

from kubenova import metrics
from kubenova.cli import build_parser
from kubenova.config import LeaderElection
from kubenova.kube.client import ApiException
from kubenova.kube.events import Reason, event_body
from kubenova.leader import (
    LeaderElectionError,
    LeaderElector,
    LeaseRecord,
    Observation,
    Timing,
    deadline_passed,
    default_identity,
    default_namespace,
    held_by_another,
    next_record,
    observe,
    released,
)
from kubenova.operator_main import Stopper
from kubenova.pki import CertificateAuthority, CertificateError
from kubenova.standby import ADMISSION_INDEXES, standby_registry
from kubenova.timestamps import now, parse_time
from kubenova.webhook_ca import install, share_webhook_ca

T0 = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
T1 = T0 + dt.timedelta(seconds=5)


# -- the decisions --------------------------------------------------------------------------------
def test_a_lease_nobody_holds_is_free():
    for record in (LeaseRecord(), LeaseRecord(holder="", lease_seconds=15)):
        assert not held_by_another(Observation(record, at=100.0), "me", 100.0, 15)


def test_a_lease_held_by_another_is_held_until_it_stood_unchanged_for_its_duration():
    seen = Observation(LeaseRecord("other", 15, T0, T0, 3), at=100.0)
    assert held_by_another(seen, "me", 100.0, 15)
    assert held_by_another(seen, "me", 114.9, 15)
    assert not held_by_another(seen, "me", 115.1, 15), "expired: the holder stopped renewing"


def test_the_records_own_duration_counts_not_the_candidates():
    """A released Lease says 1 s: a candidate that still reads the old holder waits 1 s."""
    seen = Observation(LeaseRecord("other", 1, T0, T0, 3), at=100.0)
    assert not held_by_another(seen, "me", 101.5, 15)
    no_duration = Observation(LeaseRecord("other", 0, T0, T0, 3), at=100.0)
    assert held_by_another(no_duration, "me", 110.0, 15)  # falls back to ours
    assert not held_by_another(no_duration, "me", 116.0, 15)


def test_our_own_lease_is_never_held_by_another():
    seen = Observation(LeaseRecord("me", 15, T0, T0, 3), at=100.0)
    assert not held_by_another(seen, "me", 100.0, 15)


def test_the_expiry_clock_restarts_only_when_the_record_changes():
    """Measured from when it was *seen* changing (clock skew between machines never counts)."""
    first = observe(None, LeaseRecord("other", 15, T0, T0, 3), at=100.0)
    again = observe(first, LeaseRecord("other", 15, T0, T0, 3), at=110.0)
    assert again.at == 100.0, "an unrenewed Lease keeps ageing"
    renewed = observe(again, LeaseRecord("other", 15, T0, T1, 3), at=112.0)
    assert renewed.at == 112.0
    # timestamps far in the past (a skewed clock) do not make a renewing holder's Lease expired
    skewed = observe(None, LeaseRecord("other", 15, T0 - dt.timedelta(days=1), T0, 3), at=200.0)
    assert held_by_another(skewed, "me", 201.0, 15)


def test_next_record_renews_keeping_the_term_and_takes_over_counting_a_transition():
    mine = LeaseRecord("me", 15, T0, T0, 4)
    assert next_record(mine, "me", T1, 15) == LeaseRecord("me", 15, T0, T1, 4)
    theirs = LeaseRecord("other", 15, T0, T0, 4)
    assert next_record(theirs, "me", T1, 15) == LeaseRecord("me", 15, T1, T1, 5)
    free = LeaseRecord("", 1, T0, T0, 4)
    assert next_record(free, "me", T1, 15) == LeaseRecord("me", 15, T1, T1, 5)
    assert next_record(None, "me", T1, 15) == LeaseRecord("me", 15, T1, T1, 0)


def test_a_released_record_is_free_with_a_one_second_lease():
    record = released(LeaseRecord("me", 15, T0, T0, 4), T1)
    assert (record.holder, record.lease_seconds, record.transitions) == ("", 1, 4)
    assert record.spec()["holderIdentity"] == ""


def test_the_renew_deadline_counts_from_when_the_last_renewal_was_sent():
    assert not deadline_passed(renewed_at=100.0, at=109.9, renew_deadline=10)
    assert deadline_passed(renewed_at=100.0, at=110.1, renew_deadline=10)


def test_record_spec_round_trips_through_the_api_model():
    record = LeaseRecord("me", 15, T0, T1, 2)
    spec = record.spec()
    assert spec == {
        "holderIdentity": "me",
        "leaseDurationSeconds": 15,
        "acquireTime": "2030-01-01T00:00:00Z",
        "renewTime": "2030-01-01T00:00:05Z",
        "leaseTransitions": 2,
    }
    model = client.V1LeaseSpec(
        holder_identity="me",
        lease_duration_seconds=15,
        acquire_time=parse_time(spec["acquireTime"]),
        renew_time=parse_time(spec["renewTime"]),
        lease_transitions=2,
    )
    assert LeaseRecord.of_spec(model) == record
    assert LeaseRecord.of_spec(None) == LeaseRecord()


@pytest.mark.parametrize(
    ("lease", "renew", "retry"),
    [(10, 10, 2), (15, 10, 0), (15, 2.4, 2), (15, 20, 2)],
)
def test_timings_in_client_gos_order_only(lease, renew, retry):
    with pytest.raises(ValueError):
        Timing(lease, renew, retry)
    with pytest.raises(ValueError):
        LeaderElection(enabled=True, lease_duration=lease, renew_deadline=renew, retry_period=retry)
    Timing()  # the defaults: 15, 10, 2


def test_the_lease_namespace_and_the_identity(tmp_path):
    sa = tmp_path / "namespace"
    assert default_namespace({"POD_NAMESPACE": "nova-system"}, sa) == "nova-system"
    sa.write_text("from-sa\n")
    assert default_namespace({}, sa) == "from-sa"
    assert default_namespace({}, tmp_path / "missing") == "default"
    one, two = default_identity({"POD_NAME": "op-7d9f"}), default_identity({"POD_NAME": "op-7d9f"})
    assert one.startswith("op-7d9f_") and two.startswith("op-7d9f_") and one != two


# -- the elector against an in-memory Lease API ---------------------------------------------------
class FakeLeases:
    """read/create/replace of Leases with resourceVersions, as the apiserver checks them."""

    def __init__(self) -> None:
        self.leases: dict[tuple[str, str], client.V1Lease] = {}
        self.events: list[dict] = []
        self.failing: Exception | None = None
        self.writes = 0
        self._versions = itertools.count(1)

    def _check(self) -> None:
        if self.failing is not None:
            raise self.failing

    async def read_namespaced_lease(self, name, namespace):
        await asyncio.sleep(0)
        self._check()
        try:
            return copy.deepcopy(self.leases[(namespace, name)])
        except KeyError:
            raise ApiException(status=404, reason="Not Found") from None

    def _store(self, namespace, name, body, uid):
        spec = body["spec"]
        lease = client.V1Lease(
            metadata=client.V1ObjectMeta(
                name=name, namespace=namespace, resource_version=str(next(self._versions)), uid=uid
            ),
            spec=client.V1LeaseSpec(
                holder_identity=spec["holderIdentity"],
                lease_duration_seconds=spec["leaseDurationSeconds"],
                acquire_time=parse_time(spec["acquireTime"]) if spec["acquireTime"] else None,
                renew_time=parse_time(spec["renewTime"]) if spec["renewTime"] else None,
                lease_transitions=spec["leaseTransitions"],
            ),
        )
        self.leases[(namespace, name)] = lease
        self.writes += 1
        return copy.deepcopy(lease)

    async def create_namespaced_lease(self, namespace, body):
        await asyncio.sleep(0)
        self._check()
        name = body["metadata"]["name"]
        if (namespace, name) in self.leases:
            raise ApiException(status=409, reason="AlreadyExists")
        return self._store(namespace, name, body, uid=f"uid-{name}")

    async def replace_namespaced_lease(self, name, namespace, body):
        await asyncio.sleep(0)
        self._check()
        current = self.leases.get((namespace, name))
        if current is None:
            raise ApiException(status=404, reason="Not Found")
        if body["metadata"].get("resourceVersion") != current.metadata.resource_version:
            raise ApiException(status=409, reason="Conflict")
        return self._store(namespace, name, body, uid=current.metadata.uid)

    def holder(self, name="lease", namespace="ns") -> str:
        lease = self.leases.get((namespace, name))
        return (lease.spec.holder_identity or "") if lease else ""


class FakeRecorder:
    """kube/events.py's EventRecorder, keeping the Events' bodies in the fake API."""

    def __init__(self, api: FakeLeases) -> None:
        self.api = api

    async def post(self, obj, reason, message) -> None:
        self.api.events.append(event_body(obj, Reason(reason), message, now(), "test"))


FAST = Timing(lease_duration=0.6, renew_deadline=0.4, retry_period=0.1)


def elector(api: FakeLeases, identity: str, lost: list[str] | None = None, **kwargs):
    lost = [] if lost is None else lost
    e = LeaderElector(
        SimpleNamespace(),  # the API objects are replaced by the fake
        "ns",
        "lease",
        identity,
        FAST,
        on_lost=lost.append,
        watchdog=False,
        **kwargs,
    )
    e.coordination = api
    e.recorder = FakeRecorder(api)
    return e


async def until(predicate) -> float:
    """Seconds until `predicate()` held (5 at most)."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    async with asyncio.timeout(5):
        while not predicate():  # noqa: ASYNC110  (polls the code under test)
            await asyncio.sleep(0.01)
    return loop.time() - start


async def stop(task: asyncio.Task) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def test_one_of_two_candidates_leads_the_other_stands_by_and_takes_over_after_expiry():
    async def scenario():
        api = FakeLeases()
        started: list[str] = []
        a = elector(api, "a", on_started_leading=lambda: started.append("a"))
        b = elector(api, "b", on_started_leading=lambda: started.append("b"))
        assert await a.acquire_once() and a.leading
        assert not await b.acquire_once() and not b.leading
        ta, tb = asyncio.create_task(a.run()), asyncio.create_task(b.run())
        await asyncio.sleep(1.0)  # longer than the lease: a renews, so b must wait
        assert (a.leading, b.leading, api.holder()) == (True, False, "a")
        await stop(ta)  # a "dies": no release, no more renewals
        waited = await until(lambda: b.leading)
        await stop(tb)
        assert waited >= FAST.lease_duration - 0.1, "not before the lease expired"
        assert api.holder() == "b" and started == ["a", "b"]
        lease = api.leases[("ns", "lease")]
        assert lease.spec.lease_transitions == 1
        assert [e["message"] for e in api.events] == ["a became leader", "b became leader"]
        event = api.events[1]
        assert (event["reason"], event["type"], event["involvedObject"]["kind"]) == (
            "LeaderElection",
            "Normal",
            "Lease",
        )
        assert event["involvedObject"]["uid"] == "uid-lease"

    asyncio.run(scenario())


def test_a_released_lease_is_taken_at_the_next_retry():
    async def scenario():
        api = FakeLeases()
        a, b = elector(api, "a"), elector(api, "b")
        await a.acquire_once()
        ta = asyncio.create_task(a.run())
        tb = asyncio.create_task(b.run())
        await asyncio.sleep(0.3)
        await stop(ta)
        await a.release()
        assert api.holder() == "" and not a.leading
        waited = await until(lambda: b.leading)
        await stop(tb)
        assert waited < FAST.lease_duration / 2, f"took {waited:.2f}s: as if it had expired"

    asyncio.run(scenario())


def test_a_leader_that_cannot_renew_within_the_deadline_stops_leading():
    async def scenario():
        api = FakeLeases()
        lost: list[str] = []
        a = elector(api, "a", lost)
        await a.acquire_once()
        task = asyncio.create_task(a.run())
        await asyncio.sleep(0.25)
        api.failing = aiohttp.ClientConnectionError("apiserver unreachable")
        waited = await until(lambda: bool(lost))
        await asyncio.wait_for(task, 1)  # run() returns once on_lost returned
        assert waited <= FAST.renew_deadline + 0.15
        assert "renew deadline" in lost[0] and not a.leading
        assert REGISTRY.get_sample_value("kubenova_leader") == 0

    asyncio.run(scenario())


def test_a_hung_request_does_not_hold_the_leader_past_the_deadline():
    async def scenario():
        api = FakeLeases()
        lost: list[str] = []
        a = elector(api, "a", lost)
        await a.acquire_once()

        async def hang(*_):
            await asyncio.sleep(60)

        api.read_namespaced_lease = hang
        task = asyncio.create_task(a.run())
        waited = await until(lambda: bool(lost))
        await asyncio.wait_for(task, 1)
        assert waited <= FAST.retry_period + FAST.renew_deadline + 0.15

    asyncio.run(scenario())


def test_a_leader_that_finds_another_holder_stops_at_once():
    async def scenario():
        api = FakeLeases()
        lost: list[str] = []
        a = elector(api, "a", lost)
        await a.acquire_once()
        lease = api.leases[("ns", "lease")]
        lease.spec.holder_identity = "intruder"
        lease.metadata.resource_version = "999"
        task = asyncio.create_task(a.run())
        waited = await until(lambda: bool(lost))
        await asyncio.wait_for(task, 1)
        assert waited < FAST.renew_deadline and "held by intruder" in lost[0]

    asyncio.run(scenario())


def test_racing_candidates_never_both_lead():
    """Every write is guarded by the resourceVersion read: of candidates racing for a free or
    an expired Lease exactly one wins (409 for the others)."""

    async def scenario():
        api = FakeLeases()
        candidates = [elector(api, f"c{i}") for i in range(5)]
        results = await asyncio.gather(*(c.acquire_once() for c in candidates))
        assert sum(results) == 1
        winner = next(c for c in candidates if c.leading)
        # the winner dies; after expiry the others race again
        tasks = [asyncio.create_task(c.run()) for c in candidates if c is not winner]
        await until(lambda: sum(c.leading for c in candidates if c is not winner) >= 1)
        await asyncio.sleep(0.3)
        leaders = [c for c in candidates if c is not winner and c.leading]
        for task in tasks:
            await stop(task)
        assert len(leaders) == 1 and api.holder() == leaders[0].identity

    asyncio.run(scenario())


def test_forbidden_is_a_clear_error_not_a_retry():
    async def scenario():
        api = FakeLeases()
        api.failing = ApiException(status=403, reason="Forbidden")
        with pytest.raises(LeaderElectionError, match="leases"):
            await elector(api, "a").acquire_once()

    asyncio.run(scenario())


def test_a_standby_that_cannot_reach_the_apiserver_keeps_trying():
    async def scenario():
        api = FakeLeases()
        api.failing = aiohttp.ClientConnectionError("down")
        b = elector(api, "b")
        task = asyncio.create_task(b.run())
        await asyncio.sleep(0.3)
        assert not b.leading and not task.done()
        api.failing = None
        await until(lambda: b.leading)
        await stop(task)

    asyncio.run(scenario())


def test_release_is_only_for_the_holder():
    async def scenario():
        api = FakeLeases()
        a, b = elector(api, "a"), elector(api, "b")
        await a.acquire_once()
        await b.acquire_once()
        writes = api.writes
        await b.release()  # b never led: nothing written
        assert api.writes == writes and api.holder() == "a"

    asyncio.run(scenario())


# -- the standby's registry -----------------------------------------------------------------------
def test_the_standby_registry_holds_the_webhooks_and_what_they_read_and_nothing_that_writes():
    import kubenova.handlers  # noqa: F401
    from kubenova.handlers import admission

    full = kopf.get_default_registry()
    standby = standby_registry(full)
    webhooks = {h.id for h in standby._webhooks.get_all_handlers()}
    assert webhooks == {h.id for h in full._webhooks.get_all_handlers()}
    assert "instance-create" in webhooks
    assert {h.id for h in standby._indexing.get_all_handlers()} == set(ADMISSION_INDEXES)
    for writers in (standby._changing, standby._spawning, standby._watching):
        assert not writers.get_all_handlers()
    activities = {h.id: h.activity.value for h in standby._activities.get_all_handlers()}
    assert set(activities.values()) == {"authentication", "startup", "cleanup"}
    assert activities["standby-start"] == "startup"
    # the checks read exactly these indexes: _indexes() fails on a missing one
    admission._indexes({name: {} for name in ADMISSION_INDEXES})
    for name in ADMISSION_INDEXES:
        with pytest.raises(KeyError):
            admission._indexes({n: {} for n in ADMISSION_INDEXES if n != name})


def test_the_standby_registry_without_admission_has_no_webhook_and_no_index():
    registry = standby_registry(kopf.OperatorRegistry())
    assert not registry._webhooks.get_all_handlers()
    assert not registry._indexing.get_all_handlers()


# -- the process's signals ----------------------------------------------------------------------
def test_a_signal_stops_the_running_phase_and_any_next_one():
    async def scenario():
        stopper = Stopper()
        first = asyncio.Event()
        stopper.phase(first)
        stopper.stop("SIGTERM")
        assert first.is_set() and stopper.requested == "SIGTERM"
        second = asyncio.Event()
        stopper.phase(second)
        assert second.is_set(), "no phase starts after the signal"

    asyncio.run(scenario())


# -- the metrics endpoint -------------------------------------------------------------------------
def test_metrics_are_served_once_per_address(monkeypatch):
    started = []
    monkeypatch.setattr(
        metrics, "start_http_server", lambda port, addr, registry: started.append(port)
    )
    monkeypatch.setattr(metrics, "_SERVING", set())
    metrics.serve(19999, "127.0.0.1")
    metrics.serve(19999, "127.0.0.1")
    assert started == [19999]


# -- the flags ------------------------------------------------------------------------------------
def parse(*args: str):
    return build_parser().parse_args(["operator", *args])


def test_the_leader_election_flags_reach_the_config(monkeypatch):
    import kubenova.cli as cli

    seen = {}
    monkeypatch.setattr("kubenova.operator_main.run", lambda config, **_: seen.update(c=config))
    args = parse(
        "--driver=fake",
        "--leader-elect",
        "--leader-elect-resource-name=nova-kubenova",
        "--leader-elect-resource-namespace=nova-system",
        "--leader-elect-lease-duration=8",
        "--leader-elect-renew-deadline=5",
        "--leader-elect-retry-period=1",
        "--webhook-ca-secret=nova-kubenova-webhook-ca",
    )
    assert cli.cmd_operator(args) == 0
    config = seen["c"]
    assert config.leader_election == LeaderElection(
        enabled=True,
        lease_name="nova-kubenova",
        namespace="nova-system",
        lease_duration=8,
        renew_deadline=5,
        retry_period=1,
    )
    assert config.webhook_ca_secret == "nova-kubenova-webhook-ca"
    assert cli.cmd_operator(parse("--driver=fake")) == 0
    assert seen["c"].leader_election == LeaderElection()  # off, client-go's durations


def test_bad_timings_are_refused_at_start(capsys):
    import kubenova.cli as cli

    code = cli.cmd_operator(parse("--leader-elect", "--leader-elect-renew-deadline=20"))
    assert code == 2
    assert "lease duration must be greater than the renew deadline" in capsys.readouterr().err


# -- the webhook CA in a Secret -----------------------------------------------------------------
class FakeSecrets:
    def __init__(self, secret: client.V1Secret | None = None) -> None:
        self.secret = secret
        self.version = 1
        self.before_write = None  # called before a write: another replica's doing

    async def read_namespaced_secret(self, name, namespace):
        if self.secret is None:
            raise ApiException(status=404, reason="Not Found")
        return copy.deepcopy(self.secret)

    async def create_namespaced_secret(self, namespace, body):
        if self.before_write:
            self.before_write()
        if self.secret is not None:
            raise ApiException(status=409, reason="AlreadyExists")
        self.secret = client.V1Secret(
            metadata=client.V1ObjectMeta(name=body["metadata"]["name"], resource_version="1"),
            data=body["data"],
        )

    async def replace_namespaced_secret(self, name, namespace, body):
        if self.before_write:
            self.before_write()
        if body.metadata.resource_version != self.secret.metadata.resource_version:
            raise ApiException(status=409, reason="Conflict")
        self.version += 1
        body.metadata.resource_version = str(self.version)
        self.secret = copy.deepcopy(body)


def secret_with(ca: CertificateAuthority | None, version: str = "1") -> client.V1Secret:
    data = (
        {
            "ca.crt": base64.b64encode(ca.cert_pem).decode(),
            "ca.key": base64.b64encode(ca.key_pem).decode(),
        }
        if ca
        else None
    )
    return client.V1Secret(
        metadata=client.V1ObjectMeta(name="ca", resource_version=version), data=data
    )


def share(fake: FakeSecrets, cert_dir) -> CertificateAuthority:
    async def go():
        import kubenova.webhook_ca as module

        real = module.client.CoreV1Api
        module.client.CoreV1Api = lambda api: fake
        try:
            return await share_webhook_ca(SimpleNamespace(), "ns", "ca", cert_dir)
        finally:
            module.client.CoreV1Api = real

    return asyncio.run(go())


def test_the_first_replica_fills_the_charts_empty_secret_with_the_ca_it_has(tmp_path):
    own = CertificateAuthority.create("mine")
    install(tmp_path, own.cert_pem, own.key_pem)
    fake = FakeSecrets(secret_with(None))
    ca = share(fake, tmp_path)
    assert ca.cert_pem == own.cert_pem, "an upgrade from one replica keeps its caBundle"
    assert base64.b64decode(fake.secret.data["ca.crt"]) == own.cert_pem


def test_without_a_secret_one_is_created_and_a_new_ca_made(tmp_path):
    fake = FakeSecrets(None)
    ca = share(fake, tmp_path)
    assert (tmp_path / "ca.crt").read_bytes() == ca.cert_pem
    assert base64.b64decode(fake.secret.data["ca.key"]) == ca.key_pem
    assert oct((tmp_path / "ca.key").stat().st_mode & 0o777) == "0o600"


def test_the_other_replicas_take_the_ca_in_the_secret(tmp_path):
    theirs = CertificateAuthority.create("theirs")
    mine = CertificateAuthority.create("mine")
    install(tmp_path, mine.cert_pem, mine.key_pem)
    fake = FakeSecrets(secret_with(theirs))
    assert share(fake, tmp_path).cert_pem == theirs.cert_pem
    assert (tmp_path / "ca.crt").read_bytes() == theirs.cert_pem


def test_a_replica_that_loses_the_race_to_fill_the_secret_takes_the_winners(tmp_path):
    winner = CertificateAuthority.create("winner")
    fake = FakeSecrets(secret_with(None))

    def another_replica_fills_it():
        fake.before_write = None
        fake.secret = secret_with(winner, version="2")

    fake.before_write = another_replica_fills_it
    assert share(fake, tmp_path).cert_pem == winner.cert_pem
    assert (tmp_path / "ca.crt").read_bytes() == winner.cert_pem


def test_an_unusable_ca_in_the_secret_is_an_error_naming_it(tmp_path):
    fake = FakeSecrets(secret_with(None))
    fake.secret.data = {"ca.crt": base64.b64encode(b"junk").decode(), "ca.key": "AAAA"}
    with pytest.raises(CertificateError, match="Secret ns/ca"):
        share(fake, tmp_path)
