# Copyright (c) 2026, autoscale.hetzner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""An in-memory stand-in for `hcloud.Client.request` with a request log.

Enough of the API for module tests: list/get/create/update/delete of any collection, name
filters, actions that start `running` and finish when polled through `GET /actions?id=`, and
the effects of the actions the tested modules use. Errors are raised as hcloud's APIException.
"""

from __future__ import annotations

import copy
import itertools

from hcloud import APIException

CATALOG = {
    "locations": [{"id": 1, "name": "fsn1", "network_zone": "eu-central"},
                  {"id": 4, "name": "ash", "network_zone": "us-east"}],
    "server_types": [
        {"id": 104, "name": "cx22", "cores": 2, "architecture": "x86", "cpu_type": "shared", "deprecation": None,
         "locations": [{"name": "fsn1", "available": False, "recommended": False,
                        "deprecation": {"announced": "2025-10-16T00:00:00Z",
                                        "unavailable_after": "2025-12-31T23:59:59Z"}}]},
        {"id": 120, "name": "cx23", "cores": 2, "architecture": "x86", "cpu_type": "shared", "deprecation": None,
         "locations": [{"name": "fsn1", "available": True, "recommended": True, "deprecation": None}]},
    ],
    "images": [{"id": 1001, "name": "debian-12", "type": "system", "architecture": "x86", "deprecated": None}],
    "load_balancer_types": [{"id": 1, "name": "lb11"}],
}

SINGULAR = {"ssh_keys": "ssh_key", "networks": "network", "firewalls": "firewall", "servers": "server",
            "volumes": "volume", "floating_ips": "floating_ip", "placement_groups": "placement_group",
            "load_balancers": "load_balancer", "locations": "location", "server_types": "server_type",
            "images": "image", "load_balancer_types": "load_balancer_type"}


class FakeClient:
    def __init__(self):
        self.data = {k: copy.deepcopy(v) for k, v in CATALOG.items()}
        for key in SINGULAR:
            self.data.setdefault(key, [])
        self.actions = {}
        self.log = []  # (method, path, body)
        self.ids = itertools.count(100)
        self.failures = []  # APIExceptions raised by the next mutating requests, in order

    # -- helpers --------------------------------------------------------------
    def mutations(self):
        return [(m, p, b) for m, p, b in self.log if m != "GET"]

    def _action(self, command, resource):
        action = {"id": next(self.ids), "command": command, "status": "running", "progress": 0,
                  "resources": [resource], "error": None}
        self.actions[action["id"]] = action
        return action

    @staticmethod
    def _not_found(path):
        return APIException(code="not_found", message="%s not found" % path, details=None)

    def _find(self, coll, ident):
        for obj in self.data[coll]:
            if obj["id"] == ident:
                return obj
        raise self._not_found("%s/%s" % (coll, ident))

    # -- the one entry point hcloud.Client offers -------------------------------
    def request(self, method, url, params=None, json=None, **_kwargs):
        self.log.append((method, url, copy.deepcopy(json)))
        parts = url.strip("/").split("/")
        if method != "GET" and self.failures:
            raise self.failures.pop(0)
        if parts == ["actions"]:
            ids = params.get("id") or []
            found = []
            for ident in ids:
                action = self.actions[ident]
                action["status"], action["progress"] = "success", 100
                found.append(copy.deepcopy(action))
            return {"actions": found}
        coll = parts[0]
        if method == "GET" and len(parts) == 1:
            items = self.data[coll]
            if params and params.get("name") is not None:
                items = [i for i in items if i.get("name") == params["name"]]
            pagination = {"page": 1, "per_page": 50, "previous_page": None, "next_page": None, "last_page": 1,
                          "total_entries": len(items)}
            return {coll: copy.deepcopy(items), "meta": {"pagination": pagination}}
        if method == "GET":
            return {SINGULAR[coll]: copy.deepcopy(self._find(coll, int(parts[1])))}
        if method == "POST" and len(parts) == 1:
            return self._create(coll, json)
        obj = self._find(coll, int(parts[1]))
        if method == "PUT":
            obj.update(copy.deepcopy(json))
            return {SINGULAR[coll]: copy.deepcopy(obj)}
        if method == "DELETE":
            self.data[coll].remove(obj)
            return {}
        command = parts[3]
        self._apply(coll, obj, command, json or {})
        action = self._action(command, {"id": obj["id"], "type": SINGULAR[coll]})
        return {"action": action}

    def _create(self, coll, body):
        if any(o.get("name") == body.get("name") for o in self.data[coll]):
            raise APIException(code="uniqueness_error", message="name is already used",
                               details={"fields": [{"name": "name", "messages": ["already used"]}]})
        obj = copy.deepcopy(body)
        obj["id"] = next(self.ids)
        obj.setdefault("labels", {})
        obj["protection"] = {"delete": False}
        if coll == "ssh_keys":
            obj["fingerprint"] = "00:11"
        if coll == "networks":
            obj["subnets"] = [dict(s, gateway="10.0.0.1") for s in body.get("subnets") or []]
            obj.setdefault("routes", [])
            obj["expose_routes_to_vswitch"] = bool(body.get("expose_routes_to_vswitch"))
        for key, catalogue in (("location", "locations"), ("home_location", "locations"),
                               ("server_type", "server_types"), ("image", "images"),
                               ("load_balancer_type", "load_balancer_types")):
            if key in obj:  # the API answers with the whole referenced object, not the name sent
                obj[key] = copy.deepcopy(next(i for i in self.data[catalogue] if obj[key] in (i["id"], i["name"])))
        if coll == "servers":
            wanted = body.get("public_net") or {}  # as the API: a public IPv4 and IPv6 unless disabled
            public_net = {"ipv4": {"ip": "198.51.100.%d" % obj["id"]} if wanted.get("enable_ipv4", True) else None,
                          "ipv6": {"ip": "2001:db8:%x::/64" % obj["id"]} if wanted.get("enable_ipv6", True) else None,
                          "firewalls": []}
            obj.update(status="running", private_net=[], public_net=public_net,
                       placement_group=None, backup_window=None, volumes=[])
            obj["protection"]["rebuild"] = False
        if coll == "volumes":
            obj.update(server=None, format=obj.get("format"))
        if coll == "floating_ips":
            obj.update(server=None, ip="198.18.9.1", description=obj.get("description"))
        if coll == "load_balancers":
            obj.update(targets=[], private_net=[], algorithm=obj.get("algorithm") or {"type": "round_robin"},
                       public_net={"enabled": True})
        if coll == "firewalls":
            obj["rules"] = [dict({"port": None, "source_ips": [], "destination_ips": [], "description": None}, **r)
                            for r in body.get("rules") or []]
            obj["applied_to"] = body.get("apply_to") or []
        self.data[coll].append(obj)
        result = {SINGULAR[coll]: copy.deepcopy(obj)}
        if coll in ("networks", "ssh_keys", "placement_groups"):
            return result
        result["action"] = self._action("create_" + SINGULAR[coll], {"id": obj["id"], "type": SINGULAR[coll]})
        return result

    @staticmethod
    def _apply(coll, obj, command, body):
        if command == "add_subnet":
            obj["subnets"].append(dict(body, gateway="10.0.0.1"))
        elif command == "delete_subnet":
            obj["subnets"] = [s for s in obj["subnets"] if s["ip_range"] != body["ip_range"]]
        elif command == "change_protection":
            obj["protection"] = dict(body.items())
        elif command == "set_rules":
            obj["rules"] = [dict({"port": None, "source_ips": [], "destination_ips": [], "description": None}, **r)
                            for r in body["rules"]]
        elif command == "change_ip_range":
            obj["ip_range"] = body["ip_range"]
        del coll
