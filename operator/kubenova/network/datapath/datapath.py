"""The Datapath: neutron's linuxbridge and DHCP agents for the embedded QEMU hosts.

Per Network: a namespace (names.netns_name) holding one bridge with the Network's gateway on it
(the "host side": tests and tools reach guests from inside the namespace) and a dnsmasq serving
DHCP (static: one entry per Port) and DNS. Per Port: a persistent tap on that bridge, named
after the Port, which a qemu started inside the namespace (`exec_prefix`) opens by name. Every
embedded host of the operator plugs its Ports into the same namespace, so instances on one
Network reach each other whichever host runs them; separate Networks share nothing.

Every operation is idempotent and safe after an operator restart: the kernel objects and the
daemonized dnsmasq are found again by name and pid file, never created twice. One Datapath per
operator process (shared by its embedded hosts) keeps operations on one Network in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import shutil
import stat
import weakref
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from kubenova.network.datapath import dnsmasq, names, proc, tapfd
from kubenova.network.datapath.config import (
    DatapathError,
    DnsmasqFiles,
    Lease,
    NetworkConfig,
    PortBinding,
    dnsmasq_argv,
    parse_dhcp_hosts,
    parse_leases,
    render_addn_hosts,
    render_dhcp_hosts,
    render_network_json,
)
from kubenova.network.datapath.dhcplog import DhcpEvent, parse_dhcp_log
from kubenova.network.datapath.fabric import Fabric, has_carrier
from kubenova.network.datapath.ip import Ip
from kubenova.tools import find_tool

log = logging.getLogger("kubenova.network.datapath")
DNSMASQ_USER = "nobody"
"""dnsmasq drops root after binding its sockets: a guest that breaks into it gets nobody."""
POLL_INTERVAL = 0.1


@dataclass(frozen=True)
class NetworkPlace:
    """Where a Network lives on this machine."""

    netns: str
    bridge: str
    address: str  # the bridge's address/prefix
    dnsmasq_pid: int
    dnsmasq: str  # started, adopted or restarted


@dataclass(frozen=True)
class TapPlug:
    """Where a Port is plugged; `up` once qemu holds the tap (Nova's network-vif-plugged)."""

    host: str
    netns: str
    bridge: str
    tap: str
    mac: str  # the guest's MAC (the Port's); the tap's own is names.tap_mac(mac)
    up: bool

    @property
    def netns_path(self) -> Path:
        return names.NETNS_DIR / self.netns

    def netdev(self, netdev_id: str) -> str:
        """qemu's -netdev value: the tap by name, no helper scripts (qemu must run inside
        `netns`, see Datapath.exec_prefix)."""
        return f"tap,id={netdev_id},ifname={self.tap},script=no,downscript=no"

    def netdev_fd(self, netdev_id: str, fd: int) -> str:
        """qemu's -netdev value for a tap opened with `open_fd` (qemu in any namespace)."""
        return f"tap,id={netdev_id},fd={fd}"

    async def open_fd(self) -> int:
        """The tap opened from inside its namespace, for a qemu that runs elsewhere (an
        instance with NICs on several Networks); see tapfd.py."""
        return await tapfd.open_tap(self.netns_path, self.tap)


@dataclass(frozen=True)
class TapInfo:
    name: str
    alias: str | None  # "host=<host> port=<namespace/name>", as plug() set it
    up: bool


@dataclass(frozen=True)
class NamespaceInventory:
    """One kubenova namespace as found on the machine."""

    netns: str
    network_uid: str | None  # from network.json; None if the state dir was lost
    network_name: str | None
    bridges: tuple[str, ...]
    taps: tuple[TapInfo, ...]
    other_links: tuple[str, ...]  # anything else but lo (never made by kubenova)
    dnsmasq_pids: tuple[int, ...]
    pids: tuple[int, ...]  # every process inside the namespace (dnsmasq, qemu)


@dataclass(frozen=True)
class Inventory:
    """Everything this operator's datapath made: what the audit compares with the API."""

    namespaces: tuple[NamespaceInventory, ...]
    stray_dnsmasq: tuple[int, ...]  # dnsmasq of ours whose namespace is gone
    stray_dirs: tuple[Path, ...]  # state directories without a namespace

    @property
    def empty(self) -> bool:
        return not (self.namespaces or self.stray_dnsmasq or self.stray_dirs)


class Datapath:
    """See the module docstring. `state_dir` holds one directory per Network namespace
    (dnsmasq's hosts, lease, pid and log files); it must be searchable by DNSMASQ_USER."""

    _locks: ClassVar[weakref.WeakValueDictionary[str, asyncio.Lock]] = weakref.WeakValueDictionary()
    """Per namespace, shared by every Datapath of the process (each host may hold one)."""

    def __init__(
        self,
        state_dir: Path,
        scope: str | None = None,
        *,
        ip_binary: str = "ip",
        dnsmasq_binary: str = "dnsmasq",
        nsenter_binary: str = "nsenter",
        dnsmasq_user: str = DNSMASQ_USER,
    ) -> None:
        self.state_dir = Path(state_dir).absolute()
        self.scope = scope or names.scope_of(self.state_dir)
        self._ip_binary = ip_binary
        self._dnsmasq_binary = dnsmasq_binary
        self._nsenter_binary = nsenter_binary
        self.dnsmasq_user = dnsmasq_user

    @classmethod
    def of_operator(cls, operator_state_dir: Path) -> Datapath:
        """The datapath of the operator whose state lives in `operator_state_dir`: its scope
        from that directory (a restart finds its namespaces again), its files in RUN_DIR."""
        scope = names.scope_of(operator_state_dir)
        return cls(names.RUN_DIR / scope, scope=scope)

    # -- names and commands -------------------------------------------------------------------
    def netns(self, network_uid: str) -> str:
        return names.netns_name(self.scope, network_uid)

    def exec_prefix(self, network_uid: str) -> list[str]:
        """argv prefix that runs a command inside the Network's namespace (and nothing else:
        same mount namespace, user and cwd). qemu run so opens its taps by name and has no
        route to any of the machine's interfaces. nsenter execs the command, so the pid and
        /proc/<pid>/cmdline are the command's own."""
        return [self.nsenter, f"--net={names.NETNS_DIR / self.netns(network_uid)}", "--"]

    @functools.cached_property
    def ip(self) -> Ip:
        return Ip(find_tool(self._ip_binary))

    @functools.cached_property
    def nsenter(self) -> str:
        return find_tool(self._nsenter_binary)

    @functools.cached_property
    def fabric(self) -> Fabric:
        return Fabric(self.ip)

    def files(self, netns: str) -> DnsmasqFiles:
        return DnsmasqFiles(self.state_dir / netns)

    # -- Networks -----------------------------------------------------------------------------
    async def ensure_network(
        self, network: NetworkConfig, ports: Iterable[PortBinding]
    ) -> NetworkPlace:
        """The Network's namespace, bridge and dnsmasq, serving exactly `ports` (all Ports of
        the Network, plugged or not, from every host). Idempotent; adopts a running dnsmasq."""
        netns = self.netns(network.uid)
        bridge = names.bridge_name(network.uid)
        address = network.interface_address()
        files = self.files(netns)
        async with self._lock(netns):
            await asyncio.to_thread(self._prepare_dir, files, network)
            await self.fabric.ensure_netns(netns)
            await self.fabric.ensure_bridge(
                netns, bridge, names.bridge_mac(network.uid), address, network.mtu
            )
            await asyncio.to_thread(_write_hosts, files, list(ports))
            argv = dnsmasq_argv(
                find_tool(self._dnsmasq_binary), network, bridge, files, self.dnsmasq_user
            )
            pid, what = await dnsmasq.Dnsmasq(files, argv, self.exec_prefix(network.uid)).ensure()
        if what != "adopted":
            log.info("network %s: dnsmasq %s (%d) in %s", network.name, what, pid, netns)
        return NetworkPlace(netns, bridge, address, pid, what)

    async def add_ports(self, network: NetworkConfig, ports: Iterable[PortBinding]) -> NetworkPlace:
        """ensure_network serving what it serves now plus `ports` (replacing entries with their
        MAC or address): for a spawn whose Port may be newer than the caller's Port watch, so
        that it is served at once without dropping the other Ports' entries."""
        new = list(ports)
        taken = {p.mac for p in new} | {p.ip for p in new}

        def current() -> list[PortBinding]:
            try:
                text = self.files(self.netns(network.uid)).hosts.read_text()
            except FileNotFoundError:
                return []
            return [p for p in parse_dhcp_hosts(text) if not {p.mac, p.ip} & taken]

        async with self._lock(self.netns(network.uid)):
            kept = await asyncio.to_thread(current)
        # A Port update between the read and ensure_network is re-applied by its owner's
        # next update_ports (the agent keeps the hosts exact from its Port watch).
        return await self.ensure_network(network, [*kept, *new])

    async def update_ports(self, network_uid: str, ports: Iterable[PortBinding]) -> bool:
        """Serve exactly `ports`: rewrite the hosts files and SIGHUP dnsmasq when they changed.
        False if the Network's dnsmasq does not run (call ensure_network)."""
        netns = self.netns(network_uid)
        files = self.files(netns)
        async with self._lock(netns):
            changed = await asyncio.to_thread(_write_hosts, files, list(ports))
            pid = dnsmasq.pid_from_file(files)
            if pid is None:
                return False
            if changed:
                dnsmasq.Dnsmasq(files, [], []).reload(pid)
            return True

    async def remove_network(self, network_uid: str) -> list[int]:
        """Stop dnsmasq, delete the taps, the bridge, the namespace and the state directory.
        Idempotent. Returns the pids still inside (a qemu the caller has yet to stop): the
        kernel frees the namespace when they exit."""
        return await self._remove_netns(self.netns(network_uid))

    async def leases(self, network_uid: str) -> list[Lease]:
        """What dnsmasq handed out: a guest's DHCP request for its Port shows up here."""
        files = self.files(self.netns(network_uid))
        try:
            text = await asyncio.to_thread(files.leases.read_text)
        except FileNotFoundError:
            return []
        return parse_leases(text)

    def dhcp_log_size(self, network_uid: str) -> int:
        """Where the Network's DHCP log ends now (0 if it has none yet): an offset for
        dhcp_events to see only what comes after."""
        try:
            return self.dhcp_log(network_uid).stat().st_size
        except FileNotFoundError:
            return 0

    def dhcp_log(self, network_uid: str) -> Path:
        """dnsmasq's log (--log-dhcp): DHCPDISCOVER/REQUEST/ACK lines with the client's MAC."""
        return self.files(self.netns(network_uid)).log

    async def dhcp_events(self, network_uid: str, offset: int = 0) -> tuple[list[DhcpEvent], int]:
        """The DHCP exchanges logged since byte `offset` of the log, and the offset to read
        from next time (take it before the guest starts, to see only that boot's requests)."""
        log_path = self.dhcp_log(network_uid)

        def read() -> tuple[str, int]:
            start = offset
            try:
                with log_path.open("rb") as handle:
                    if os.fstat(handle.fileno()).st_size < offset:
                        start = 0  # a new log (the Network was set up again): all of it is new
                    handle.seek(start)
                    data = handle.read()
            except FileNotFoundError:
                return "", offset
            # Only whole lines: dnsmasq may be in the middle of writing the last one.
            whole = data[: data.rfind(b"\n") + 1]
            return whole.decode(errors="replace"), start + len(whole)

        text, end = await asyncio.to_thread(read)
        return parse_dhcp_log(text), end

    # -- Ports --------------------------------------------------------------------------------
    async def plug(self, network: NetworkConfig, port: PortBinding, host: str) -> TapPlug:
        """The Port's tap on its Network's bridge (the Network must be ensured first). The tap
        is up, but has carrier only once qemu opens it: poll `plug_state` or `wait_up`."""
        netns = self.netns(network.uid)
        bridge = names.bridge_name(network.uid)
        tap = names.tap_name(port.uid)
        async with self._lock(netns):
            if not (names.NETNS_DIR / netns).exists():
                raise DatapathError(f"network {network.name or network.uid} is not set up here")
            if await self.ip.link(netns, bridge) is None:
                raise DatapathError(f"network {network.name or network.uid} has no bridge")
            link = await self.fabric.ensure_tap(
                netns, tap, names.tap_mac(port.mac), bridge, network.mtu, _alias(host, port)
            )
        return TapPlug(host, netns, bridge, tap, port.mac, has_carrier(link))

    async def plug_state(self, network_uid: str, port: PortBinding) -> TapPlug | None:
        """Where the Port is plugged now, None if it is not."""
        netns = self.netns(network_uid)
        if not (names.NETNS_DIR / netns).exists():
            return None
        link = await self.ip.link(netns, names.tap_name(port.uid))
        if link is None:
            return None
        host = _host_of(link.get("ifalias"))
        return TapPlug(
            host or "", netns, link.get("master", ""), link["ifname"], port.mac, has_carrier(link)
        )

    async def wait_up(self, network_uid: str, port: PortBinding, within: float) -> TapPlug:
        """The plug once its tap has carrier (qemu opened it); DatapathError after `within` s."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            plug = await self.plug_state(network_uid, port)
            if plug is None:
                raise DatapathError(f"port {port.name or port.uid} is not plugged")
            if plug.up:
                return plug
            if loop.time() >= deadline:
                raise DatapathError(f"the tap of port {port.name or port.uid} is not up")
            await asyncio.sleep(POLL_INTERVAL)

    async def unplug(self, network_uid: str, port_uid: str) -> None:
        """Delete the Port's tap (idempotent; a qemu holding it loses its link)."""
        netns = self.netns(network_uid)
        async with self._lock(netns):
            if (names.NETNS_DIR / netns).exists():
                await self.fabric.delete_link(netns, names.tap_name(port_uid))

    # -- the audit ----------------------------------------------------------------------------
    async def inventory(self) -> Inventory:
        """Every namespace, bridge, tap and dnsmasq of this operator (its scope)."""
        found = []
        for netns in self._our_namespaces():
            found.append(await self._inspect(netns))
        known = {n.netns for n in found}
        stray_pids = await asyncio.to_thread(
            proc.pids_with_arg, "dnsmasq", f"--pid-file={self.state_dir}/"
        )
        claimed = {pid for n in found for pid in n.dnsmasq_pids}
        dirs = []
        if self.state_dir.is_dir():
            dirs = [d for d in self.state_dir.iterdir() if d.is_dir() and names.parse_netns(d.name)]
        return Inventory(
            tuple(found),
            tuple(p for p in stray_pids if p not in claimed),
            tuple(sorted(d for d in dirs if d.name not in known)),
        )

    async def cleanup(self, keep: Collection[str] = ()) -> list[str]:
        """Remove everything of this operator's datapath except the Networks whose uids are
        in `keep`; returns what was removed (namespaces, stray dnsmasq, stray directories)."""
        keep_netns = {self.netns(uid) for uid in keep}
        inventory = await self.inventory()
        removed = []
        for found in inventory.namespaces:
            if found.netns not in keep_netns:
                await self.remove_namespace(found.netns)
                removed.append(found.netns)
        for pid in inventory.stray_dnsmasq:
            pidfile = _pidfile_arg(pid)
            if pidfile is not None and pidfile.parent.name not in keep_netns:
                await self.stop_stray_dnsmasq(pid)
                removed.append(f"dnsmasq {pid}")
        for directory in inventory.stray_dirs:
            if directory.name not in keep_netns:
                await self.remove_stray_dir(directory)
                removed.append(str(directory))
        with contextlib.suppress(OSError):  # nothing left of this scope: its directory too
            self.state_dir.rmdir()
        return removed

    async def remove_namespace(self, netns: str) -> list[int]:
        """remove_network by the namespace's name (the audit's: its Network may be unknown)."""
        if names.parse_netns(netns) is None:
            raise DatapathError(f"{netns} is not a kubenova namespace")
        return await self._remove_netns(netns)

    async def unplug_tap(self, netns: str, tap: str) -> None:
        """Delete one tap by name (the audit's: its Port is gone)."""
        if not names.is_tap_name(tap):
            raise DatapathError(f"{tap} is not a kubenova tap")
        async with self._lock(netns):
            if (names.NETNS_DIR / netns).exists():
                await self.fabric.delete_link(netns, tap)

    async def stop_stray_dnsmasq(self, pid: int) -> None:
        """Stop a dnsmasq of this datapath whose namespace is gone."""
        pidfile = _pidfile_arg(pid)
        if pidfile is not None and pidfile.is_relative_to(self.state_dir):
            await dnsmasq.stop_pid(pid, pidfile)

    async def remove_stray_dir(self, directory: Path) -> None:
        """Remove a state directory of this datapath that has no namespace."""
        if directory.parent == self.state_dir and names.parse_netns(directory.name):
            await asyncio.to_thread(shutil.rmtree, directory, ignore_errors=True)

    # -- building blocks ----------------------------------------------------------------------
    def _lock(self, netns: str) -> asyncio.Lock:
        lock = self._locks.get(netns)
        if lock is None:
            lock = self._locks[netns] = asyncio.Lock()
        return lock

    def _our_namespaces(self) -> list[str]:
        if not names.NETNS_DIR.is_dir():
            return []
        return sorted(
            p.name
            for p in names.NETNS_DIR.iterdir()
            if (parsed := names.parse_netns(p.name)) and parsed.scope == self.scope
        )

    async def _inspect(self, netns: str) -> NamespaceInventory:
        files = self.files(netns)
        try:
            meta = json.loads(await asyncio.to_thread(files.network.read_text))
        except (OSError, ValueError):
            meta = {}
        links = await self.ip.links(netns)
        bridges = tuple(link["ifname"] for link in links if names.is_bridge_name(link["ifname"]))
        taps = tuple(
            TapInfo(link["ifname"], link.get("ifalias"), has_carrier(link))
            for link in links
            if names.is_tap_name(link["ifname"])
        )
        ours = {*bridges, *(t.name for t in taps), "lo"}
        inode = proc.netns_inode(names.NETNS_DIR / netns)
        pids = await asyncio.to_thread(proc.pids_in_netns, inode) if inode else []
        return NamespaceInventory(
            netns,
            meta.get("uid"),
            meta.get("name"),
            bridges,
            taps,
            tuple(link["ifname"] for link in links if link["ifname"] not in ours),
            tuple(dnsmasq.pids_of(files)),
            tuple(pids),
        )

    async def _remove_netns(self, netns: str) -> list[int]:
        files = self.files(netns)
        async with self._lock(netns):
            await dnsmasq.Dnsmasq(files, [], []).stop()
            inode = proc.netns_inode(names.NETNS_DIR / netns)
            await self.fabric.delete_netns(netns)
            await asyncio.to_thread(shutil.rmtree, files.root, ignore_errors=True)
            left = await asyncio.to_thread(proc.pids_in_netns, inode) if inode else []
        if left:
            log.warning("namespace %s removed with processes still inside: %s", netns, left)
        return left

    def _prepare_dir(self, files: DnsmasqFiles, network: NetworkConfig) -> None:
        files.root.mkdir(parents=True, exist_ok=True)
        files.root.chmod(0o755)
        _check_searchable(files.root, self.dnsmasq_user)
        _replace(files.network, render_network_json(network))


def _alias(host: str, port: PortBinding) -> str:
    return f"host={host} port={port.name or port.uid}"


def _host_of(alias: str | None) -> str | None:
    for word in (alias or "").split():
        if word.startswith("host="):
            return word.removeprefix("host=")
    return None


def _pidfile_arg(pid: int) -> Path | None:
    for arg in proc.cmdline(pid):
        if arg.startswith("--pid-file="):
            return Path(arg.removeprefix("--pid-file="))
    return None


def _replace(path: Path, text: str) -> bool:
    """Write `text` atomically, world-readable (dnsmasq re-reads it as nobody); False if the
    file already held it."""
    with contextlib.suppress(OSError):
        if path.read_text() == text:
            return False
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.chmod(0o644)
    os.replace(tmp, path)
    return True


def _write_hosts(files: DnsmasqFiles, ports: list[PortBinding]) -> bool:
    if not files.root.is_dir():
        return False
    changed = _replace(files.hosts, render_dhcp_hosts(ports))
    return _replace(files.addn_hosts, render_addn_hosts(ports)) or changed


def _check_searchable(directory: Path, user: str) -> None:
    """dnsmasq re-reads its hosts files as `user` after dropping root: every directory above
    them must let it through, or a SIGHUP would silently keep the old hosts."""
    import pwd

    try:
        uid = pwd.getpwnam(user).pw_uid
    except KeyError:
        raise DatapathError(f"the user {user} dnsmasq runs as does not exist") from None
    for path in (directory, *directory.parents):
        mode = path.stat()
        if mode.st_uid != uid and not mode.st_mode & stat.S_IXOTH:
            raise DatapathError(
                f"dnsmasq runs as {user} and cannot reach {directory}: {path} is not "
                "searchable by others (chmod o+x it, or choose another state directory)"
            )
