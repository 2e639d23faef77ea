"""The nftables rendering of Hetzner Cloud Firewall rules (pure, runs anywhere)."""
from __future__ import annotations

import machines_helpers  # noqa: F401  (puts localcloud/ on sys.path)
from localcloud.backends.nspawn import NspawnBackend, firewall

ANY = ["0.0.0.0/0", "::/0"]


def rule(direction="in", protocol="tcp", port=None, source_ips=None, destination_ips=None):
    return {"direction": direction, "protocol": protocol, "port": port,
            "source_ips": source_ips or [], "destination_ips": destination_ips or []}


def test_inbound_default_deny_stateful_with_allowed_ports():
    text = firewall.render({5: ("198.18.1.5", [rule(port="22", source_ips=ANY),
                                                rule(port="80-85", source_ips=["10.0.0.0/8", "2001:db8::/32"]),
                                                rule(protocol="icmp", source_ips=ANY)])})
    chain = text.split("chain s5_in {", 1)[1].split("\n  }", 1)[0]
    lines = [l.strip() for l in chain.strip().splitlines()]
    assert lines == ["ct state established,related accept",
                     "tcp dport 22 accept",
                     "ip saddr { 10.0.0.0/8 } tcp dport 80-85 accept",
                     "meta l4proto icmp accept",
                     "counter drop"]
    assert 'oifname "lc-pub" ip daddr vmap { 198.18.1.5 : jump s5_in }' in text
    assert "s5_out" not in text                       # no outbound rule: outbound stays open


def test_outbound_rules_make_outbound_default_deny():
    text = firewall.render({7: ("198.18.1.7", [rule("out", "udp", "53", destination_ips=["192.0.2.53/32"])])})
    out = text.split("chain s7_out {", 1)[1].split("\n  }", 1)[0]
    assert "ip daddr { 192.0.2.53/32 } udp dport 53 accept" in out and "counter drop" in out
    inbound = text.split("chain s7_in {", 1)[1].split("\n  }", 1)[0]
    assert "accept" in inbound.splitlines()[1] and "counter drop" in inbound   # firewall without in rules: deny
    assert 'iifname "lc-pub" ip saddr vmap { 198.18.1.7 : jump s7_out }' in text


def test_ipv6_only_rules_and_any_port():
    text = firewall.render({1: ("198.18.1.1", [rule(port="any", source_ips=["::/0"]),
                                                rule(protocol="udp", port="any", source_ips=ANY)])})
    chain = text.split("chain s1_in {", 1)[1].split("\n  }", 1)[0]
    assert "meta l4proto udp accept" in chain
    assert "tcp" not in chain                          # IPv6-only source: the machine has no public IPv6


def test_no_firewalls_renders_empty_hooks():
    text = firewall.render({})
    assert "vmap" not in text and "policy accept" in text


def test_images():
    backend = NspawnBackend()
    assert backend.image_unavailable("debian-12") is None
    assert backend.image_unavailable("debian-13") is None
    assert "not available in the local cloud" in backend.image_unavailable("ubuntu-24.04")


def test_overlapping_sources_are_merged():
    text = firewall.render({2: ("198.18.1.2", [rule(port="5432", source_ips=["10.0.0.0/8", "10.1.0.0/16",
                                                                              "10.0.0.5/32", "192.168.1.7"])])})
    assert "ip saddr { 10.0.0.0/8, 192.168.1.7/32 } tcp dport 5432 accept" in text
