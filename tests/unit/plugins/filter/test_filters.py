# Copyright (c) 2026, autoscale.hetzner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The roles' filters: addresses and ports, sshd's access lists, host firewall openings."""
from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError
from ansible.plugins.loader import init_plugin_loader

# The collection loader must own the ansible_collections namespace before the filters are imported
# (as in the other unit tests), whatever order pytest collects the modules in.
init_plugin_loader()

from ansible_collections.autoscale.hetzner.plugins.filter.firewall import (  # noqa: E402  pylint: disable=wrong-import-position
    firewall_fragment_problems, firewall_opening_problems, firewall_rules, firewall_sources)
from ansible_collections.autoscale.hetzner.plugins.filter.netspec import (  # noqa: E402  pylint: disable=wrong-import-position
    canonical_cidrs, cidrs_contain, cidrs_of_family, invalid_cidrs, invalid_ports, nft_ports)
from ansible_collections.autoscale.hetzner.plugins.filter.sshd import sshd_login_refusal  # noqa: E402


def test_invalid_cidrs_names_only_the_bad_entries():
    assert invalid_cidrs(["10.0.0.0/16", "198.18.0.300/32", "example.com", "::/0", "10.0.0.0/33", " 10.0.0.1"]) == [
        "198.18.0.300/32", "example.com", "10.0.0.0/33", " 10.0.0.1"]
    assert invalid_cidrs([]) == []


def test_canonical_cidrs_masks_dedupes_and_orders():
    assert canonical_cidrs(["::/0", "10.0.1.7/24", "10.0.1.0/24", "192.0.2.1/32", "192.0.2.1"]) == [
        "10.0.1.0/24", "192.0.2.1", "::/0"]
    with pytest.raises(AnsibleFilterError, match="not an IP address"):
        canonical_cidrs(["nope"])


def test_families_and_containment():
    assert cidrs_of_family(["0.0.0.0/0", "::/0", "10.0.0.1"], 6) == ["::/0"]
    assert cidrs_contain(["198.51.100.0/24"], "198.51.100.7")
    assert not cidrs_contain(["198.51.100.0/24", "::/0"], "198.18.0.1")
    assert cidrs_contain(["0.0.0.0/0"], "198.18.0.1")


def test_ports():
    assert invalid_ports(22) == [] and invalid_ports("8000-8100") == [] and invalid_ports([80, "443"]) == []
    assert invalid_ports("9100-abc") == ["9100-abc"]
    assert invalid_ports([80, 70000, "90-80", True]) == [70000, "90-80", True]
    assert invalid_ports([]) == [[]]
    assert nft_ports(22) == "22"
    assert nft_ports([443, 80]) == "{ 80, 443 }"
    assert nft_ports([80, "81-90", 85, 443]) == "{ 80-90, 443 }"     # nft refuses overlapping set intervals


def test_sshd_login_refusal_follows_sshd_order_and_patterns():
    assert sshd_login_refusal("root", ["root"], "198.18.0.1") == ""
    assert "AllowUsers deploy does not match root" in sshd_login_refusal("root", ["root"], "198.18.0.1", ["deploy"])
    assert sshd_login_refusal("root", ["root"], "10.1.2.3", ["ro?t@10.0.0.0/8"]) == ""
    assert "does not match" in sshd_login_refusal("root", ["root"], "198.18.0.1", ["root@10.0.0.0/8"])
    assert sshd_login_refusal("root", ["root"], "198.18.0.1", ["root@198.18.0.*"]) == ""
    assert "DenyUsers" in sshd_login_refusal("root", ["root"], "", ["root"], [], ["r*"])
    assert "AllowGroups" in sshd_login_refusal("ops", ["ops", "users"], "", [], ["admins"])
    assert sshd_login_refusal("ops", ["ops", "users"], "", [], ["adm*", "us?rs"]) == ""
    assert "DenyGroups" in sshd_login_refusal("ops", ["ops"], "", [], [], [], ["ops"])


def test_opening_problems_name_the_entry_and_field():
    problems = firewall_opening_problems([
        {"name": "ok", "port": 80, "from_cidrs": ["0.0.0.0/0"]},
        {"name": "bad port", "port": "9100-abc", "from_groups": ["monitoring"]},
        {"name": "ok", "port": 81, "from_cidrs": ["10.0.0.0/33"], "protocol": "sctp", "extra": 1},
        {"name": "nosrc", "port": 82},
    ], "host_firewall_openings")
    text = "\n".join(problems)
    assert "host_firewall_openings[1].name: 'bad port'" in text
    assert "host_firewall_openings[1].port: '9100-abc'" in text
    assert "host_firewall_openings[2].name: ok is used twice" in text
    assert "host_firewall_openings[2].from_cidrs: '10.0.0.0/33'" in text
    assert "host_firewall_openings[2].protocol" in text and "unknown key(s) extra" in text
    assert "host_firewall_openings[3]: no sources" in text
    assert firewall_opening_problems([{"name": "a", "port": [80, 443], "from_groups": ["web"]}]) == []


def test_fragment_problems_name_the_variable_or_the_file():
    fragments = [{"name": "postgresql", "openings": [{"name": "pg", "port": 0, "from_groups": ["app"]}]},
                 {"name": "node_exporter", "openings": [{"name": "ne", "port": 9100}]}]
    problems = firewall_fragment_problems(fragments, current="postgresql")
    assert problems[0].startswith("host_firewall_fragment_openings[0].port: 0") and problems[0].endswith("(fragment postgresql)")
    assert problems[1].startswith("/etc/host_firewall/openings.d/node_exporter.json: openings[0]: no sources")


HOSTVARS = {"web-1": {"hcloud_private_ipv4": "10.0.1.10"}, "web-2": {"hcloud_private_ipv4": "10.0.1.11"},
            "app-1": {"hcloud_private_ipv4": "10.0.2.10"}, "db-1": {"hcloud_private_ipv4": "10.0.3.10"},
            "lonely": {}}
GROUPS = {"web": ["web-1", "web-2", "lonely"], "app": ["app-1"], "db": ["db-1"], "monitoring": []}
TIERS = [
    {"name": "web-http", "on_groups": ["web"], "port": [80, 443], "from_cidrs": ["0.0.0.0/0", "::/0"]},
    {"name": "app-from-web", "on_groups": ["app"], "port": 8080, "from_groups": ["web"]},
    {"name": "postgresql-from-app", "on_groups": ["db"], "port": 5432, "from_groups": ["app", "db"]},
    {"name": "exporter", "port": 9100, "from_groups": ["monitoring"]},
]


def test_rules_resolve_groups_to_private_ips_per_host():
    app = firewall_rules(TIERS, "app-1", ["app"], GROUPS, HOSTVARS)
    assert app == [{"name": "app-from-web", "protocol": "tcp", "ports": "8080", "v4": ["10.0.1.10", "10.0.1.11"],
                    "v6": [], "v4_any": False, "v6_any": False, "missing": ["lonely"]}]
    web = firewall_rules(TIERS, "web-1", ["web"], GROUPS, HOSTVARS)
    assert [(r["name"], r["ports"], r["v4_any"], r["v6_any"]) for r in web] == [("web-http", "{ 80, 443 }", True, True)]
    db = firewall_rules(TIERS, "db-1", ["db"], GROUPS, HOSTVARS)
    assert db[0]["v4"] == ["10.0.2.10", "10.0.3.10"]
    # the exporter opening has no source yet (empty monitoring group): no rule on any host
    assert all(r["name"] != "exporter" for r in app + web + db)
    assert firewall_sources(["198.51.100.0/24"], ["app", "nope"], GROUPS, HOSTVARS) == ["10.0.2.10", "198.51.100.0/24"]
    with pytest.raises(AnsibleFilterError, match="port"):
        firewall_rules([{"name": "x", "port": "x", "from_cidrs": ["10.0.0.0/8"]}], "db-1", ["db"], GROUPS, HOSTVARS)
