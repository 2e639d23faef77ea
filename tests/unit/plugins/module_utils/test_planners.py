# Copyright (c) 2026, autoscale.hetzner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The planners are pure: desired spec + actual object + context -> plan. Tested exhaustively here."""

from __future__ import annotations

import copy
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from catalog import FIREWALL, NETWORK, context, server  # noqa: E402  pylint: disable=wrong-import-position

from ansible_collections.autoscale.hetzner.plugins.module_utils.planners import (  # noqa: E402
    normalise, plan, planned_object, canonical_cidr,
)
from ansible_collections.autoscale.hetzner.plugins.module_utils.reconcile import Ref  # noqa: E402


def steps(p):
    return [(s.op, s.kind, s.command) for s in p.steps()]


def spec(**kw):
    kw.setdefault("state", "present")
    return kw


# ---------------------------------------------------------------- ssh_key

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA admin@host"
SSH_ACTUAL = {"id": 5, "name": "admin", "public_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA other-comment",
              "labels": {}, "fingerprint": "aa"}


def test_ssh_key_create_plans_one_post_and_the_planned_object():
    p = plan("ssh_key", spec(name="admin", public_key=KEY, labels={"a": "b"}), None, context())
    assert p.operation == "create" and steps(p) == [("create", "ssh_key", None)]
    assert p.phases[0][0].body == {"name": "admin", "public_key": KEY, "labels": {"a": "b"}}
    assert planned_object(p)["labels"] == {"a": "b"}
    assert p.diff["before"] == {}


def test_ssh_key_same_key_with_other_comment_is_unchanged():
    p = plan("ssh_key", spec(name="admin", public_key=KEY), SSH_ACTUAL, context())
    assert not p.changed and p.operation == "none"


def test_ssh_key_label_change_is_one_put():
    p = plan("ssh_key", spec(name="admin", public_key=KEY, labels={"x": "1"}), SSH_ACTUAL, context())
    assert steps(p) == [("update", "ssh_key", None)]
    assert p.phases[0][0].body == {"labels": {"x": "1"}}
    assert p.diff["before"]["labels"] == {} and p.diff["after"]["labels"] == {"x": "1"}


def test_labels_are_replaced_not_merged_and_empty_clears():
    actual = dict(SSH_ACTUAL, labels={"a": "1", "b": "2"})
    p = plan("ssh_key", spec(name="admin", labels={"a": "1"}), actual, context())
    assert p.phases[0][0].body == {"labels": {"a": "1"}}
    p = plan("ssh_key", spec(name="admin", labels={}), actual, context())
    assert p.phases[0][0].body == {"labels": {}}
    assert not plan("ssh_key", spec(name="admin"), actual, context()).changed


def test_ssh_key_already_stored_under_another_name_fails_early():
    ctx = context(ssh_key=[dict(SSH_ACTUAL, name="old")])
    p = plan("ssh_key", spec(name="admin", public_key=KEY), None, ctx)
    assert any("already stored as 'old'" in e for e in p.errors)


def test_invalid_labels_hostname_and_user_data_fail_early():
    p = plan("placement_group", spec(name="pg", labels={"hetzner.cloud/x": "1", "ok": "-bad-"}), None, context())
    assert len(p.errors) == 2 and all(e.startswith("labels:") for e in p.errors)
    p = plan("server", server_spec(name="web_1", user_data="x" * 40000), None, context(server=[]))
    text = " ".join(p.errors)
    assert "name: 'web_1' is not a valid hostname" in text and "user_data" in text


def test_ssh_key_other_key_material_is_replaced_with_a_warning():
    p = plan("ssh_key", spec(name="admin", public_key="ssh-ed25519 BBBB x"), SSH_ACTUAL, context())
    assert steps(p) == [("delete", "ssh_key", None), ("create", "ssh_key", None)]
    assert p.warnings


def test_deleting_a_protected_resource_fails_before_anything_changes():
    actual = copy.deepcopy(NETWORK)
    actual["protection"] = {"delete": True}
    p = plan("network", spec(name="net", state="absent"), actual, context())
    assert any("delete_protection: false" in e for e in p.errors)


def test_absent_deletes_and_absent_missing_is_noop():
    assert steps(plan("ssh_key", spec(name="admin", state="absent"), SSH_ACTUAL, context())) == [
        ("delete", "ssh_key", None)]
    assert not plan("ssh_key", spec(name="admin", state="absent"), None, context()).changed


# ---------------------------------------------------------------- network

def test_network_create_carries_subnets_and_routes_in_the_post():
    desired = spec(name="n2", ip_range="10.1.0.0/16",
                   subnets=[{"ip_range": "10.1.1.0/24", "network_zone": "eu-central", "type": "cloud"}],
                   routes=[{"destination": "10.100.0.0/24", "gateway": "10.1.1.2"}])
    p = plan("network", desired, None, context())
    assert not p.errors, p.errors
    assert steps(p) == [("create", "network", None)]
    assert p.phases[0][0].body["subnets"][0]["ip_range"] == "10.1.1.0/24"


def test_network_unchanged_when_equal():
    desired = spec(name="net", ip_range="10.0.0.0/16",
                   subnets=[{"ip_range": "10.0.1.0/24", "network_zone": "eu-central", "type": "cloud"}])
    assert not plan("network", desired, copy.deepcopy(NETWORK), context()).changed


def test_network_add_subnet_extends_range_and_protects_in_order():
    desired = spec(name="net", ip_range="10.0.0.0/15", delete_protection=True, labels={"env": "prod"},
                   subnets=[{"ip_range": "10.0.1.0/24", "network_zone": "eu-central", "type": "cloud"},
                            {"ip_range": "10.0.2.0/24", "network_zone": "eu-central", "type": "cloud"}])
    p = plan("network", desired, copy.deepcopy(NETWORK), context())
    assert not p.errors, p.errors
    assert steps(p) == [("update", "network", None), ("action", "network", "change_ip_range"),
                        ("action", "network", "add_subnet"), ("action", "network", "change_protection")]
    # network actions lock the network: each in its own phase
    assert all(len(phase) == 1 for phase in p.phases)


def test_network_range_can_only_be_extended():
    p = plan("network", spec(name="net", ip_range="10.2.0.0/16"), copy.deepcopy(NETWORK), context())
    assert any("can only be extended" in e for e in p.errors)


def test_network_validation_subnet_outside_overlapping_and_small_range():
    desired = spec(name="x", ip_range="10.0.0.0/16",
                   subnets=[{"ip_range": "10.1.0.0/24", "network_zone": "eu-central"},
                            {"ip_range": "10.0.5.0/24", "network_zone": "eu-central"},
                            {"ip_range": "10.0.5.128/25", "network_zone": "eu-central"}])
    p = plan("network", desired, None, context())
    text = " ".join(p.errors)
    assert "subnets[0].ip_range" in text and "outside" in text
    assert "subnets[2].ip_range" in text and "overlaps" in text
    p = plan("network", spec(name="x", ip_range="8.8.0.0/16"), None, context())
    assert "RFC 1918" in " ".join(p.errors)


def test_network_removing_a_subnet_and_route():
    actual = copy.deepcopy(NETWORK)
    actual["routes"] = [{"destination": "10.100.0.0/24", "gateway": "10.0.1.2"}]
    p = plan("network", spec(name="net", subnets=[], routes=[]), actual, context())
    assert steps(p) == [("action", "network", "delete_route"), ("action", "network", "delete_subnet")]


# ---------------------------------------------------------------- firewall

RULES = [{"direction": "in", "protocol": "tcp", "port": "22", "source_ips": ["203.0.113.0/24"]}]


def test_firewall_unchanged_when_rules_equal_after_normalising():
    p = plan("firewall", spec(name="fw", rules=RULES, apply_to_servers=["web-1"]), copy.deepcopy(FIREWALL),
             context())
    assert not p.changed, p.to_dict()


def test_firewall_rule_change_is_one_set_rules():
    rules = RULES + [{"direction": "in", "protocol": "icmp", "source_ips": ["0.0.0.0/0", "::/0"]}]
    p = plan("firewall", spec(name="fw", rules=rules), copy.deepcopy(FIREWALL), context())
    assert steps(p) == [("action", "firewall", "set_rules")]
    body = p.phases[0][0].body["rules"][1]
    assert "port" not in body and body["source_ips"] == ["0.0.0.0/0", "::/0"]


def test_firewall_apply_and_remove_servers_and_selectors():
    p = plan("firewall", spec(name="fw", apply_to_servers=[], apply_to_label_selectors=["role=web"]),
             copy.deepcopy(FIREWALL), context())
    assert steps(p) == [("action", "firewall", "remove_from_resources"), ("action", "firewall", "apply_to_resources")]
    assert p.phases[1][0].body == {"apply_to": [{"type": "label_selector", "label_selector": {"selector": "role=web"}}]}


def test_firewall_warns_on_private_sources_and_world_ssh():
    rules = [{"direction": "in", "protocol": "tcp", "port": "22", "source_ips": ["0.0.0.0/0"]},
             {"direction": "in", "protocol": "tcp", "port": "5432", "source_ips": ["10.0.0.0/16"]}]
    p = plan("firewall", spec(name="new", rules=rules), None, context())
    text = " ".join(p.warnings)
    assert "rules[0]" in text and "SSH" in text
    assert "rules[1]" in text and "private" in text and "host firewall" in text


def test_firewall_unknown_server_is_an_error_unless_pending():
    p = plan("firewall", spec(name="new", apply_to_servers=["ghost"]), None, context())
    assert any("apply_to_servers" in e and "ghost" in e for e in p.errors)
    ctx = context()
    ctx.pending.add(("server", "ghost"))
    p = plan("firewall", spec(name="new", apply_to_servers=["ghost"]), None, ctx)
    assert not p.errors
    assert p.phases[0][0].body["apply_to"] == [{"type": "server", "server": {"id": Ref("server", "ghost")}}]


def test_firewall_delete_removes_from_resources_first():
    p = plan("firewall", spec(name="fw", state="absent"), copy.deepcopy(FIREWALL), context())
    assert steps(p) == [("action", "firewall", "remove_from_resources"), ("delete", "firewall", None)]


def test_canonical_cidr():
    assert canonical_cidr("2001:DB8:0:0::/64") == "2001:db8::/64"
    assert canonical_cidr("10.0.0.1") == "10.0.0.1/32"


# ---------------------------------------------------------------- server

def server_spec(**kw):
    base = dict(name="web-1", server_type="cx23", image="debian-12", location="fsn1", state="present")
    base.update(kw)
    return base


def test_server_create_with_fixed_ip_attaches_after_create():
    ctx = context(server=[])
    p = plan("server", server_spec(networks=[{"network": "net", "ip": "10.0.1.9"}], firewalls=["fw"],
                                   ssh_keys=["admin"], backups=True), None, ctx)
    assert not p.errors, p.errors
    assert steps(p) == [("create", "server", None), ("action", "server", "attach_to_network"),
                        ("action", "server", "enable_backup")]
    body = p.phases[0][0].body
    assert body["image"] == 1001 and body["ssh_keys"] == [5] and body["firewalls"] == [{"firewall": 7}]
    assert "networks" not in body
    assert p.phases[1][0].body == {"network": 10, "ip": "10.0.1.9"}
    assert planned_object(p)["networks"] == [{"network": "net", "ip": "10.0.1.9", "alias_ips": []}]


def test_server_create_without_fixed_ip_passes_networks_in_post():
    p = plan("server", server_spec(networks=["net"]), None, context(server=[]))
    assert steps(p) == [("create", "server", None)] and p.phases[0][0].body["networks"] == [10]


def test_server_deprecated_type_fails_with_successor():
    p = plan("server", server_spec(server_type="cx22"), None, context(server=[]))
    assert any("server_type" in e and "cx22" in e and "use cx23" in e for e in p.errors), p.errors


def test_server_type_with_announced_deprecation_warns():
    p = plan("server", server_spec(server_type="cpx11"), None, context(server=[]))
    assert not p.errors and any("cpx11" in w and "deprecated" in w for w in p.warnings)


def test_server_unknown_image_location_and_type_not_in_location():
    p = plan("server", server_spec(image="nope", location="mars"), None, context(server=[]))
    text = " ".join(p.errors)
    assert "image" in text and "nope" in text and "location" in text and "mars" in text
    p = plan("server", server_spec(server_type="cx23", location="ash"), None, context(server=[]))
    assert any("not offered in ash" in e for e in p.errors)


def test_server_arm_type_needs_arm_image():
    p = plan("server", server_spec(server_type="cax11", image="ubuntu-24.04"), None, context(server=[]))
    assert any("architecture" in e or "arm" in e for e in p.errors)


def test_server_location_outside_network_zone():
    p = plan("server", server_spec(server_type="cpx22", location="ash", networks=["net"]), None, context(server=[]))
    assert any("network zone" in e for e in p.errors), p.errors


def test_server_fixed_ip_outside_subnet_or_taken():
    p = plan("server", server_spec(name="web-2", networks=[{"network": "net", "ip": "10.0.9.9"}]), None, context())
    assert any("outside every subnet" in e for e in p.errors)
    p = plan("server", server_spec(name="web-2", networks=[{"network": "net", "ip": "10.0.1.5"}]), None, context())
    assert any("already used by server web-1" in e for e in p.errors)


def test_server_unchanged_is_idempotent():
    actual = server(firewalls=[7])
    p = plan("server", server_spec(networks=[{"network": "net", "ip": "10.0.1.5"}], firewalls=["fw"],
                                   ssh_keys=["admin"], labels={}), actual, context())
    assert not p.changed, p.to_dict()


def test_server_type_change_stops_changes_and_starts_again():
    p = plan("server", server_spec(server_type="cx33"), server(), context())
    assert steps(p) == [("action", "server", "poweroff"), ("action", "server", "change_type"),
                        ("action", "server", "poweron")]
    assert p.diff["before"]["server_type"] == "cx23" and p.diff["after"]["server_type"] == "cx33"


def test_server_state_stopped_and_started():
    assert steps(plan("server", server_spec(state="stopped"), server(), context())) == [
        ("action", "server", "poweroff")]
    assert steps(plan("server", server_spec(state="started"), server(status="off"), context())) == [
        ("action", "server", "poweron")]
    assert not plan("server", server_spec(state="present"), server(status="off"), context()).changed


def test_server_restarted_reboots_a_running_server_and_starts_a_stopped_one():
    assert steps(plan("server", server_spec(state="restarted"), server(), context())) == [
        ("action", "server", "reboot")]
    assert steps(plan("server", server_spec(state="restarted"), server(status="off"), context())) == [
        ("action", "server", "poweron")]


def test_server_labels_and_firewall_changes():
    p = plan("server", server_spec(labels={"role": "web"}, firewalls=[]), server(), context())
    assert steps(p) == [("update", "server", None), ("action", "firewall", "remove_from_resources")]


def test_server_rebuild_and_image_drift_warning():
    p = plan("server", server_spec(image="ubuntu-24.04"), server(), context())
    assert not p.changed and any("state=rebuild " in w for w in p.warnings)
    p = plan("server", server_spec(image="ubuntu-24.04", state="rebuild"), server(), context())
    assert steps(p) == [("action", "server", "rebuild")] and p.phases[0][0].body == {"image": 1003}


def test_server_protection_must_match():
    p = plan("server", server_spec(delete_protection=True), server(), context())
    assert any("same value" in e for e in p.errors)
    p = plan("server", server_spec(delete_protection=True, rebuild_protection=True), server(), context())
    assert steps(p) == [("action", "server", "change_protection")]


def test_server_network_ip_change_detaches_then_attaches():
    p = plan("server", server_spec(networks=[{"network": "net", "ip": "10.0.1.7"}]), server(), context())
    assert steps(p) == [("action", "server", "detach_from_network"), ("action", "server", "attach_to_network")]


def test_server_location_cannot_change():
    p = plan("server", server_spec(location="nbg1"), server(), context())
    assert any("cannot move" in e for e in p.errors)


# ---------------------------------------------------------------- volume / floating ip / placement group

def test_volume_create_attached_and_grow_only():
    p = plan("volume", spec(name="data", size=10, server="web-1", automount=True), None, context())
    assert not p.errors and p.phases[0][0].body == {"name": "data", "size": 10, "labels": {}, "server": 42,
                                                    "automount": True}
    actual = {"id": 3, "name": "data", "size": 20, "location": {"name": "fsn1"}, "server": 42, "format": "ext4",
              "labels": {}, "protection": {"delete": False}}
    assert any("only grow" in e for e in plan("volume", spec(name="data", size=10), actual, context()).errors)
    p = plan("volume", spec(name="data", size=30, server=""), actual, context())
    assert steps(p) == [("action", "volume", "resize"), ("action", "volume", "detach")]
    assert not plan("volume", spec(name="data", size=20, server="web-1", format="ext4"), actual, context()).changed


def test_volume_delete_detaches_first():
    actual = {"id": 3, "name": "data", "size": 20, "location": {"name": "fsn1"}, "server": 42, "labels": {},
              "protection": {"delete": False}}
    assert steps(plan("volume", spec(name="data", state="absent"), actual, context())) == [
        ("action", "volume", "detach"), ("delete", "volume", None)]


def test_floating_ip_create_assign_and_reassign():
    p = plan("floating_ip", spec(name="vip", type="ipv4", server="web-1"), None, context())
    assert steps(p) == [("create", "floating_ip", None), ("action", "floating_ip", "assign")]
    assert p.phases[0][0].body["home_location"] == "fsn1"
    actual = {"id": 9, "name": "vip", "type": "ipv4", "home_location": {"name": "fsn1"}, "server": None,
              "description": None, "labels": {}, "protection": {"delete": False}, "ip": "198.51.100.1"}
    assert steps(plan("floating_ip", spec(name="vip", server="web-1"), actual, context())) == [
        ("action", "floating_ip", "assign")]
    assert any("cannot change type" in e for e in plan("floating_ip", spec(name="vip", type="ipv6"), actual,
                                                       context()).errors)


def test_placement_group_create_and_rename_labels():
    p = plan("placement_group", spec(name="pg"), None, context())
    assert p.phases[0][0].body == {"name": "pg", "type": "spread", "labels": {}}
    actual = {"id": 1, "name": "pg", "type": "spread", "labels": {}, "servers": []}
    p = plan("placement_group", spec(name="pg", labels={"a": "b"}), actual, context())
    assert steps(p) == [("update", "placement_group", None)]


# ---------------------------------------------------------------- load balancer

LB = {"id": 77, "name": "lb", "load_balancer_type": {"name": "lb11"}, "location": {"name": "fsn1"},
      "algorithm": {"type": "round_robin"}, "labels": {}, "protection": {"delete": False},
      "public_net": {"enabled": True, "ipv4": {"ip": "198.51.100.7"}, "ipv6": {"ip": "2001:db8::1"}},
      "private_net": [{"network": 10, "ip": "10.0.1.100"}],
      "services": [{"protocol": "http", "listen_port": 80, "destination_port": 8080, "proxyprotocol": False,
                    "health_check": {"protocol": "http", "port": 8080, "interval": 15, "timeout": 10, "retries": 3,
                                     "http": {"domain": None, "path": "/health", "response": None,
                                              "status_codes": ["2??"], "tls": False}},
                    "http": {"cookie_name": "HCLBSTICKY", "cookie_lifetime": 300, "certificates": [],
                             "redirect_http": False, "sticky_sessions": False, "timeout_idle": 60}}],
      "targets": [{"type": "label_selector", "label_selector": {"selector": "role=web"}, "use_private_ip": True,
                   "targets": []}]}


def lb_spec(**kw):
    base = dict(name="lb", load_balancer_type="lb11", location="fsn1", network="net", state="present",
                services=[{"protocol": "http", "listen_port": 80, "destination_port": 8080,
                           "health_check": {"http": {"path": "/health", "status_codes": ["2??"]}}}],
                targets=[{"type": "label_selector", "label_selector": "role=web", "use_private_ip": True}])
    base.update(kw)
    return base


def test_load_balancer_unchanged_is_idempotent():
    p = plan("load_balancer", lb_spec(), copy.deepcopy(LB), context())
    assert not p.changed, p.to_dict()


def test_load_balancer_create_then_targets():
    p = plan("load_balancer", lb_spec(targets=[{"type": "server", "server": "web-1", "use_private_ip": True}]),
             None, context())
    assert not p.errors, p.errors
    assert steps(p) == [("create", "load_balancer", None), ("action", "load_balancer", "add_target")]
    body = p.phases[0][0].body
    assert body["network"] == 10 and body["services"][0]["health_check"]["http"]["path"] == "/health"
    assert p.phases[1][0].body == {"type": "server", "server": {"id": 42}, "use_private_ip": True}


def test_load_balancer_service_update_and_type_change():
    desired = lb_spec(load_balancer_type="lb21",
                      services=[{"protocol": "http", "listen_port": 80, "destination_port": 9090}])
    p = plan("load_balancer", desired, copy.deepcopy(LB), context())
    assert steps(p) == [("action", "load_balancer", "change_type"), ("action", "load_balancer", "update_service")]
    assert p.phases[1][0].body["destination_port"] == 9090


def test_load_balancer_tcp_service_with_null_http_check_is_unchanged():
    actual = copy.deepcopy(LB)
    actual["services"].append({"protocol": "tcp", "listen_port": 5432, "destination_port": 5432,
                               "proxyprotocol": False, "http": None,
                               "health_check": {"protocol": "tcp", "port": 5432, "interval": 15, "timeout": 10,
                                                "retries": 3, "http": None}})
    desired = lb_spec(services=[{"protocol": "http", "listen_port": 80}, {"protocol": "tcp", "listen_port": 5432}])
    assert not plan("load_balancer", desired, actual, context()).changed


def test_load_balancer_targets_replace():
    p = plan("load_balancer", lb_spec(targets=[{"type": "server", "server": "web-1"}]), copy.deepcopy(LB), context())
    assert steps(p) == [("action", "load_balancer", "remove_target"), ("action", "load_balancer", "add_target")]


def test_normalise_server_uses_names():
    n = normalise("server", server(firewalls=[7]), context())
    assert n["networks"] == [{"network": "net", "ip": "10.0.1.5", "alias_ips": []}]
    assert n["firewalls"] == ["fw"] and n["location"] == "fsn1"
