"""The datapath's names: the audit recognises its objects by them alone."""

from __future__ import annotations

from pathlib import Path

from kubenova.network.datapath import names


def test_netns_name_is_scoped_and_parses_back():
    scope = names.scope_of(Path("/var/lib/kubenova"))
    name = names.netns_name(scope, "6f1c0b52-0d7e-4a55-9a3e-2a1f6f0c9e11")
    parsed = names.parse_netns(name)
    assert name.startswith("kubenova-")
    assert parsed == names.NetnsName(
        scope, names.network_hash("6f1c0b52-0d7e-4a55-9a3e-2a1f6f0c9e11")
    )


def test_two_state_dirs_never_share_a_namespace():
    a = names.netns_name(names.scope_of(Path("/srv/a")), "uid")
    b = names.netns_name(names.scope_of(Path("/srv/b")), "uid")
    assert a != b


def test_a_recreated_network_gets_a_new_namespace():
    scope = names.scope_of(Path("/srv/a"))
    assert names.netns_name(scope, "uid-1") != names.netns_name(scope, "uid-2")


def test_foreign_namespaces_are_not_ours():
    for name in ("kubenova-probe-123", "kubenova-zz-abc", "cni-1234", "kubenova-0123abcd-0123"):
        assert names.parse_netns(name) is None


def test_interface_names_fit_ifnamsiz_and_are_recognised():
    bridge, tap = names.bridge_name("net-uid"), names.tap_name("port-uid")
    assert len(bridge) <= 15 and len(tap) <= 15
    assert names.is_bridge_name(bridge) and not names.is_tap_name(bridge)
    assert names.is_tap_name(tap) and not names.is_bridge_name(tap)
    assert names.tap_name("port-uid") != names.tap_name("other-port-uid")


def test_tap_mac_is_the_guests_with_fe_first():
    assert names.tap_mac("FA:16:3E:01:02:03") == "fe:16:3e:01:02:03"


def test_bridge_mac_is_stable_locally_administered_unicast():
    mac = names.bridge_mac("net-uid")
    assert mac == names.bridge_mac("net-uid") != names.bridge_mac("other")
    first = int(mac.split(":")[0], 16)
    assert first & 0b10 and not first & 0b1
    assert len(mac.split(":")) == 6


def test_dns_label_sanitises_like_nova():
    assert names.dns_label("Web_Server 01") == "web-server-01"
    assert names.dns_label("db.example.org") == "db"
    assert names.dns_label("x" * 80) == "x" * 63
    assert names.dns_label("---") is None
