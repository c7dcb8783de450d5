"""What the guest is told: network-config documents and key fingerprints (pure)."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml

from kubenova.metadata.keys import InvalidPublicKey, fingerprint
from kubenova.metadata.network_config import NicConfig, network_config
from kubenova.metadata.nocloud import seed_files
from kubenova.virt.driver import GuestMetadata

ED25519 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl alice@x"


def test_fingerprint_is_what_ssh_keygen_prints():
    assert fingerprint(ED25519) == "SHA256:+DiY3wvvV6TuJJhbpZisF/zLDA0zPMSvHdkr4UvCOqU"


@pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="no ssh-keygen here")
def test_fingerprint_agrees_with_ssh_keygen(tmp_path):
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "k")], check=True
    )
    public = (tmp_path / "k.pub").read_text().strip()
    printed = subprocess.run(
        ["ssh-keygen", "-l", "-f", str(tmp_path / "k.pub")], capture_output=True, text=True
    ).stdout.split()[1]
    assert fingerprint(public) == printed


@pytest.mark.parametrize("line", ["ssh-ed25519", "ssh-ed25519 not*base64"])
def test_malformed_keys_are_refused(line):
    with pytest.raises(InvalidPublicKey):
        fingerprint(line)


def test_no_ports_no_network_config():
    assert network_config([]) is None


def test_network_config_matches_by_mac_with_one_default_route():
    document = yaml.safe_load(
        network_config(
            [
                NicConfig("fa:16:3e:00:00:05", "10.0.0.5", 24, "10.0.0.1", ("10.0.0.2",), 1400),
                NicConfig("fa:16:3e:00:01:07", "10.1.0.7", 16, "10.1.0.1"),
            ]
        )
    )
    assert document["version"] == 2
    eth0, eth1 = document["ethernets"]["eth0"], document["ethernets"]["eth1"]
    assert eth0["match"] == {"macaddress": "fa:16:3e:00:00:05"}
    assert eth0["addresses"] == ["10.0.0.5/24"] and eth1["addresses"] == ["10.1.0.7/16"]
    assert eth0["routes"] == [{"to": "default", "via": "10.0.0.1"}] and "routes" not in eth1
    assert eth0["nameservers"] == {"addresses": ["10.0.0.2"]} and eth0["mtu"] == 1400


def test_ports_the_host_serves_by_dhcp_ask_for_it():
    """As Nova's network_data.json says ipv4_dhcp for a subnet with a DHCP server: the lease
    brings address, router and DNS; IPv6 stays static (no DHCPv6)."""
    document = yaml.safe_load(
        network_config(
            [
                NicConfig("fa:16:3e:00:00:05", "10.0.0.5", 24, "10.0.0.1", dhcp=True),
                NicConfig("fa:16:3e:00:01:07", "10.1.0.7", 16, "10.1.0.1"),
                NicConfig("fa:16:3e:00:02:09", "fd00::9", 64, dhcp=True),
            ]
        )
    )
    eth0, eth1, eth2 = (document["ethernets"][f"eth{i}"] for i in range(3))
    assert eth0["dhcp4"] is True and "addresses" not in eth0 and "routes" not in eth0
    # the first network with a gateway gives the one default route: here by its lease
    assert eth1["addresses"] == ["10.1.0.7/16"] and "routes" not in eth1
    assert eth2["addresses"] == ["fd00::9/64"] and "dhcp4" not in eth2


def test_long_public_keys_stay_on_one_line_in_meta_data():
    key = "ssh-rsa " + "A" * 700 + " bob@example"
    files = seed_files(GuestMetadata("id", "host", public_keys=(key,)))
    assert f"- {key}\n" in files["meta-data"]
