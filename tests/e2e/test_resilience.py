"""Resilience of the operator with real QEMU guests (TCG): SIGKILLs at random moments of 30
builds and of their deletion, kube-apiserver restarted mid-boot, the start-up reconcile of its
own hosts (nova-compute's init_host) and the audit removing a VM nobody asked for.

One operator for the module with two embedded hosts (compute-0, compute-1), a CPU allocation
ratio of 16 (the machine's 2 cores are split between the hosts: 1 vCPU each, x16 = 32 guests)
and an audit every few seconds. Run with `pytest -s` to see the counts.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import random
import re
import signal
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
import urllib3
from kubernetes import client
from kubernetes.utils.quantity import parse_quantity

from kubenova import GROUP, VERSION
from kubenova.network.datapath import Datapath, Inventory, NetworkConfig, PortBinding
from kubenova.virt.driver import DriverError, GuestMetadata, SpawnRequest
from kubenova.virt.qemu.driver import QemuProcessDriver
from tests.e2e.conftest import GUEST, assert_no_qemu_left
from tests.kit import Operator, node_ready, running_operator, wait_for
from tests.proc import processes_with

pytestmark = pytest.mark.e2e

HOSTS = ("compute-0", "compute-1")
FLAVOR = "m1.micro"
MICRO = {"vcpus": 1, "ramMiB": 128, "diskGiB": 1}
CPU_RATIO = 16.0
INSTANCES = 30
KILLS_WHILE_BOOTING = 6
KILLS_WHILE_DELETING = 2
AUDIT_INTERVAL, AUDIT_GRACE = 3.0, 4.0
SETTLE_TIMEOUT = 300.0
#: reads during an apiserver restart fail for a moment: the test's own client retries
API_BLIPS = (client.ApiException, urllib3.exceptions.HTTPError, OSError)


def say(message: str) -> None:
    print(message, flush=True)


@pytest.fixture(scope="module")
def operator(cluster, api, crds, tmp_path_factory) -> Operator:
    if not GUEST.exists():
        pytest.fail(f"{GUEST} is missing: `make setup` builds it")
    work = tmp_path_factory.mktemp("resilience")
    config = work / "scheduler.yaml"
    config.write_text(f"cpu_allocation_ratio: {CPU_RATIO}\n")
    args = (
        f"--scheduler-config={config}",
        f"--audit-interval={AUDIT_INTERVAL:g}",
        f"--audit-grace={AUDIT_GRACE:g}",
    )
    with running_operator(cluster, api, work, *args, hosts=len(HOSTS)) as handle:
        for host in HOSTS:
            wait_for(lambda h=host: node_ready(api, h), 60, f"{host} to register")
        yield handle
    assert_no_qemu_left()


class Cloud:
    """A namespace with an unlimited quota, a network, the micro flavor and the guest image."""

    def __init__(self, api, namespace: str) -> None:
        self.api, self.ns = api, namespace
        self.custom = client.CustomObjectsApi(api)
        with contextlib.suppress(client.ApiException):  # shared by the tests of the session
            self.custom.create_cluster_custom_object(
                GROUP,
                VERSION,
                "flavors",
                self.body("Flavor", FLAVOR, MICRO),
            )
        unlimited = {"instances": -1, "cores": -1, "ramMiB": -1, "volumes": -1, "gigabytes": -1}
        self.create("quotas", "Quota", "default", unlimited)
        self.create("networks", "Network", "net", {"cidr": "10.77.0.0/24"})
        checksum = Path(f"{GUEST}.sha256").read_text().split()[0]
        self.create("images", "Image", "busybox", {"source": str(GUEST), "checksum": checksum})

    @staticmethod
    def body(kind: str, name: str, spec: dict) -> dict:
        return {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": kind,
            "metadata": {"name": name},
            "spec": spec,
        }

    def create(self, plural: str, kind: str, name: str, spec: dict) -> dict:
        return self.custom.create_namespaced_custom_object(
            GROUP, VERSION, self.ns, plural, self.body(kind, name, spec)
        )

    def instance(self, name: str) -> str:
        spec = {"flavor": FLAVOR, "image": "busybox", "networks": [{"network": "net"}]}
        return self.create("instances", "Instance", name, spec)["metadata"]["uid"]

    def list(self, plural: str) -> list[dict]:
        return self.custom.list_namespaced_custom_object(GROUP, VERSION, self.ns, plural)["items"]

    def get(self, name: str) -> dict | None:
        try:
            return self.custom.get_namespaced_custom_object(
                GROUP, VERSION, self.ns, "instances", name
            )
        except client.ApiException as err:
            if err.status == 404:
                return None
            raise

    def delete(self, name: str) -> None:
        with contextlib.suppress(client.ApiException):
            self.custom.delete_namespaced_custom_object(GROUP, VERSION, self.ns, "instances", name)

    def states(self) -> collections.Counter:
        return collections.Counter(
            "/".join(filter(None, (s.get("vmState") or "NEW", s.get("taskState"))))
            for s in ((i.get("status") or {}) for i in self.list("instances"))
        )

    def settled(self) -> list[dict] | None:
        items = self.list("instances")
        done = all((i.get("status") or {}).get("vmState") in ("ACTIVE", "ERROR") for i in items)
        return items if done else None

    def allocations(self) -> dict[str, str]:
        """consumer uid -> node, over this test's hosts."""
        out = {}
        for host in HOSTS:
            try:
                rp = self.custom.get_cluster_custom_object(
                    GROUP, VERSION, "resourceproviders", host
                )
            except client.ApiException as err:
                if err.status == 404:
                    continue
                raise
            out.update({uid: host for uid in rp["spec"].get("allocations") or {}})
        return out

    def quota_used(self) -> int:
        """Instances the Quota's published usage still counts."""
        quota = self.custom.get_namespaced_custom_object(
            GROUP, VERSION, self.ns, "quotas", "default"
        )
        return int(((quota.get("status") or {}).get("used") or {}).get("instances") or 0)


@pytest.fixture
def cloud(operator, api, namespace) -> Cloud:
    return Cloud(api, namespace)


def qemu_uuids(state_dir: Path) -> list[str]:
    """The -uuid of every qemu started for one of the operator's hosts (one per process)."""
    out = []
    for pid in processes_with("qemu-system", str(state_dir)):
        with contextlib.suppress(OSError):
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            out += [argv[i + 1].decode() for i, a in enumerate(argv[:-1]) if a == b"-uuid"]
    return out


def instance_files(state_dir: Path) -> list[Path]:
    """Everything under the hosts' instance directories."""
    return [p for host in HOSTS for p in (state_dir / host / "instances").glob("**/*")]


def datapath_inventory(operator: Operator) -> Inventory:
    """What the operator's embedded datapath holds now (namespaces, taps, dnsmasq)."""
    return asyncio.run(Datapath.of_operator(operator.state_dir.resolve()).inventory())


def started_runs(operator: Operator) -> int:
    """How many runs of the operator finished their start-up (one "operator up" line each)."""
    return operator.log.read_text(errors="replace").count("kubenova operator up")


def room_for(api, flavor: dict) -> int:
    """How many instances of `flavor` the hosts hold: their allocatable resources times the
    allocation ratios the scheduler uses here (cpu CPU_RATIO, ram and disk Nova's 1.0)."""
    total = 0
    for host in HOSTS:
        alloc = client.CoreV1Api(api).read_node(host).status.allocatable
        fits = (
            float(parse_quantity(alloc["cpu"])) * CPU_RATIO / flavor["vcpus"],
            float(parse_quantity(alloc["memory"])) / (1 << 20) / flavor["ramMiB"],
            float(parse_quantity(alloc["ephemeral-storage"])) / (1 << 30) / flavor["diskGiB"],
        )
        total += int(min(fits))
    return total


def audit_removals(operator: Operator) -> collections.Counter:
    text = operator.log.read_text(errors="replace")
    return collections.Counter(re.findall(r"audit: removed (\w+) ", text))


def one_qemu_each(state_dir: Path, uids: set[str]) -> bool:
    """Exactly one qemu per uid in `uids` and none for any other (a daemonizing qemu's parent
    lives beside the VM for a moment: wait for it to go)."""
    running = collections.Counter(qemu_uuids(state_dir))
    return set(running) == uids and all(n == 1 for n in running.values())


def test_thirty_builds_survive_sigkills_and_their_deletion_leaves_nothing(operator, cloud, api):
    seed = int(os.environ.get("KUBENOVA_FAULT_SEED") or random.randrange(2**32))
    rng = random.Random(seed)
    say(f"\nfault injection: seed {seed} (KUBENOVA_FAULT_SEED={seed} repeats the kill times)")
    uids = {f"ft-{i:02d}": cloud.instance(f"ft-{i:02d}") for i in range(INSTANCES)}
    started = time.monotonic()

    runs = [started_runs(operator)]
    removed_before = audit_removals(operator)
    room = room_for(api, MICRO)
    say(f"room for {room} {FLAVOR} instances on {len(HOSTS)} hosts")

    def wait_up() -> None:
        wait_for(lambda: started_runs(operator) >= runs[0], 60, "the operator's start-up", 0.05)

    last = [cloud.states()]

    def at_work() -> bool:
        """The operator has moved some instance since its last kill (or all are settled)."""
        states = cloud.states()
        return states != last[0] or set(states) <= {"ACTIVE", "ERROR"}

    def kill_and_restart(phase: str, delay: float) -> None:
        """SIGKILL `delay` seconds after the operator got back to work (so that the kill hits
        a build step or a deletion, not only its start-up), then start it again."""
        wait_up()
        if phase == "booting":
            wait_for(at_work, 60, "the operator to move an instance", 0.1)
        time.sleep(delay)
        operator.process.kill()  # SIGKILL: no cleanup runs
        last[0] = cloud.states()
        left = f"{len(cloud.list('instances'))} left" if phase == "deleting" else dict(last[0])
        say(f"  {time.monotonic() - started:6.1f}s SIGKILL while {phase}: {left}")
        time.sleep(rng.uniform(0.0, 1.0))
        runs[0] = started_runs(operator) + 1
        operator.process.start()

    for _ in range(KILLS_WHILE_BOOTING):
        kill_and_restart("booting", rng.uniform(0.0, 4.0))
    items = wait_for(cloud.settled, SETTLE_TIMEOUT, "every instance to be ACTIVE or ERROR", 1)
    took = time.monotonic() - started
    by_state = collections.Counter(i["status"]["vmState"] for i in items)
    active = {i["metadata"]["uid"] for i in items if i["status"]["vmState"] == "ACTIVE"}
    for item in items:
        if item["status"]["vmState"] == "ERROR":
            assert item["status"].get("fault", {}).get("message"), item["status"]
            say(f"  {item['metadata']['name']} ERROR: {item['status']['fault']['message']}")
    wait_for(lambda: one_qemu_each(operator.state_dir, active), 30, "one qemu per ACTIVE instance")
    # one namespace and one dnsmasq for the Network, one tap (held by its qemu) per ACTIVE
    # instance, whichever host runs it: no duplicate after the restarts
    (place,) = datapath_inventory(operator).namespaces
    assert len(place.dnsmasq_pids) == 1 and len(place.bridges) == 1, place
    assert len(place.taps) == len(active) and all(t.up for t in place.taps), place.taps
    ports = cloud.list("ports")
    allocations = cloud.allocations()
    mine = {uid: node for uid, node in allocations.items() if uid in set(uids.values())}
    say(
        f"settled after {took:.0f}s and {KILLS_WHILE_BOOTING} kills: {dict(by_state)}; "
        f"qemu processes {len(qemu_uuids(operator.state_dir))}, ports {len(ports)}, "
        f"claims {len(mine)} ({dict(collections.Counter(mine.values()))})"
    )
    assert len(items) == INSTANCES
    if room >= INSTANCES:  # kills and restarts are no reason for a build to fail
        assert dict(by_state) == {"ACTIVE": INSTANCES}, [
            (i["metadata"]["name"], i["status"].get("fault")) for i in items
        ]
    else:  # a machine too small for the test: only NoValidHost may fail a build
        assert by_state["ACTIVE"] == room and by_state["ACTIVE"] + by_state["ERROR"] == INSTANCES
        for item in items:
            if item["status"]["vmState"] == "ERROR":
                assert "No valid host" in item["status"]["fault"]["message"], item["status"]
    # every ACTIVE instance holds exactly one port and one claim, on its host; ERROR nothing
    assert sorted(p["metadata"]["labels"]["compute.kubenova.io/instance-uid"] for p in ports) == (
        sorted(active)
    )
    hosts = {i["metadata"]["uid"]: i["status"].get("host") for i in items}
    assert mine == {uid: hosts[uid] for uid in active}

    # delete them all, in waves, killing the operator in the middle of each
    deleting = time.monotonic()
    names = list(uids)
    for wave in range(KILLS_WHILE_DELETING):
        wait_up()
        for name in names[wave::KILLS_WHILE_DELETING]:
            cloud.delete(name)
        kill_and_restart("deleting", rng.uniform(0.0, 0.5))
    wait_for(lambda: not cloud.list("instances"), 180, "every instance to be deleted", 1)
    say(f"deleted after {time.monotonic() - deleting:.0f}s and {KILLS_WHILE_DELETING} kills")

    def nothing_left() -> bool:
        return not (
            qemu_uuids(operator.state_dir)
            or any(n.taps for n in datapath_inventory(operator).namespaces)
            or cloud.list("ports")
            or set(uids.values()) & set(cloud.allocations())
            or instance_files(operator.state_dir)
            or cloud.quota_used()
        )

    try:  # the deletions, killed or not, leave nothing: nothing is left for the audit
        wait_for(nothing_left, AUDIT_INTERVAL * 2 + AUDIT_GRACE + 10, "no orphan left", 0.5)
        removed = audit_removals(operator) - removed_before
        assert removed == collections.Counter(), f"the audit had to remove {dict(removed)}"
    finally:
        say(
            f"left after deletion: qemu {len(qemu_uuids(operator.state_dir))}, ports "
            f"{len(cloud.list('ports'))}, claims "
            f"{len(set(uids.values()) & set(cloud.allocations()))}, instance files "
            f"{len(instance_files(operator.state_dir))}, quota used "
            f"{cloud.quota_used()}, taps "
            f"{sum(len(n.taps) for n in datapath_inventory(operator).namespaces)}; audit "
            "removals over the test: "
            f"{dict(audit_removals(operator))}"
        )


def test_kube_apiserver_restarted_mid_boot(operator, cloud, cluster, api):
    """The operator rides out a restart of kube-apiserver (same port, certificates, etcd):
    its watches reconnect, the builds finish, and no VM is started twice."""
    names = [f"ar-{i}" for i in range(6)]
    uids = {cloud.instance(name) for name in names}

    def some_spawning():
        with contextlib.suppress(*API_BLIPS):
            return cloud.states().get("BUILDING/SPAWNING", 0) >= 1
        return False

    wait_for(some_spawning, 60, "a build to reach SPAWNING", 0.1)
    pid = operator.process.pid
    say(f"\nrestarting kube-apiserver mid-boot: {dict(cloud.states())}")
    cluster.restart_apiserver(down_for=3.0)
    say("kube-apiserver is back")

    def all_active():
        try:
            items = cloud.list("instances")
        except API_BLIPS:
            return None
        for item in items:
            if (item.get("status") or {}).get("vmState") == "ERROR":
                raise AssertionError(f"{item['metadata']['name']}: {item['status']['fault']}")
        done = all((i.get("status") or {}).get("vmState") == "ACTIVE" for i in items)
        return items if done and len(items) == len(names) else None

    wait_for(all_active, 180, "every instance to be ACTIVE", 0.5)
    assert operator.process.alive() and operator.process.pid == pid, "the operator reconnected"
    wait_for(lambda: one_qemu_each(operator.state_dir, uids), 30, "one qemu per instance")
    say(f"all {len(names)} ACTIVE, {len(qemu_uuids(operator.state_dir))} qemu processes")
    for name in names:
        cloud.delete(name)
    wait_for(lambda: not cloud.list("instances"), 120, "the instances to be deleted")
    assert set(qemu_uuids(operator.state_dir)) & uids == set()


def test_audit_removes_a_vm_and_a_directory_nobody_asked_for(operator):
    """A qemu started straight through the driver (no Instance) and a stray instance
    directory: the audit removes both within its interval and grace."""
    stray_vm, stray_dir = str(uuid.uuid4()), str(uuid.uuid4())
    driver = QemuProcessDriver(operator.state_dir / "compute-0")
    request = SpawnRequest(
        instance_id=stray_vm,
        name="nowhere/stray",
        vcpus=1,
        ram_mib=128,
        disk_gib=1,
        image_path=GUEST.resolve(),
        image_format="qcow2",
        metadata=GuestMetadata(stray_vm, "stray"),
    )

    def spawn() -> None:  # ends when the audit removes the VM (possibly before it booted)
        with contextlib.suppress(DriverError):
            asyncio.run(driver.spawn(request, 120))

    spawning = threading.Thread(target=spawn, daemon=True)
    spawning.start()
    directory = operator.state_dir / "compute-1" / "instances" / stray_dir
    directory.mkdir(parents=True)
    (directory / "console.log").write_text("left behind\n")
    wait_for(lambda: processes_with("qemu-system", stray_vm), 60, "the stray qemu to run")
    found = time.monotonic()
    wait_for(
        lambda: (
            not processes_with("qemu-system", stray_vm)
            and not (operator.state_dir / "compute-0" / "instances" / stray_vm).exists()
            and not directory.exists()
        ),
        AUDIT_INTERVAL * 2 + AUDIT_GRACE + 10,
        "the audit to remove the stray VM and directory",
    )
    say(f"\naudit removed the stray VM and directory after {time.monotonic() - found:.1f}s")
    spawning.join(30)
    text = operator.log.read_text(errors="replace")
    assert f"audit: removed vm compute-0/{stray_vm}" in text
    assert f"audit: removed vm compute-1/{stray_dir}" in text
    metrics = urllib.request.urlopen(
        f"http://127.0.0.1:{operator.metrics_port}/metrics", timeout=5
    ).read()
    assert b'kubenova_audit_cleanups_total{kind="vm"}' in metrics


def test_audit_removes_a_network_namespace_and_a_tap_nobody_asked_for(operator, cloud):
    """A namespace (bridge, dnsmasq) for a Network that does not exist, and a tap for a Port
    that does not exist on a live Network's bridge: the audit removes both."""
    datapath = Datapath.of_operator(operator.state_dir.resolve())
    ghost = NetworkConfig(uid=str(uuid.uuid4()), cidr="10.78.0.0/24", name="nowhere/ghost")
    net = cloud.custom.get_namespaced_custom_object(GROUP, VERSION, cloud.ns, "networks", "net")
    live = NetworkConfig.of_network(net)
    stray_port = PortBinding(str(uuid.uuid4()), "fa:16:3e:78:00:09", "10.77.0.99", "nobody")

    async def make() -> str:
        await datapath.ensure_network(ghost, [])
        await datapath.add_ports(live, [])  # what it serves stays
        return (await datapath.plug(live, stray_port, "compute-0")).tap

    tap = asyncio.run(make())
    ghost_netns, live_netns = datapath.netns(ghost.uid), datapath.netns(live.uid)

    def gone() -> bool:
        places = {n.netns: n for n in datapath_inventory(operator).namespaces}
        live_taps = {t.name for t in places[live_netns].taps}
        return ghost_netns not in places and tap not in live_taps

    wait_for(gone, AUDIT_INTERVAL * 2 + AUDIT_GRACE + 10, "the audit to remove them")
    logged = (f"audit: removed netns {ghost_netns}", f"audit: removed tap {live_netns}/{tap}")

    def said() -> bool:  # the audit logs a removal once it is done: just after `gone`
        text = operator.log.read_text(errors="replace")
        return all(line in text for line in logged)

    wait_for(said, 10, f"the audit to log {logged}")
    assert not processes_with("dnsmasq", ghost_netns)


def test_a_restarted_operator_reconciles_its_hosts_vms(operator, cloud, api):
    """nova-compute's init_host: after an operator restart, a VM still running is adopted; an
    ACTIVE instance whose VM is gone (the machine rebooted, say) is stopped by default, and
    started again with --resume-guests-state-on-host-boot."""
    a, b = cloud.instance("keeper"), cloud.instance("lost")

    def active(name):
        obj = cloud.get(name) or {}
        return (obj.get("status") or {}).get("vmState") == "ACTIVE"

    wait_for(lambda: active("keeper") and active("lost"), 120, "both ACTIVE")
    wait_for(lambda: one_qemu_each(operator.state_dir, {a, b}), 30, "their qemu processes")
    (keeper_pid,) = processes_with("qemu-system", a)
    operator.process.kill()
    for pid in processes_with("qemu-system", b):
        os.kill(pid, signal.SIGKILL)  # the host lost it while its compute service was away
    operator.process.start()

    def status(name):
        return (cloud.get(name) or {}).get("status") or {}

    wait_for(lambda: status("lost").get("vmState") == "STOPPED", 60, "the lost VM's instance")
    lost = status("lost")
    assert lost["powerState"] == "SHUTDOWN"
    assert "not running" in lost["fault"]["message"], lost["fault"]
    assert status("keeper")["vmState"] == "ACTIVE" and status("keeper")["powerState"] == "RUNNING"
    assert processes_with("qemu-system", a) == [keeper_pid], "adopted, not restarted"
    say(f"\nafter a restart: keeper adopted (pid {keeper_pid}); lost: {lost['fault']['message']}")

    # the resume policy: the keeper's VM dies too; the operator comes back with the flag
    operator.process.kill()
    for pid in processes_with("qemu-system", a):
        os.kill(pid, signal.SIGKILL)
    flag = "--resume-guests-state-on-host-boot"
    operator.process.argv.append(flag)
    try:
        operator.process.start()
        wait_for(
            lambda: (
                len(processes_with("qemu-system", a)) == 1
                and status("keeper").get("powerState") == "RUNNING"
                and "started again" in _message(status("keeper"), "HostUp")
            ),
            120,
            "the keeper to be started again",
        )
    finally:
        operator.process.argv.remove(flag)
    assert status("keeper")["vmState"] == "ACTIVE"
    assert processes_with("qemu-system", a) != [keeper_pid]
    say(f"with the resume policy: {_message(status('keeper'), 'HostUp')}")
    cloud.delete("keeper")
    cloud.delete("lost")
    wait_for(lambda: not cloud.list("instances"), 60, "the instances to be deleted")


def _message(status: dict, ctype: str) -> str:
    return next((c["message"] for c in status.get("conditions") or [] if c["type"] == ctype), "")
