# Copyright (c) 2026, autoscale.hetzner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Small API-shaped objects for planner tests (shapes as in hcloud-api.md Appendix B)."""

from __future__ import annotations

import copy

DEPRECATED = {"announced": "2025-10-16T00:00:00Z", "unavailable_after": "2025-12-31T23:59:59Z"}

LOCATIONS = [
    {"id": 1, "name": "fsn1", "network_zone": "eu-central"},
    {"id": 2, "name": "nbg1", "network_zone": "eu-central"},
    {"id": 3, "name": "hel1", "network_zone": "eu-central"},
    {"id": 4, "name": "ash", "network_zone": "us-east"},
]


def _type(ident, name, cores, arch="x86", cpu="shared", locations=("fsn1", "nbg1", "hel1"), deprecation=None,
          available=True):
    return {"id": ident, "name": name, "cores": cores, "memory": cores * 2.0, "disk": 40, "architecture": arch,
            "cpu_type": cpu, "storage_type": "local", "deprecated": False, "deprecation": None,
            "locations": [{"id": i, "name": n, "deprecation": deprecation, "available": available,
                           "recommended": False} for i, n in enumerate(locations, 1)]}


SERVER_TYPES = [
    _type(104, "cx22", 2, deprecation=DEPRECATED, available=False),
    _type(120, "cx23", 2),
    _type(121, "cx33", 4),
    _type(109, "cpx22", 2, locations=("fsn1", "nbg1", "hel1", "ash")),
    _type(45, "cax11", 2, arch="arm"),
    _type(22, "cpx11", 2, deprecation={"announced": "2025-10-16T00:00:00Z", "unavailable_after": "2099-01-01T00:00:00Z"}),
]

IMAGES = [
    {"id": 1001, "name": "debian-12", "type": "system", "architecture": "x86", "deprecated": None},
    {"id": 1002, "name": "debian-12", "type": "system", "architecture": "arm", "deprecated": None},
    {"id": 1003, "name": "ubuntu-24.04", "type": "system", "architecture": "x86", "deprecated": None},
]

NETWORK = {"id": 10, "name": "net", "ip_range": "10.0.0.0/16", "labels": {}, "protection": {"delete": False},
           "expose_routes_to_vswitch": False,
           "subnets": [{"type": "cloud", "ip_range": "10.0.1.0/24", "network_zone": "eu-central",
                        "gateway": "10.0.0.1", "vswitch_id": None}],
           "routes": [], "servers": [42], "load_balancers": []}

FIREWALL = {"id": 7, "name": "fw", "labels": {},
            "rules": [{"direction": "in", "protocol": "tcp", "port": "22", "source_ips": ["203.0.113.0/24"],
                       "destination_ips": [], "description": None}],
            "applied_to": [{"type": "server", "server": {"id": 42}}]}


def server(ident=42, name="web-1", status="running", server_type="cx23", location="fsn1", private_net=None,
           labels=None, firewalls=None, placement_group=None, backup_window=None, protection=None):
    stype = next(t for t in SERVER_TYPES if t["name"] == server_type)
    loc = next(loc for loc in LOCATIONS if loc["name"] == location)
    return {"id": ident, "name": name, "status": status, "server_type": copy.deepcopy(stype), "location": dict(loc),
            "image": {"id": 1001, "name": "debian-12", "architecture": "x86"}, "labels": labels or {},
            "public_net": {"ipv4": {"id": 1, "ip": "203.0.113.10", "blocked": False, "dns_ptr": "x"},
                           "ipv6": {"id": 2, "ip": "2001:db8::/64", "blocked": False, "dns_ptr": []},
                           "floating_ips": [], "firewalls": [{"id": f, "status": "applied"} for f in firewalls or []]},
            "private_net": private_net if private_net is not None else [
                {"network": 10, "ip": "10.0.1.5", "alias_ips": [], "mac_address": "86:00:00:00:00:01"}],
            "placement_group": placement_group, "backup_window": backup_window,
            "protection": protection or {"delete": False, "rebuild": False}}


def context(**extra):
    from ansible_collections.autoscale.hetzner.plugins.module_utils.reconcile import Context
    objects = {"location": copy.deepcopy(LOCATIONS), "server_type": copy.deepcopy(SERVER_TYPES),
               "image": copy.deepcopy(IMAGES), "network": [copy.deepcopy(NETWORK)],
               "firewall": [copy.deepcopy(FIREWALL)], "server": [server()], "placement_group": [],
               "ssh_key": [{"id": 5, "name": "admin", "public_key": "ssh-ed25519 AAAA admin"}],
               "load_balancer_type": [{"id": 1, "name": "lb11"}, {"id": 2, "name": "lb21"}]}
    objects.update(extra)
    return Context(objects)
