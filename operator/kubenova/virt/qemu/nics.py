"""An embedded instance's NICs on the datapath (network/datapath): Nova's plug_vifs for the
QEMU process driver.

Each NIC is a Port's tap on its Network's bridge. A qemu whose NICs are all on one Network runs
inside that Network's namespace (the Datapath's exec_prefix) and opens its taps by name; one
with NICs on several Networks stays in the operator's namespace and gets each tap as an open
file descriptor (`-netdev tap,fd=N`). launch.json keeps such a fd as a placeholder that
`open_tap_fds` replaces with a freshly opened one at every start, so power_on after a stop
replays the same argv. `nics.json` in the instance directory records what was plugged, so
power_on, get_info and destroy find the taps again after an operator restart.

Taps are per Port and outlive a stop (the Port still exists); destroy unplugs them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from kubenova.files import write_atomically
from kubenova.network.datapath import Datapath, DatapathError, NetworkConfig, PortBinding, TapPlug
from kubenova.network.datapath import names as dp_names
from kubenova.network.datapath.tapfd import open_tap
from kubenova.virt.driver import DriverError, SpawnRequest, Vif

NICS_FILE = "nics.json"
#: What dnsmasq logs of a guest asking for an address: the guest OS is up (its DHCP client
#: runs), whatever the image (GuestSignal.DHCP).
DHCP_ASKS = frozenset({"DHCPDISCOVER", "DHCPREQUEST"})
#: How long the taps may take to show carrier once qemu runs (it opened them before
#: daemonizing, so this is a formality).
UP_WITHIN = 5.0
_FD_PLACEHOLDER = re.compile(r"fd=tapfd:(?P<netns>[A-Za-z0-9_.-]+)/(?P<tap>[A-Za-z0-9_.-]+)")


@dataclass(frozen=True)
class Nic:
    """One NIC: its Network and Port as the datapath needs them."""

    network: NetworkConfig
    port: PortBinding


@dataclass(frozen=True)
class NicPlan:
    """What qemu is started with: one -netdev value per NIC, and the argv prefix (nsenter into
    the one Network's namespace; empty with tap fds)."""

    nics: tuple[Nic, ...]
    netdevs: tuple[str, ...]
    prefix: tuple[str, ...]


def nics_of(request: SpawnRequest) -> tuple[Nic, ...]:
    """The request's interfaces as datapath objects; the Port's DNS name is the instance's
    name (the agent uses the Port's deviceId, the same name, so the entry never flaps)."""
    namespace, _, instance = request.name.rpartition("/")
    nics = []
    for nic in request.interfaces:
        if not (nic.network_uid and nic.port_uid and nic.cidr and nic.ip):
            raise DriverError(
                f"interface {nic.mac} of {request.name} lacks its Network or Port (network_uid,"
                " port_uid, cidr, ip): the embedded datapath cannot plug it"
            )
        network = NetworkConfig(
            uid=nic.network_uid,
            cidr=nic.cidr,
            gateway=nic.gateway,
            dns_servers=tuple(nic.dns_servers),
            mtu=nic.mtu,
            name=f"{namespace}/{nic.network}",
        )
        port = PortBinding(
            uid=nic.port_uid,
            mac=nic.mac.lower(),
            ip=nic.ip,
            hostname=instance,
            name=f"{namespace}/{nic.port}",
        )
        nics.append(Nic(network, port))
    return tuple(nics)


def plan(datapath: Datapath, nics: Sequence[Nic]) -> NicPlan:
    """Pure: the -netdev values and prefix for `nics` (names only, nothing is created)."""
    networks = {nic.network.uid for nic in nics}
    if len(networks) == 1:
        (uid,) = networks
        netdevs = tuple(
            _tap_plug(datapath, nic).netdev(f"net{index}") for index, nic in enumerate(nics)
        )
        return NicPlan(tuple(nics), netdevs, tuple(datapath.exec_prefix(uid)))
    netdevs = tuple(
        f"tap,id=net{index},fd=tapfd:{datapath.netns(nic.network.uid)}/"
        f"{dp_names.tap_name(nic.port.uid)}"
        for index, nic in enumerate(nics)
    )
    return NicPlan(tuple(nics), netdevs, ())


def _tap_plug(datapath: Datapath, nic: Nic) -> TapPlug:
    return TapPlug(
        "",
        datapath.netns(nic.network.uid),
        dp_names.bridge_name(nic.network.uid),
        dp_names.tap_name(nic.port.uid),
        nic.port.mac,
        False,
    )


# -- the record in the instance directory --------------------------------------------------
def save(root: Path, nics: Iterable[Nic]) -> None:
    data = [
        {"network": dataclasses.asdict(n.network), "port": dataclasses.asdict(n.port)} for n in nics
    ]
    write_atomically(root / NICS_FILE, json.dumps(data))


def load(root: Path) -> tuple[Nic, ...]:
    """The instance's NICs; () when it has none or its directory is gone."""
    try:
        data = json.loads((root / NICS_FILE).read_text())
    except FileNotFoundError:
        return ()
    except (OSError, ValueError) as err:
        raise DriverError(f"{root / NICS_FILE} is unreadable: {err}") from err
    return tuple(
        Nic(
            NetworkConfig(**{**n["network"], "dns_servers": tuple(n["network"]["dns_servers"])}),
            PortBinding(**n["port"]),
        )
        for n in data
    )


# -- the datapath operations ---------------------------------------------------------------
async def plug(datapath: Datapath, nics: Sequence[Nic], host: str) -> list[TapPlug]:
    """Each NIC's Network set up (its dnsmasq serving the Port at once) and its tap plugged."""
    plugs = []
    try:
        for network in _networks(nics):
            await datapath.add_ports(
                network, [n.port for n in nics if n.network.uid == network.uid]
            )
        for nic in nics:
            plugs.append(await datapath.plug(nic.network, nic.port, host))
    except DatapathError as err:
        raise DriverError(f"the datapath could not plug the instance's ports: {err}") from err
    return plugs


async def unplug(datapath: Datapath, nics: Iterable[Nic]) -> None:
    """Delete the NICs' taps (idempotent); the Networks stay (other Ports may use them)."""
    for nic in nics:
        await datapath.unplug(nic.network.uid, nic.port.uid)


async def vifs(datapath: Datapath, nics: Iterable[Nic], *, wait: bool = False) -> tuple[Vif, ...]:
    """Where each NIC is plugged now; `wait`: until its tap has carrier (qemu holds it)."""
    found = []
    for nic in nics:
        state = None
        if wait:
            with contextlib.suppress(DatapathError):
                state = await datapath.wait_up(nic.network.uid, nic.port, UP_WITHIN)
        if state is None:
            state = await datapath.plug_state(nic.network.uid, nic.port)
        if state is None:
            continue
        port = nic.port.name.rpartition("/")[2] or nic.port.uid
        found.append(Vif(port, state.host, state.bridge, state.tap, state.up, state.netns))
    return tuple(found)


async def open_tap_fds(argv: Sequence[str]) -> tuple[list[str], list[int]]:
    """argv with every tap fd placeholder replaced by a tap opened from inside its namespace,
    and those fds (pass them to qemu, then close them)."""
    fds: list[int] = []
    out = []
    try:
        for arg in argv:
            match = _FD_PLACEHOLDER.search(arg)
            if match is not None:
                fd = await open_tap(dp_names.NETNS_DIR / match["netns"], match["tap"])
                fds.append(fd)
                arg = arg[: match.start()] + f"fd={fd}" + arg[match.end() :]
            out.append(arg)
    except BaseException:
        close_fds(fds)
        raise
    return out, fds


def close_fds(fds: Iterable[int]) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)


def dhcp_offsets(datapath: Datapath, nics: Iterable[Nic]) -> dict[str, int]:
    """Where each NIC's Network's DHCP log ends now (taken before qemu starts a boot)."""
    return {net.uid: datapath.dhcp_log_size(net.uid) for net in _networks(nics)}


async def dhcp_request(
    datapath: Datapath, nics: Sequence[Nic], offsets: dict[str, int]
) -> tuple[str | None, dict[str, int]]:
    """The first DHCP request for one of the NICs' MACs logged after `offsets` (a line for the
    guest boot's condition message, None if none yet), and the offsets to read from next."""
    macs = {n.port.mac.lower(): n for n in nics}
    after = dict(offsets)
    for network in _networks(nics):
        events, after[network.uid] = await datapath.dhcp_events(
            network.uid, offsets.get(network.uid, 0)
        )
        for event in events:
            nic = macs.get(event.mac)
            if event.kind in DHCP_ASKS and nic is not None and nic.network.uid == network.uid:
                return f"{event.kind} from {event.mac} on network {network.name}", after
    return None, after


def _networks(nics: Iterable[Nic]) -> list[NetworkConfig]:
    seen: dict[str, NetworkConfig] = {}
    for nic in nics:
        seen.setdefault(nic.network.uid, nic.network)
    return list(seen.values())
