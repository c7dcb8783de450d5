"""Address and MAC arithmetic of Networks (pure)."""

from __future__ import annotations

import ipaddress

import pytest

from kubenova.network.ipam import (
    AddressError,
    Subnet,
    dhcp_server_address,
    mac_address,
    port_name,
)


def subnet(**spec) -> Subnet:
    return Subnet.of_spec({"cidr": "10.0.0.0/24", **spec})


def test_hosts_skip_network_broadcast_gateway_and_dns():
    net = subnet(gateway="10.0.0.1", dnsServers=["10.0.0.2", "192.168.1.1"])
    hosts = [str(a) for a in net.hosts()]
    assert hosts[0] == "10.0.0.3" and hosts[-1] == "10.0.0.254"
    assert len(hosts) == 252 == net.size()  # 254 - gateway - the one DNS server inside
    assert "10.0.0.0" not in hosts and "10.0.0.255" not in hosts


@pytest.mark.parametrize(
    ("cidr", "size"),
    # Without a gateway the last host address is the DHCP server's (none spare in /31, /32).
    [("10.0.0.0/24", 253), ("10.0.0.0/30", 1), ("10.0.0.0/31", 2), ("10.0.0.7/32", 1)],
)
def test_size_matches_the_hosts_walked(cidr, size):
    net = Subnet.of_spec({"cidr": cidr})
    assert net.size() == size == len(list(net.hosts()))


def test_ipv6_network_is_capped_to_the_mac_space():
    net = Subnet.of_spec({"cidr": "fd00::/64"})
    assert net.size() == 1 << 24
    assert str(next(net.hosts())) == "fd00::1"


def test_free_skips_used_addresses():
    net = subnet()
    free = net.free(["10.0.0.1", "10.0.0.3"])
    assert [str(next(free)) for _ in range(3)] == ["10.0.0.2", "10.0.0.4", "10.0.0.5"]


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("10.0.1.5", "outside the network's CIDR 10.0.0.0/24"),
        ("10.0.0.1", "gateway, DHCP server or a DNS server"),
        ("10.0.0.0", "network or broadcast"),
        ("10.0.0.255", "network or broadcast"),
    ],
)
def test_fixed_ip_refusals_say_why(address, why):
    with pytest.raises(AddressError, match=why):
        subnet(gateway="10.0.0.1").check_fixed(address)


def test_without_gateway_the_dhcp_server_takes_the_last_host_address():
    net = subnet(dnsServers=["8.8.8.8"])
    assert str(dhcp_server_address(net.network, None, ["8.8.8.8"])) == "10.0.0.254"
    assert "10.0.0.254" not in {str(a) for a in net.hosts()}
    with pytest.raises(AddressError, match="DHCP server"):
        net.check_fixed("10.0.0.254")
    assert str(dhcp_server_address(net.network, "10.0.0.1")) == "10.0.0.1"
    assert dhcp_server_address(ipaddress.ip_network("10.0.0.0/31"), None) is None


def test_fixed_ip_accepted():
    assert subnet().check_fixed("10.0.0.77") == ipaddress.ip_address("10.0.0.77")


def test_port_names_are_dns_subdomains():
    assert port_name("net-a", "10.0.0.5") == "net-a-10-0-0-5"
    assert port_name("v6", "fd00::1") == "v6-fd00--1"


def test_macs_are_unique_within_a_network_and_neutron_shaped():
    net = Subnet.of_spec({"cidr": "10.0.0.0/16"})
    macs = {mac_address("uid-1", net, str(a)) for a in net.hosts()}
    assert len(macs) == net.size()
    assert all(m.startswith("fa:16:3e:") for m in macs)


def test_macs_differ_between_networks_for_the_same_offset():
    net = subnet()
    assert mac_address("uid-1", net, "10.0.0.5") != mac_address("uid-2", net, "10.0.0.5")
    assert mac_address("uid-1", net, "10.0.0.5") == mac_address("uid-1", net, "10.0.0.5")
