"""dnsmasq's configuration as rendered from a Network and its Ports, and the start probe."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubenova.network.datapath import preflight
from kubenova.network.datapath.config import (
    DatapathError,
    DnsmasqFiles,
    NetworkConfig,
    PortBinding,
    dnsmasq_argv,
    parse_leases,
    render_addn_hosts,
    render_dhcp_hosts,
)
from kubenova.network.datapath.dhcplog import DhcpEvent, parse_dhcp_log

NET = NetworkConfig(uid="u1", cidr="10.20.0.0/24", gateway="10.20.0.1", name="proj/net", mtu=1400)
FILES = DnsmasqFiles(Path("/state/kubenova-x"))
PORTS = [
    PortBinding("p2", "fa:16:3e:00:00:0b", "10.20.0.11", "Web_2"),
    PortBinding("p1", "FA:16:3E:00:00:0A", "10.20.0.10", "web-1"),
    PortBinding("p3", "fa:16:3e:00:00:0c", "10.20.0.9", None),
]


def test_dhcp_hosts_one_line_per_port_sorted_by_address():
    assert render_dhcp_hosts(PORTS) == (
        "fa:16:3e:00:00:0c,10.20.0.9\n"
        "fa:16:3e:00:00:0a,10.20.0.10,web-1\n"
        "fa:16:3e:00:00:0b,10.20.0.11,web-2\n"
    )
    assert render_dhcp_hosts(reversed(PORTS)) == render_dhcp_hosts(PORTS)


def test_ipv6_hosts_are_bracketed():
    port = PortBinding("p", "fa:16:3e:00:00:01", "2001:db8::5", "v6")
    assert render_dhcp_hosts([port]) == "fa:16:3e:00:00:01,[2001:db8::5],v6\n"


def test_addn_hosts_names_only_named_ports():
    assert render_addn_hosts(PORTS) == "10.20.0.10 web-1\n10.20.0.11 web-2\n"


def test_no_ports_render_empty_files():
    assert render_dhcp_hosts([]) == render_addn_hosts([]) == ""


def test_argv_static_range_gateway_dns_mtu_and_files():
    argv = dnsmasq_argv("/usr/sbin/dnsmasq", NET, "brq0", FILES, "nobody")
    assert argv[0] == "/usr/sbin/dnsmasq"
    for wanted in (
        "--conf-file=/dev/null",
        "--no-hosts",
        "--no-resolv",
        "--bind-interfaces",
        "--interface=brq0",
        "--listen-address=10.20.0.1",
        "--dhcp-range=set:net,10.20.0.0,static,255.255.255.0,86400s",
        "--dhcp-option=option:router,10.20.0.1",
        "--dhcp-option=option:dns-server,10.20.0.1",
        "--dhcp-option=option:mtu,1400",
        "--dhcp-hostsfile=/state/kubenova-x/dhcp-hosts",
        "--addn-hosts=/state/kubenova-x/addn-hosts",
        "--dhcp-leasefile=/state/kubenova-x/leases",
        "--pid-file=/state/kubenova-x/dnsmasq.pid",
        "--user=nobody",
        "--domain=openstacklocal",
    ):
        assert wanted in argv
    assert not any(a.startswith("--server") for a in argv)  # never forwards a query


def test_argv_given_dns_servers_and_no_gateway():
    net = NetworkConfig(uid="u", cidr="10.1.0.0/24", dns_servers=("10.1.0.2", "10.1.0.3"))
    argv = dnsmasq_argv("dnsmasq", net, "br", FILES, "nobody")
    assert "--listen-address=10.1.0.2" in argv
    assert "--dhcp-option=option:router" in argv  # no default route offered
    assert "--dhcp-option=option:dns-server,10.1.0.2,10.1.0.3" in argv


def test_ipv6_network_gets_dns_but_no_dhcp_range():
    net = NetworkConfig(uid="u", cidr="2001:db8::/64", gateway="2001:db8::1")
    argv = dnsmasq_argv("dnsmasq", net, "br", FILES, "nobody")
    assert not any(a.startswith("--dhcp-range") for a in argv)
    assert NetworkConfig.interface_address(net) == "2001:db8::1/64"


def test_a_network_without_gateway_serves_dhcp_from_its_last_host_address():
    net = NetworkConfig(uid="u", cidr="10.1.0.0/24", dns_servers=("8.8.8.8",), name="p/n")
    assert str(net.host_address()) == "10.1.0.254"
    argv = dnsmasq_argv("dnsmasq", net, "br", FILES, "nobody")
    assert "--listen-address=10.1.0.254" in argv
    assert "--dhcp-option=option:router" in argv  # an empty router option: no default route


def test_a_network_with_no_address_to_spare_has_no_host_address():
    net = NetworkConfig(uid="u", cidr="10.1.0.0/31", name="p/n")
    with pytest.raises(DatapathError, match=r"p/n .* has no gateway and no address to spare"):
        net.host_address()


def test_of_objects():
    network = {
        "metadata": {"uid": "nu", "name": "net", "namespace": "proj"},
        "spec": {"cidr": "10.0.0.0/24", "gateway": "10.0.0.1", "dnsServers": ["10.0.0.2"]},
    }
    port = {
        "metadata": {"uid": "pu", "name": "net-10-0-0-5", "namespace": "proj"},
        "spec": {"network": "net", "ipAddress": "10.0.0.5", "macAddress": "fa:16:3e:aa:bb:cc"},
    }
    assert NetworkConfig.of_network(network) == NetworkConfig(
        "nu", "10.0.0.0/24", "10.0.0.1", ("10.0.0.2",), None, "proj/net"
    )
    assert PortBinding.of_port(port, "vm") == PortBinding(
        "pu", "fa:16:3e:aa:bb:cc", "10.0.0.5", "vm", "proj/net-10-0-0-5"
    )


def test_parse_leases():
    text = (
        "1796405660 fa:16:3e:00:00:05 10.9.0.5 vm5 01:fa:16:3e:00:00:05\n"
        "1796405661 FA:16:3E:00:00:06 10.9.0.6 * *\n"
        "duid 00:01:00:01\n"
        "garbage\n"
    )
    leases = parse_leases(text)
    assert [(lease.mac, lease.ip, lease.hostname) for lease in leases] == [
        ("fa:16:3e:00:00:05", "10.9.0.5", "vm5"),
        ("fa:16:3e:00:00:06", "10.9.0.6", None),
    ]
    assert leases[0].expires == 1796405660


def test_probe_names_each_missing_capability(tmp_path):
    problems = preflight.static_problems(0, tun=tmp_path / "no-tun")
    assert any("CAP_NET_ADMIN" in p for p in problems)
    assert any("CAP_SYS_ADMIN" in p for p in problems)
    assert any("no-tun cannot be opened" in p for p in problems)
    message = preflight.Probe(tuple(problems)).message()
    assert "needs root or CAP_NET_ADMIN" in message and "fake" in message
    with pytest.raises(preflight.DatapathUnavailable, match="CAP_NET_ADMIN is missing"):
        preflight.Probe(tuple(problems)).require()


def test_probe_reads_capeff(tmp_path):
    status = tmp_path / "status"
    status.write_text("Name:\tx\nCapEff:\t0000000000001000\n")
    caps = preflight.effective_capabilities(status)
    assert caps >> preflight.CAP_NET_ADMIN & 1 and not caps >> preflight.CAP_SYS_ADMIN & 1


def test_dhcp_log_events_by_mac():
    text = (
        "dnsmasq-dhcp[5610]: read /state/dhcp-hosts\n"
        "dnsmasq-dhcp[5610]: 1404540244 DHCPDISCOVER(brq7) FA:16:3E:06:00:0A \n"
        "dnsmasq-dhcp[5610]: 1404540244 DHCPOFFER(brq7) 10.6.0.10 fa:16:3e:06:00:0a \n"
        "dnsmasq-dhcp[5610]: 1404540244 next server: 10.6.0.1\n"
        "dnsmasq-dhcp[5610]: 1404540244 DHCPACK(brq7) 10.6.0.10 fa:16:3e:06:00:0a vm\n"
        "dnsmasq-dhcp[5610]: 99 DHCPDISCOVER(brq7) fa:16:3e:06:00:0f no address available\n"
    )
    assert parse_dhcp_log(text) == [
        DhcpEvent("DHCPDISCOVER", "brq7", "fa:16:3e:06:00:0a", None),
        DhcpEvent("DHCPOFFER", "brq7", "fa:16:3e:06:00:0a", "10.6.0.10"),
        DhcpEvent("DHCPACK", "brq7", "fa:16:3e:06:00:0a", "10.6.0.10"),
        DhcpEvent("DHCPDISCOVER", "brq7", "fa:16:3e:06:00:0f", None),
    ]
