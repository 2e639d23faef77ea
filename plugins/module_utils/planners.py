# Copyright: (c) 2026, autoscale.hetzner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Desired-vs-actual reconciliation, one planner per resource type, written once.

``plan(kind, desired, actual, ctx) -> Plan``.  ``desired`` is the dict of module options
(None = leave unmanaged), ``actual`` the API object (JSON dict) or None, ``ctx`` a Context
with the objects the planner may reference.  No API calls happen here.

``normalise(kind, obj, ctx)`` turns an API object into the comparable form used in diffs
(names instead of ids, canonical IPs, sorted sets); ``represent(kind, obj, ctx)`` adds the
read-only facts (id, addresses) modules return.
"""

from __future__ import annotations

import copy
import ipaddress

from .reconcile import Plan, Ref, Step, deep_merge
from . import validation as v


# --------------------------------------------------------------------------- helpers

def _labels(value):
    return dict(value or {})


def _protection(obj, key="delete"):
    return bool(((obj or {}).get("protection") or {}).get(key))


def canonical_cidr(value: str) -> str:
    """Canonical CIDR as the API returns it: IPv6 compressed lowercase, host bits kept."""
    text = str(value)
    if "/" not in text:
        text += "/128" if ":" in text else "/32"
    return str(ipaddress.ip_interface(text))


def ssh_key_blob(public_key: str | None) -> str | None:
    """`type base64` without the comment: what identifies a public key."""
    if not public_key:
        return public_key
    parts = public_key.split()
    return " ".join(parts[:2])


def _specified(desired: dict, keys) -> dict:
    return {k: desired.get(k) for k in keys if desired.get(k) is not None}


def _put_body(before: dict, after: dict, fields: dict) -> dict | None:
    """fields: normalised key -> API field for keys that PUT can change."""
    body = {}
    for key, api_field in fields.items():
        if before.get(key) != after.get(key):
            body[api_field] = after.get(key)
    return body or None


def _new_plan(kind, desired, actual) -> Plan:
    plan = Plan(kind, desired.get("name"), actual.get("id") if actual else None)
    return plan


def _absent(plan: Plan, actual, normalised_before, pre_steps=None) -> Plan:
    plan.before = normalised_before
    plan.after = None
    if actual is None:
        return plan
    if _protection(actual):
        plan.errors.append("state: %s %r is delete-protected; run with delete_protection: false first, "
                           "then delete it" % (plan.kind, actual.get("name")))
    plan.operation = "delete"
    for step in pre_steps or []:
        plan.add(step)
    plan.add(Step("delete", plan.kind, actual["id"]))
    return plan


def _protection_step(plan, kind, before, after, keys=("delete_protection",)):
    if any(before.get(k) != after.get(k) for k in keys):
        body = {"delete": after.get("delete_protection")}
        if "rebuild_protection" in keys:
            body["rebuild"] = after.get("rebuild_protection")
        plan.add(Step("action", kind, plan.target, "change_protection", body))


def _finish(plan: Plan, before: dict | None, after: dict) -> Plan:
    plan.before = before
    plan.after = after
    if plan.operation == "none" and plan.changed:
        plan.operation = "update"
    return plan


# --------------------------------------------------------------------------- ssh_key

def normalise_ssh_key(obj, ctx=None):
    if obj is None:
        return None
    return {"name": obj.get("name"), "public_key": ssh_key_blob(obj.get("public_key")),
            "labels": _labels(obj.get("labels"))}


def plan_ssh_key(desired, actual, ctx):
    plan = _new_plan("ssh_key", desired, actual)
    before = normalise_ssh_key(actual)
    if desired.get("state") == "absent":
        return _absent(plan, actual, before)
    want = _specified(desired, ("name", "labels"))
    if desired.get("public_key"):
        want["public_key"] = ssh_key_blob(desired["public_key"])
    if actual is None:
        if not desired.get("public_key"):
            plan.errors.append("public_key: required to create ssh key %r" % desired.get("name"))
        for other in ctx.all("ssh_key"):
            if want.get("public_key") and ssh_key_blob(other.get("public_key")) == want["public_key"]:
                plan.errors.append("public_key: this key is already stored as %r (keys are unique by fingerprint); "
                                   "use name: %s or delete that key first" % (other.get("name"), other.get("name")))
        after = deep_merge({"name": None, "public_key": None, "labels": {}}, want)
        plan.operation = "create"
        plan.add(Step("create", "ssh_key", plan.target, body={
            "name": desired["name"], "public_key": desired.get("public_key"), "labels": after["labels"]}))
        return _finish(plan, None, after)
    after = deep_merge(before, want)
    if after["public_key"] != before["public_key"]:
        # The API cannot change a key's material: replace the key (servers keep their keys).
        plan.operation = "update"
        plan.warnings.append("public_key: differs from the stored key %r; the key is replaced (deleted and "
                             "created again with a new id)" % desired.get("name"))
        plan.add(Step("delete", "ssh_key", actual["id"]))
        plan.actual_id = None
        plan.add(Step("create", "ssh_key", plan.target, body={
            "name": after["name"], "public_key": desired.get("public_key"), "labels": after["labels"]}))
        return _finish(plan, before, after)
    body = _put_body(before, after, {"name": "name", "labels": "labels"})
    if body:
        plan.add(Step("update", "ssh_key", actual["id"], body=body))
    return _finish(plan, before, after)


# --------------------------------------------------------------------------- placement_group

def normalise_placement_group(obj, ctx=None):
    if obj is None:
        return None
    return {"name": obj.get("name"), "type": obj.get("type"), "labels": _labels(obj.get("labels"))}


def plan_placement_group(desired, actual, ctx):
    plan = _new_plan("placement_group", desired, actual)
    before = normalise_placement_group(actual)
    if desired.get("state") == "absent":
        return _absent(plan, actual, before)
    want = _specified(desired, ("name", "type", "labels"))
    if actual is None:
        after = deep_merge({"name": None, "type": "spread", "labels": {}}, want)
        plan.operation = "create"
        plan.add(Step("create", "placement_group", plan.target, body=dict(after)))
        return _finish(plan, None, after)
    after = deep_merge(before, want)
    if after["type"] != before["type"]:
        plan.errors.append("type: placement group %r is of type %s and cannot change type; delete it first"
                           % (before["name"], before["type"]))
    body = _put_body(before, after, {"name": "name", "labels": "labels"})
    if body:
        plan.add(Step("update", "placement_group", actual["id"], body=body))
    return _finish(plan, before, after)


# --------------------------------------------------------------------------- network

def _norm_subnet(s):
    result = {"ip_range": s.get("ip_range"), "network_zone": s.get("network_zone"), "type": s.get("type") or "cloud"}
    if result["type"] == "server":
        result["type"] = "cloud"
    if s.get("vswitch_id") is not None:
        result["vswitch_id"] = s.get("vswitch_id")
    return result


def _norm_route(r):
    return {"destination": r.get("destination"), "gateway": r.get("gateway")}


def normalise_network(obj, ctx=None):
    if obj is None:
        return None
    return {"name": obj.get("name"), "ip_range": obj.get("ip_range"), "labels": _labels(obj.get("labels")),
            "expose_routes_to_vswitch": bool(obj.get("expose_routes_to_vswitch")),
            "delete_protection": _protection(obj),
            "subnets": sorted((_norm_subnet(s) for s in obj.get("subnets") or []), key=lambda s: s["ip_range"]),
            "routes": sorted((_norm_route(r) for r in obj.get("routes") or []),
                             key=lambda r: (r["destination"], r["gateway"]))}


def plan_network(desired, actual, ctx):
    plan = _new_plan("network", desired, actual)
    before = normalise_network(actual)
    if desired.get("state") == "absent":
        return _absent(plan, actual, before)
    want = _specified(desired, ("name", "ip_range", "labels", "expose_routes_to_vswitch", "delete_protection"))
    if desired.get("subnets") is not None:
        want["subnets"] = sorted((_norm_subnet(s) for s in desired["subnets"]), key=lambda s: s["ip_range"])
    if desired.get("routes") is not None:
        want["routes"] = sorted((_norm_route(r) for r in desired["routes"]),
                                key=lambda r: (r["destination"], r["gateway"]))
    base = before or {"name": None, "ip_range": None, "labels": {}, "expose_routes_to_vswitch": False,
                      "delete_protection": False, "subnets": [], "routes": []}
    after = deep_merge(base, want)
    # validate in the user's order so that subnets[i] in a message is the i-th subnet they wrote
    checked = dict(after)
    for key in ("subnets", "routes"):
        if desired.get(key) is not None:
            checked[key] = desired[key]
    v.check_network_spec(checked, plan.errors)
    if actual is None:
        if not after.get("ip_range"):
            plan.errors.append("ip_range: required to create network %r" % desired.get("name"))
        plan.operation = "create"
        body = {"name": after["name"], "ip_range": after["ip_range"], "labels": after["labels"],
                "subnets": after["subnets"], "routes": after["routes"]}
        if after["expose_routes_to_vswitch"]:
            body["expose_routes_to_vswitch"] = True
        plan.add(Step("create", "network", plan.target, body=body))
        _protection_step(plan, "network", {"delete_protection": False}, after)
        return _finish(plan, None, after)

    ident = actual["id"]
    body = _put_body(before, after, {"name": "name", "labels": "labels",
                                     "expose_routes_to_vswitch": "expose_routes_to_vswitch"})
    if body:
        plan.add(Step("update", "network", ident, body=body))
    if after["ip_range"] != before["ip_range"]:
        old = ipaddress.ip_network(before["ip_range"])
        try:
            new = ipaddress.ip_network(after["ip_range"])
        except ValueError:
            new = None
        if new is None or not (new.prefixlen < old.prefixlen and old.subnet_of(new)
                               and new.network_address == old.network_address):
            plan.errors.append("ip_range: %s -> %s is not possible; a network's range can only be extended "
                               "(same base address, shorter prefix). Create a new network instead"
                               % (before["ip_range"], after["ip_range"]))
        else:
            plan.add(Step("action", "network", ident, "change_ip_range", {"ip_range": after["ip_range"]}))
    for route in before["routes"]:
        if route not in after["routes"]:
            plan.add(Step("action", "network", ident, "delete_route", route))
    for subnet in before["subnets"]:
        if subnet not in after["subnets"]:
            if any(s["ip_range"] == subnet["ip_range"] for s in after["subnets"]):
                plan.warnings.append("subnets: subnet %s changes zone/type and is re-created" % subnet["ip_range"])
            plan.add(Step("action", "network", ident, "delete_subnet", {"ip_range": subnet["ip_range"]}))
    for subnet in after["subnets"]:
        if subnet not in before["subnets"]:
            plan.add(Step("action", "network", ident, "add_subnet", dict(subnet)))
    for route in after["routes"]:
        if route not in before["routes"]:
            plan.add(Step("action", "network", ident, "add_route", dict(route)))
    _protection_step(plan, "network", before, after)
    return _finish(plan, before, after)


# --------------------------------------------------------------------------- firewall

def normalise_rule(rule: dict) -> dict:
    direction = rule.get("direction") or "in"
    protocol = rule.get("protocol")
    port = rule.get("port")
    if protocol not in ("tcp", "udp"):
        port = None
    elif port is not None:
        port = str(port)
    source = [canonical_cidr(c) for c in rule.get("source_ips") or []] if direction == "in" else []
    dest = [canonical_cidr(c) for c in rule.get("destination_ips") or []] if direction == "out" else []
    return {"direction": direction, "protocol": protocol, "port": port, "source_ips": source,
            "destination_ips": dest, "description": rule.get("description")}


def _firewall_servers(obj, ctx):
    names = []
    for entry in (obj or {}).get("applied_to") or []:
        if entry.get("type") == "server":
            names.append(ctx.name_of("server", (entry.get("server") or {}).get("id")))
    return sorted(names, key=str)


def normalise_firewall(obj, ctx):
    if obj is None:
        return None
    return {"name": obj.get("name"), "labels": _labels(obj.get("labels")),
            "rules": [normalise_rule(r) for r in obj.get("rules") or []],
            "apply_to_servers": _firewall_servers(obj, ctx),
            "apply_to_label_selectors": sorted((e.get("label_selector") or {}).get("selector")
                                               for e in obj.get("applied_to") or []
                                               if e.get("type") == "label_selector")}


def _apply_entry_server(server_ref):
    return {"type": "server", "server": {"id": server_ref}}


def _apply_entry_selector(selector):
    return {"type": "label_selector", "label_selector": {"selector": selector}}


def _rule_payload(rule):
    body = {"direction": rule["direction"], "protocol": rule["protocol"]}
    if rule.get("port") is not None:
        body["port"] = rule["port"]
    if rule["direction"] == "in":
        body["source_ips"] = rule["source_ips"]
    else:
        body["destination_ips"] = rule["destination_ips"]
    if rule.get("description") is not None:
        body["description"] = rule["description"]
    return body


def plan_firewall(desired, actual, ctx):
    plan = _new_plan("firewall", desired, actual)
    before = normalise_firewall(actual, ctx)
    if desired.get("state") == "absent":
        pre = []
        if actual is not None and actual.get("applied_to"):
            # a firewall that is applied cannot be deleted (resource_in_use): remove it first
            pre.append(Step("action", "firewall", actual["id"], "remove_from_resources", {"remove_from": [
                {"type": e["type"], e["type"]: e[e["type"]]} for e in actual["applied_to"]]}))
        return _absent(plan, actual, before, pre)
    want = _specified(desired, ("name", "labels"))
    if desired.get("rules") is not None:
        want["rules"] = [normalise_rule(r) for r in desired["rules"]]
        plan.warnings.extend(v.firewall_rule_warnings(want["rules"]))
    if desired.get("apply_to_servers") is not None:
        want["apply_to_servers"] = sorted({ctx.canonical_name("server", s) for s in desired["apply_to_servers"]},
                                          key=str)
    if desired.get("apply_to_label_selectors") is not None:
        want["apply_to_label_selectors"] = sorted(set(desired["apply_to_label_selectors"]))
    base = before or {"name": None, "labels": {}, "rules": [], "apply_to_servers": [], "apply_to_label_selectors": []}
    after = deep_merge(base, want)
    if "rules" in want:
        after["rules"] = want["rules"]  # a list, deep_merge already replaced it; keep explicit []
    server_refs = {}
    for name in set(after["apply_to_servers"]) - set(base["apply_to_servers"]):
        server_refs[name] = ctx.reference("server", name, "apply_to_servers", plan.errors)
    if actual is None:
        plan.operation = "create"
        body = {"name": after["name"], "labels": after["labels"],
                "rules": [_rule_payload(r) for r in after["rules"]]}
        apply_to = [_apply_entry_server(server_refs[n]) for n in after["apply_to_servers"]]
        apply_to += [_apply_entry_selector(s) for s in after["apply_to_label_selectors"]]
        if apply_to:
            body["apply_to"] = apply_to
        plan.add(Step("create", "firewall", plan.target, body=body))
        return _finish(plan, None, after)
    ident = actual["id"]
    body = _put_body(before, after, {"name": "name", "labels": "labels"})
    if body:
        plan.add(Step("update", "firewall", ident, body=body))
    if after["rules"] != before["rules"]:
        plan.add(Step("action", "firewall", ident, "set_rules", {"rules": [_rule_payload(r) for r in after["rules"]]}))
    remove = []
    for entry in actual.get("applied_to") or []:
        if entry.get("type") == "server":
            name = ctx.name_of("server", entry["server"]["id"])
            if name not in after["apply_to_servers"]:
                remove.append(_apply_entry_server(entry["server"]["id"]))
        elif entry.get("type") == "label_selector":
            if entry["label_selector"]["selector"] not in after["apply_to_label_selectors"]:
                remove.append(_apply_entry_selector(entry["label_selector"]["selector"]))
    if remove:
        plan.add(Step("action", "firewall", ident, "remove_from_resources", {"remove_from": remove}))
    add = [_apply_entry_server(server_refs[n]) for n in after["apply_to_servers"] if n not in before["apply_to_servers"]]
    add += [_apply_entry_selector(s) for s in after["apply_to_label_selectors"]
            if s not in before["apply_to_label_selectors"]]
    if add:
        plan.add(Step("action", "firewall", ident, "apply_to_resources", {"apply_to": add}))
    return _finish(plan, before, after)


# --------------------------------------------------------------------------- server

SERVER_STATES = ("present", "absent", "started", "stopped", "rebuild", "restarted")


def _server_direct_firewalls(server, ctx):
    """Firewalls applied to the server directly (not through a label selector): those whose applied_to
    names the server, among the firewalls the server lists as applied (and, in a context that holds every
    firewall, among all of them)."""
    candidates = {entry.get("id"): ctx.by_id("firewall", entry.get("id"))
                  for entry in (server.get("public_net") or {}).get("firewalls") or []}
    if ctx.loader is None:
        candidates.update((f.get("id"), f) for f in ctx.all("firewall"))
    names = []
    for ident, firewall in candidates.items():
        if firewall is None:
            names.append(ident)
            continue
        for applied in firewall.get("applied_to") or []:
            if applied.get("type") == "server" and (applied.get("server") or {}).get("id") == server.get("id"):
                names.append(firewall.get("name"))
    return sorted(set(names), key=str)


def normalise_server(obj, ctx):
    if obj is None:
        return None
    public = obj.get("public_net") or {}
    networks = sorted(({"network": ctx.name_of("network", p.get("network")), "ip": p.get("ip"),
                        "alias_ips": sorted(p.get("alias_ips") or [])} for p in obj.get("private_net") or []),
                      key=lambda n: str(n["network"]))
    return {
        "name": obj.get("name"),
        "server_type": (obj.get("server_type") or {}).get("name"),
        "image": (obj.get("image") or {}).get("name") or (obj.get("image") or {}).get("id"),
        "location": ((obj.get("location") or (obj.get("datacenter") or {}).get("location")) or {}).get("name"),
        "labels": _labels(obj.get("labels")),
        "status": "off" if obj.get("status") == "off" else ("running" if obj.get("status") in (
            "running", "starting", "initializing") else obj.get("status")),
        "networks": networks,
        "firewalls": _server_direct_firewalls(obj, ctx),
        "placement_group": (obj.get("placement_group") or {}).get("name"),
        "backups": obj.get("backup_window") is not None,
        "delete_protection": _protection(obj, "delete"),
        "rebuild_protection": _protection(obj, "rebuild"),
        "enable_ipv4": public.get("ipv4") is not None,
        "enable_ipv6": public.get("ipv6") is not None,
    }


def represent_server(obj, ctx):
    result = normalise_server(obj, ctx)
    if result is None:
        return None
    public = obj.get("public_net") or {}
    result.update({"id": obj.get("id"), "ipv4_address": (public.get("ipv4") or {}).get("ip"),
                   "ipv6": (public.get("ipv6") or {}).get("ip"), "raw_status": obj.get("status")})
    return result


def _server_networks_desired(desired, before_networks, ctx, plan):
    """Desired networks merged with the actual attachment (unspecified ip/alias_ips kept)."""
    actual = {n["network"]: n for n in before_networks or []}
    result = []
    for i, entry in enumerate(desired):
        if isinstance(entry, str):
            entry = {"network": entry}
        name = ctx.canonical_name("network", entry.get("network"))
        current = actual.get(name) or {"network": name, "ip": None, "alias_ips": []}
        merged = dict(current)
        if entry.get("ip") is not None:
            merged["ip"] = entry["ip"]
        if entry.get("alias_ips") is not None:
            merged["alias_ips"] = sorted(entry["alias_ips"])
        result.append(merged)
    return sorted(result, key=lambda n: str(n["network"]))


def plan_server(desired, actual, ctx):
    plan = _new_plan("server", desired, actual)
    state = desired.get("state") or "present"
    before = normalise_server(actual, ctx)
    if state == "absent":
        return _absent(plan, actual, before)
    errors, warnings = plan.errors, plan.warnings
    creating = actual is None
    want = _specified(desired, ("name", "server_type", "labels", "backups", "delete_protection",
                                "rebuild_protection", "enable_ipv4", "enable_ipv6"))
    if desired.get("image") is not None:
        want["image"] = desired["image"]
    if desired.get("location") is not None:
        want["location"] = ctx.canonical_name("location", desired["location"])
    if desired.get("placement_group") is not None:
        want["placement_group"] = ctx.canonical_name("placement_group", desired["placement_group"]) or None
        if desired["placement_group"] == "":
            want["placement_group"] = None
    if desired.get("firewalls") is not None:
        want["firewalls"] = sorted({ctx.canonical_name("firewall", f) for f in desired["firewalls"]}, key=str)
    if desired.get("networks") is not None:
        want["networks"] = _server_networks_desired(desired["networks"], (before or {}).get("networks"), ctx, plan)
    if state in ("started", "restarted"):
        want["status"] = "running"
    elif state == "stopped":
        want["status"] = "off"
    base = before or {"name": None, "server_type": None, "image": None, "location": None, "labels": {},
                      "status": "running", "networks": [], "firewalls": [], "placement_group": None,
                      "backups": False, "delete_protection": False, "rebuild_protection": False,
                      "enable_ipv4": True, "enable_ipv6": True}
    after = deep_merge(base, want)
    for key in ("networks", "firewalls"):
        if key in want:
            after[key] = want[key]
    if "placement_group" in want or (desired.get("placement_group") == ""):
        after["placement_group"] = want.get("placement_group")

    # ---- validation (before anything changes)
    v.check_server_name(after["name"], errors)
    v.check_user_data(desired.get("user_data"), errors)
    location = v.check_location(after["location"], ctx, errors) if after["location"] else None
    server_type = None
    if after["server_type"] is not None:
        type_changes = creating or after["server_type"] != before["server_type"]
        server_type = v.check_server_type(after["server_type"], after["location"], ctx, errors, warnings,
                                          creating=type_changes)
    elif creating:
        errors.append("server_type: required to create server %r" % desired.get("name"))
    arch = (server_type or {}).get("architecture")
    image_obj = None
    if creating or state == "rebuild":
        if after["image"] is None:
            errors.append("image: required to %s server %r" % ("create" if creating else "rebuild", desired.get("name")))
        else:
            image_obj = v.check_image(after["image"], arch, ctx, errors, warnings)
    elif desired.get("image") is not None and str(desired["image"]) not in (str(before["image"]),):
        warnings.append("image: server %r runs %s, not %s; the image only changes with state=rebuild (which "
                        "destroys the disk)" % (before["name"], before["image"], desired["image"]))
        after["image"] = before["image"]
    if not creating and after["location"] != before["location"]:
        errors.append("location: server %r is in %s and cannot move to %s; delete and re-create it"
                      % (before["name"], before["location"], after["location"]))
    if not creating and after["enable_ipv4"] != before["enable_ipv4"] or \
            not creating and after["enable_ipv6"] != before["enable_ipv6"]:
        warnings.append("enable_ipv4/enable_ipv6: public IPs of an existing server are not changed by this module")
        after["enable_ipv4"], after["enable_ipv6"] = before["enable_ipv4"], before["enable_ipv6"]
    if after["delete_protection"] != after["rebuild_protection"] and (
            creating or (after["delete_protection"], after["rebuild_protection"]) !=
            (before["delete_protection"], before["rebuild_protection"])):
        errors.append("delete_protection/rebuild_protection: the API requires both to have the same value")
    if not creating and desired.get("ssh_keys") is not None:
        pass  # keys only matter at creation/rebuild; a server does not expose them
    network_refs = {}
    for i, net in enumerate(after["networks"]):
        name = net["network"]
        network_obj = ctx.lookup("network", name)
        ref = ctx.reference("network", name, "networks[%d].network" % i, errors)
        network_refs[name] = ref
        if network_obj is not None:
            v.check_location_in_zone(location, network_obj, "networks[%d].network" % i, errors)
            if net.get("ip") and (creating or net["ip"] != _net_ip(before, name)):
                v.check_fixed_ip(net["ip"], network_obj, location, ctx, "networks[%d].ip" % i, errors,
                                 owner=desired.get("name"))
    firewall_refs = {}
    for name in after["firewalls"]:
        if creating or name not in before["firewalls"]:
            firewall_refs[name] = ctx.reference("firewall", name, "firewalls", errors)
        elif ctx.lookup("firewall", name):
            firewall_refs[name] = ctx.lookup("firewall", name)["id"]
    pg_ref = None
    if after["placement_group"] and (creating or after["placement_group"] != before["placement_group"]):
        pg_ref = ctx.reference("placement_group", after["placement_group"], "placement_group", errors)
    if not after["enable_ipv4"] and not after["enable_ipv6"] and not after["networks"]:
        errors.append("enable_ipv4/enable_ipv6/networks: a server needs a public IP or a private network")

    if creating:
        plan.operation = "create"
        body = {"name": after["name"], "server_type": after["server_type"],
                "image": image_obj["id"] if image_obj else after["image"],
                "labels": after["labels"], "start_after_create": after["status"] == "running",
                "public_net": {"enable_ipv4": after["enable_ipv4"], "enable_ipv6": after["enable_ipv6"]}}
        if after["location"]:
            body["location"] = after["location"]
        if desired.get("ssh_keys"):
            body["ssh_keys"] = [ctx.reference("ssh_key", k, "ssh_keys", errors) for k in desired["ssh_keys"]]
        if desired.get("user_data") is not None:
            body["user_data"] = desired["user_data"]
        if pg_ref is not None:
            body["placement_group"] = pg_ref
        if firewall_refs:
            body["firewalls"] = [{"firewall": firewall_refs[n]} for n in after["firewalls"]]
        fixed = [n for n in after["networks"] if n.get("ip") or n.get("alias_ips")]
        if after["networks"] and not fixed:
            body["networks"] = [network_refs[n["network"]] for n in after["networks"]]
        plan.add(Step("create", "server", plan.target, body=body))
        for net in (after["networks"] if fixed else []):
            plan.add(Step("action", "server", plan.target, "attach_to_network", _attach_body(net, network_refs)))
        if after["backups"]:
            plan.add(Step("action", "server", plan.target, "enable_backup"))
        if after["delete_protection"] or after["rebuild_protection"]:
            plan.add(Step("action", "server", plan.target, "change_protection",
                          {"delete": after["delete_protection"], "rebuild": after["rebuild_protection"]}))
        return _finish(plan, None, after)

    # ---- update
    ident = actual["id"]
    body = _put_body(before, after, {"name": "name", "labels": "labels"})
    if body:
        plan.add(Step("update", "server", ident, body=body))
    running = before["status"] == "running"
    needs_off = after["server_type"] != before["server_type"] or (
        after["placement_group"] != before["placement_group"] and after["placement_group"] is not None)
    if needs_off and running:
        plan.add(Step("action", "server", ident, "poweroff"))
        running = False
        warnings.append("server %r must be powered off to change %s; it is stopped for the change%s" % (
            before["name"], ", ".join(k for k in ("server_type", "placement_group") if after[k] != before[k]),
            " and started again afterwards" if after["status"] == "running" else ""))
    if after["server_type"] != before["server_type"]:
        plan.add(Step("action", "server", ident, "change_type",
                      {"server_type": after["server_type"], "upgrade_disk": bool(desired.get("upgrade_disk"))}))
    if after["placement_group"] != before["placement_group"]:
        if before["placement_group"] is not None:
            plan.add(Step("action", "server", ident, "remove_from_placement_group"))
        if after["placement_group"] is not None:
            plan.add(Step("action", "server", ident, "add_to_placement_group", {"placement_group": pg_ref}))
    if state == "rebuild":
        rebuild = {"image": image_obj["id"] if image_obj else after["image"]}
        if desired.get("user_data") is not None:
            rebuild["user_data"] = desired["user_data"]
        plan.add(Step("action", "server", ident, "rebuild", rebuild))
        plan.operation = "update"
    before_nets = {n["network"]: n for n in before["networks"]}
    after_nets = {n["network"]: n for n in after["networks"]}
    for name, net in before_nets.items():
        if name not in after_nets or (after_nets[name]["ip"] != net["ip"]):
            plan.add(Step("action", "server", ident, "detach_from_network",
                          {"network": ctx.lookup("network", name)["id"] if ctx.lookup("network", name) else name}))
    for name, net in after_nets.items():
        old = before_nets.get(name)
        if old is None or old["ip"] != net["ip"]:
            plan.add(Step("action", "server", ident, "attach_to_network", _attach_body(net, network_refs)))
        elif old["alias_ips"] != net["alias_ips"]:
            plan.add(Step("action", "server", ident, "change_alias_ips",
                          {"network": network_refs[name], "alias_ips": net["alias_ips"]}))
    for name in before["firewalls"]:
        if name not in after["firewalls"]:
            fw = ctx.lookup("firewall", name)
            if fw is not None:
                plan.add(Step("action", "firewall", fw["id"], "remove_from_resources",
                              {"remove_from": [_apply_entry_server(ident)]}))
    for name in after["firewalls"]:
        if name not in before["firewalls"] and firewall_refs.get(name) is not None:
            plan.add(Step("action", "firewall", firewall_refs[name], "apply_to_resources",
                          {"apply_to": [_apply_entry_server(ident)]}))
    if after["backups"] != before["backups"]:
        plan.add(Step("action", "server", ident, "enable_backup" if after["backups"] else "disable_backup"))
    _protection_step(plan, "server", before, after, ("delete_protection", "rebuild_protection"))
    # power last: the wanted state, or back to running if we stopped it for a change
    wanted_running = after["status"] == "running"
    if state == "restarted" and running:
        plan.add(Step("action", "server", ident, "reboot"))
    if wanted_running and not running:
        plan.add(Step("action", "server", ident, "poweron"))
    elif not wanted_running and running:
        plan.add(Step("action", "server", ident, "poweroff"))
    return _finish(plan, before, after)


def _net_ip(before, name):
    for net in (before or {}).get("networks") or []:
        if net["network"] == name:
            return net["ip"]
    return None


def _attach_body(net, network_refs):
    body = {"network": network_refs.get(net["network"])}
    if net.get("ip"):
        body["ip"] = net["ip"]
    if net.get("alias_ips"):
        body["alias_ips"] = net["alias_ips"]
    return body


# --------------------------------------------------------------------------- volume

def normalise_volume(obj, ctx):
    if obj is None:
        return None
    return {"name": obj.get("name"), "size": obj.get("size"),
            "location": (obj.get("location") or {}).get("name"),
            "server": ctx.name_of("server", obj.get("server")) if obj.get("server") else None,
            "format": obj.get("format"), "labels": _labels(obj.get("labels")),
            "delete_protection": _protection(obj)}


def represent_volume(obj, ctx):
    result = normalise_volume(obj, ctx)
    if result is not None:
        result.update({"id": obj.get("id"), "linux_device": obj.get("linux_device"), "status": obj.get("status")})
    return result


def plan_volume(desired, actual, ctx):
    plan = _new_plan("volume", desired, actual)
    before = normalise_volume(actual, ctx)
    if desired.get("state") == "absent":
        pre = [Step("action", "volume", actual["id"], "detach")] if actual and actual.get("server") else []
        return _absent(plan, actual, before, pre)
    want = _specified(desired, ("name", "size", "labels", "delete_protection", "format"))
    if desired.get("location") is not None:
        want["location"] = ctx.canonical_name("location", desired["location"])
    if desired.get("server") is not None:
        want["server"] = ctx.canonical_name("server", desired["server"]) if desired["server"] != "" else None
    base = before or {"name": None, "size": None, "location": None, "server": None, "format": None,
                      "labels": {}, "delete_protection": False}
    after = deep_merge(base, want)
    if desired.get("server") == "":
        after["server"] = None
    server_obj = ctx.lookup("server", after["server"]) if after["server"] else None
    if server_obj is not None:
        server_loc = (server_obj.get("location") or {}).get("name")
        if after["location"] is None:
            after["location"] = server_loc
        elif server_loc and server_loc != after["location"]:
            plan.errors.append("server: server %r is in %s but the volume is in %s; volumes attach only to "
                               "servers in their location" % (after["server"], server_loc, after["location"]))
    if after["location"]:
        v.check_location(after["location"], ctx, plan.errors)
    server_ref = None
    if after["server"] and (actual is None or after["server"] != before["server"]):
        server_ref = ctx.reference("server", after["server"], "server", plan.errors)
    if actual is None:
        if not after["size"]:
            plan.errors.append("size: required to create volume %r" % desired.get("name"))
        if not after["location"] and not after["server"]:
            plan.errors.append("location/server: one is required to create volume %r" % desired.get("name"))
        plan.operation = "create"
        body = {"name": after["name"], "size": after["size"], "labels": after["labels"]}
        if server_ref is not None:
            body["server"] = server_ref
            body["automount"] = bool(desired.get("automount"))
        else:
            body["location"] = after["location"]
        if after["format"]:
            body["format"] = after["format"]
        plan.add(Step("create", "volume", plan.target, body=body))
        _protection_step(plan, "volume", {"delete_protection": False}, after)
        return _finish(plan, None, after)
    ident = actual["id"]
    if after["format"] != before["format"] and before["format"] is not None:
        plan.warnings.append("format: the volume is already formatted as %s; format is only applied at creation"
                             % before["format"])
        after["format"] = before["format"]
    after["format"] = before["format"] if after["format"] != before["format"] else after["format"]
    if after["location"] != before["location"]:
        plan.errors.append("location: volume %r is in %s and cannot move; create a new volume"
                           % (before["name"], before["location"]))
    body = _put_body(before, after, {"name": "name", "labels": "labels"})
    if body:
        plan.add(Step("update", "volume", ident, body=body))
    if after["size"] != before["size"]:
        if after["size"] < before["size"]:
            plan.errors.append("size: volume %r is %s GB; volumes can only grow" % (before["name"], before["size"]))
        else:
            plan.add(Step("action", "volume", ident, "resize", {"size": after["size"]}))
    if after["server"] != before["server"]:
        if before["server"] is not None:
            plan.add(Step("action", "volume", ident, "detach"))
        if after["server"] is not None:
            plan.add(Step("action", "volume", ident, "attach",
                          {"server": server_ref, "automount": bool(desired.get("automount"))}))
    _protection_step(plan, "volume", before, after)
    return _finish(plan, before, after)


# --------------------------------------------------------------------------- floating_ip

def normalise_floating_ip(obj, ctx):
    if obj is None:
        return None
    return {"name": obj.get("name"), "type": obj.get("type"),
            "home_location": (obj.get("home_location") or {}).get("name"),
            "server": ctx.name_of("server", obj.get("server")) if obj.get("server") else None,
            "description": obj.get("description"), "labels": _labels(obj.get("labels")),
            "delete_protection": _protection(obj)}


def represent_floating_ip(obj, ctx):
    result = normalise_floating_ip(obj, ctx)
    if result is not None:
        result.update({"id": obj.get("id"), "ip": obj.get("ip")})
    return result


def plan_floating_ip(desired, actual, ctx):
    plan = _new_plan("floating_ip", desired, actual)
    before = normalise_floating_ip(actual, ctx)
    if desired.get("state") == "absent":
        pre = [Step("action", "floating_ip", actual["id"], "unassign")] if actual and actual.get("server") else []
        return _absent(plan, actual, before, pre)
    want = _specified(desired, ("name", "type", "description", "labels", "delete_protection"))
    if desired.get("home_location") is not None:
        want["home_location"] = ctx.canonical_name("location", desired["home_location"])
    if desired.get("server") is not None:
        want["server"] = ctx.canonical_name("server", desired["server"]) if desired["server"] != "" else None
    base = before or {"name": None, "type": "ipv4", "home_location": None, "server": None, "description": None,
                      "labels": {}, "delete_protection": False}
    after = deep_merge(base, want)
    if desired.get("server") == "":
        after["server"] = None
    if after["home_location"]:
        v.check_location(after["home_location"], ctx, plan.errors, option="home_location")
    server_ref = None
    if after["server"] and (actual is None or after["server"] != before["server"]):
        server_ref = ctx.reference("server", after["server"], "server", plan.errors)
    if actual is None:
        if not after["home_location"] and not after["server"]:
            plan.errors.append("home_location/server: one is required to create floating IP %r" % desired.get("name"))
        if not after["home_location"] and after["server"]:
            server_obj = ctx.lookup("server", after["server"])
            if server_obj:
                after["home_location"] = (server_obj.get("location") or {}).get("name")
        plan.operation = "create"
        body = {"name": after["name"], "type": after["type"], "labels": after["labels"]}
        if after["description"] is not None:
            body["description"] = after["description"]
        if after["home_location"]:
            body["home_location"] = after["home_location"]
        plan.add(Step("create", "floating_ip", plan.target, body=body))
        if server_ref is not None:
            plan.add(Step("action", "floating_ip", plan.target, "assign", {"server": server_ref}))
        _protection_step(plan, "floating_ip", {"delete_protection": False}, after)
        return _finish(plan, None, after)
    ident = actual["id"]
    if after["type"] != before["type"]:
        plan.errors.append("type: floating IP %r is %s and cannot change type" % (before["name"], before["type"]))
    if after["home_location"] != before["home_location"]:
        plan.errors.append("home_location: floating IP %r lives in %s and cannot move; create a new one"
                           % (before["name"], before["home_location"]))
    body = _put_body(before, after, {"name": "name", "labels": "labels", "description": "description"})
    if body:
        plan.add(Step("update", "floating_ip", ident, body=body))
    if after["server"] != before["server"]:
        if after["server"] is None:
            plan.add(Step("action", "floating_ip", ident, "unassign"))
        else:
            plan.add(Step("action", "floating_ip", ident, "assign", {"server": server_ref}))
    _protection_step(plan, "floating_ip", before, after)
    return _finish(plan, before, after)


# --------------------------------------------------------------------------- load_balancer

SERVICE_HTTP_DEFAULTS = {"cookie_name": "HCLBSTICKY", "cookie_lifetime": 300, "certificates": [],
                         "redirect_http": False, "sticky_sessions": False}


def _norm_service(s):
    health_check = copy.deepcopy(s.get("health_check")) if s.get("health_check") else None
    if health_check and (health_check.get("protocol") == "tcp" or health_check.get("http") is None):
        health_check.pop("http", None)  # the API answers `http: null` for tcp checks
    result = {"protocol": s.get("protocol"), "listen_port": s.get("listen_port"),
              "destination_port": s.get("destination_port"), "proxyprotocol": bool(s.get("proxyprotocol")),
              "health_check": health_check}
    if s.get("protocol") in ("http", "https"):
        result["http"] = copy.deepcopy(s.get("http") or {})
    return result


# What Hetzner's console and hcloud CLI give a service's health check when none is set (seconds, count).
HEALTH_CHECK_TIMING_DEFAULTS = {"interval": 15, "timeout": 10, "retries": 3}


def _service_defaults(listen_port, protocol, destination_port):
    dest = destination_port or (listen_port if protocol == "tcp" else 80)
    base = {"protocol": protocol, "listen_port": listen_port, "destination_port": dest, "proxyprotocol": False,
            "health_check": dict({"protocol": "tcp" if protocol == "tcp" else "http", "port": dest}, **HEALTH_CHECK_TIMING_DEFAULTS)}
    if protocol != "tcp":
        base["health_check"]["http"] = {"domain": None, "path": "/", "response": None,
                                        "status_codes": ["2??", "3??"], "tls": False}
        base["http"] = copy.deepcopy(SERVICE_HTTP_DEFAULTS)
    return base


def _prune(value):
    if isinstance(value, dict):
        return {k: _prune(v) for k, v in value.items() if v is not None}
    return value


def _norm_target(t, ctx):
    if t.get("type") == "server":
        return {"type": "server", "server": ctx.name_of("server", (t.get("server") or {}).get("id")),
                "use_private_ip": bool(t.get("use_private_ip"))}
    if t.get("type") == "label_selector":
        return {"type": "label_selector", "label_selector": (t.get("label_selector") or {}).get("selector"),
                "use_private_ip": bool(t.get("use_private_ip"))}
    return {"type": t.get("type"), "ip": (t.get("ip") or {}).get("ip"), "use_private_ip": False}


def _target_key(t):
    return (t["type"], str(t.get("server") or t.get("label_selector") or t.get("ip")))


def normalise_load_balancer(obj, ctx):
    if obj is None:
        return None
    private = obj.get("private_net") or []
    return {"name": obj.get("name"),
            "load_balancer_type": (obj.get("load_balancer_type") or {}).get("name"),
            "location": (obj.get("location") or {}).get("name"),
            "algorithm": (obj.get("algorithm") or {}).get("type"),
            "labels": _labels(obj.get("labels")), "delete_protection": _protection(obj),
            "public_interface": bool((obj.get("public_net") or {}).get("enabled", True)),
            "network": ctx.name_of("network", private[0].get("network")) if private else None,
            "network_ip": private[0].get("ip") if private else None,
            "services": sorted((_norm_service(s) for s in obj.get("services") or []), key=lambda s: s["listen_port"]),
            "targets": sorted((_norm_target(t, ctx) for t in obj.get("targets") or []), key=_target_key)}


def represent_load_balancer(obj, ctx):
    result = normalise_load_balancer(obj, ctx)
    if result is not None:
        public = obj.get("public_net") or {}
        result.update({"id": obj.get("id"), "ipv4_address": (public.get("ipv4") or {}).get("ip"),
                       "ipv6_address": (public.get("ipv6") or {}).get("ip")})
    return result


def _target_payload(t, refs):
    if t["type"] == "server":
        return {"type": "server", "server": {"id": refs.get(t["server"])}, "use_private_ip": t["use_private_ip"]}
    return {"type": "label_selector", "label_selector": {"selector": t["label_selector"]},
            "use_private_ip": t["use_private_ip"]}


def plan_load_balancer(desired, actual, ctx):
    plan = _new_plan("load_balancer", desired, actual)
    before = normalise_load_balancer(actual, ctx)
    if desired.get("state") == "absent":
        return _absent(plan, actual, before)
    errors = plan.errors
    want = _specified(desired, ("name", "load_balancer_type", "algorithm", "labels", "delete_protection",
                                "public_interface", "network_ip"))
    if desired.get("location") is not None:
        want["location"] = ctx.canonical_name("location", desired["location"])
    if desired.get("network") is not None:
        want["network"] = ctx.canonical_name("network", desired["network"]) if desired["network"] != "" else None
    base = before or {"name": None, "load_balancer_type": None, "location": None, "algorithm": "round_robin",
                      "labels": {}, "delete_protection": False, "public_interface": True, "network": None,
                      "network_ip": None, "services": [], "targets": []}
    after = deep_merge(base, want)
    if desired.get("network") == "":
        after["network"], after["network_ip"] = None, None
    if desired.get("services") is not None:
        current = {s["listen_port"]: s for s in base["services"]}
        services = []
        for s in desired["services"]:
            port = s.get("listen_port")
            protocol = s.get("protocol") or (current.get(port) or {}).get("protocol") or "tcp"
            start = current.get(port) if (current.get(port) or {}).get("protocol") == protocol else None
            start = start or _service_defaults(port, protocol, s.get("destination_port"))
            merged = deep_merge(start, {k: val for k, val in s.items() if k != "http" or protocol != "tcp"})
            if merged.get("health_check") and merged["health_check"].get("protocol") == "tcp":
                merged["health_check"].pop("http", None)
            services.append(_norm_service(merged))
        after["services"] = sorted(services, key=lambda s: s["listen_port"])
    target_refs = {}
    if desired.get("targets") is not None:
        targets = []
        for i, t in enumerate(desired["targets"]):
            ttype = t.get("type") or ("server" if t.get("server") else "label_selector")
            if ttype == "server":
                name = ctx.canonical_name("server", t.get("server"))
                targets.append({"type": "server", "server": name, "use_private_ip": bool(t.get("use_private_ip"))})
            else:
                targets.append({"type": "label_selector", "label_selector": t.get("label_selector"),
                                "use_private_ip": bool(t.get("use_private_ip"))})
        after["targets"] = sorted(targets, key=_target_key)
    before_targets = {_target_key(t): t for t in base["targets"]}
    for t in after["targets"]:
        if t["type"] == "server" and before_targets.get(_target_key(t)) != t:
            target_refs[t["server"]] = ctx.reference("server", t["server"], "targets.server", errors)
        if t["use_private_ip"] and not after["network"]:
            errors.append("targets: use_private_ip needs the load balancer in a network; set network")
    if after["load_balancer_type"] is None and actual is None:
        errors.append("load_balancer_type: required to create load balancer %r" % desired.get("name"))
    elif after["load_balancer_type"] is not None and \
            ctx.lookup("load_balancer_type", after["load_balancer_type"]) is None and ctx.all("load_balancer_type"):
        errors.append("load_balancer_type: unknown type %r; known: %s" % (
            after["load_balancer_type"], ", ".join(sorted(t["name"] for t in ctx.all("load_balancer_type")))))
    location = v.check_location(after["location"], ctx, errors) if after["location"] else None
    network_ref = None
    if after["network"] and (actual is None or after["network"] != before["network"]
                             or after["network_ip"] != before["network_ip"]):
        network_ref = ctx.reference("network", after["network"], "network", errors)
        network_obj = ctx.lookup("network", after["network"])
        if network_obj is not None:
            v.check_location_in_zone(location, network_obj, "network", errors)
            if after["network_ip"]:
                v.check_fixed_ip(after["network_ip"], network_obj, location, ctx, "network_ip", errors)
    if not after["public_interface"] and not after["network"]:
        errors.append("public_interface: a load balancer without public interface needs a network")

    if actual is None:
        if not after["location"]:
            errors.append("location: required to create load balancer %r" % desired.get("name"))
        plan.operation = "create"
        # A fixed private IP needs attach_to_network after the create; a load balancer without
        # public interface cannot exist without a network, so it is created public and the
        # interface is disabled once it is attached.
        attach_later = network_ref is not None and bool(after["network_ip"])
        body = {"name": after["name"], "load_balancer_type": after["load_balancer_type"],
                "location": after["location"], "algorithm": {"type": after["algorithm"]},
                "labels": after["labels"], "services": [_prune(s) for s in after["services"]],
                "public_interface": after["public_interface"] or attach_later}
        if network_ref is not None and not attach_later:
            body["network"] = network_ref
        plan.add(Step("create", "load_balancer", plan.target, body=body))
        if attach_later:
            plan.add(Step("action", "load_balancer", plan.target, "attach_to_network",
                          {"network": network_ref, "ip": after["network_ip"]}))
        for t in after["targets"]:
            plan.add(Step("action", "load_balancer", plan.target, "add_target", _target_payload(t, target_refs)))
        if attach_later and not after["public_interface"]:
            plan.add(Step("action", "load_balancer", plan.target, "disable_public_interface"))
        _protection_step(plan, "load_balancer", {"delete_protection": False}, after)
        return _finish(plan, None, after)

    ident = actual["id"]
    if after["location"] != before["location"]:
        errors.append("location: load balancer %r is in %s and cannot move" % (before["name"], before["location"]))
    body = _put_body(before, after, {"name": "name", "labels": "labels"})
    if body:
        plan.add(Step("update", "load_balancer", ident, body=body))
    if after["load_balancer_type"] != before["load_balancer_type"]:
        plan.add(Step("action", "load_balancer", ident, "change_type",
                      {"load_balancer_type": after["load_balancer_type"]}))
    if after["algorithm"] != before["algorithm"]:
        plan.add(Step("action", "load_balancer", ident, "change_algorithm", {"type": after["algorithm"]}))
    if (after["network"], after["network_ip"]) != (before["network"], before["network_ip"]):
        if before["network"] is not None:
            if not after["public_interface"] and before["public_interface"] is False and after["network"] is None:
                errors.append("network: cannot detach the only network of a load balancer without public interface")
            plan.add(Step("action", "load_balancer", ident, "detach_from_network",
                          {"network": actual["private_net"][0]["network"]}))
        if after["network"] is not None:
            attach = {"network": network_ref}
            if after["network_ip"]:
                attach["ip"] = after["network_ip"]
            plan.add(Step("action", "load_balancer", ident, "attach_to_network", attach))
    if after["public_interface"] != before["public_interface"]:
        plan.add(Step("action", "load_balancer", ident,
                      "enable_public_interface" if after["public_interface"] else "disable_public_interface"))
    before_services = {s["listen_port"]: s for s in before["services"]}
    after_services = {s["listen_port"]: s for s in after["services"]}
    for port in before_services:
        if port not in after_services or after_services[port]["protocol"] != before_services[port]["protocol"]:
            plan.add(Step("action", "load_balancer", ident, "delete_service", {"listen_port": port}))
    for port, service in after_services.items():
        old = before_services.get(port)
        if old is None or old["protocol"] != service["protocol"]:
            plan.add(Step("action", "load_balancer", ident, "add_service", _prune(service)))
        elif old != service:
            plan.add(Step("action", "load_balancer", ident, "update_service", _prune(service)))
    after_targets = {_target_key(t): t for t in after["targets"]}
    for key, t in before_targets.items():
        if after_targets.get(key) != t:
            refs = {t.get("server"): ctx.reference("server", t["server"], "targets", errors)} \
                if t["type"] == "server" else {}
            payload = _target_payload(t, refs)
            payload.pop("use_private_ip", None)
            plan.add(Step("action", "load_balancer", ident, "remove_target", payload))
    for key, t in after_targets.items():
        if before_targets.get(key) != t:
            plan.add(Step("action", "load_balancer", ident, "add_target", _target_payload(t, target_refs)))
    _protection_step(plan, "load_balancer", before, after)
    return _finish(plan, before, after)


# --------------------------------------------------------------------------- registry

PLANNERS = {
    "ssh_key": plan_ssh_key,
    "placement_group": plan_placement_group,
    "network": plan_network,
    "firewall": plan_firewall,
    "server": plan_server,
    "volume": plan_volume,
    "floating_ip": plan_floating_ip,
    "load_balancer": plan_load_balancer,
}

NORMALISERS = {
    "ssh_key": normalise_ssh_key,
    "placement_group": normalise_placement_group,
    "network": normalise_network,
    "firewall": normalise_firewall,
    "server": normalise_server,
    "volume": normalise_volume,
    "floating_ip": normalise_floating_ip,
    "load_balancer": normalise_load_balancer,
}


def _represent_simple(kind):
    def represent_fn(obj, ctx):
        result = NORMALISERS[kind](obj, ctx)
        if result is not None:
            result["id"] = obj.get("id")
            if kind == "ssh_key":
                result["fingerprint"] = obj.get("fingerprint")
        return result
    return represent_fn


REPRESENTERS = {
    "ssh_key": _represent_simple("ssh_key"),
    "placement_group": _represent_simple("placement_group"),
    "network": _represent_simple("network"),
    "firewall": _represent_simple("firewall"),
    "server": represent_server,
    "volume": represent_volume,
    "floating_ip": represent_floating_ip,
    "load_balancer": represent_load_balancer,
}


def plan(kind: str, desired: dict, actual: dict | None, ctx) -> Plan:
    """Plan one resource from its arguments (and what ``ctx`` knows or, with a loader, reads).

    The options are checked on their own first (ports, CIDRs, sizes, labels, ...): a plan with such
    errors is not planned any further, so nothing invalid reaches a planner or the API."""
    errors = v.static_errors(kind, desired)
    if errors:
        result = _new_plan(kind, desired, actual)
        result.errors.extend(errors)
        return result
    return PLANNERS[kind](desired, actual, ctx)


def normalise(kind: str, obj: dict | None, ctx) -> dict | None:
    return NORMALISERS[kind](obj, ctx)


def represent(kind: str, obj: dict | None, ctx) -> dict | None:
    return REPRESENTERS[kind](obj, ctx)


def planned_object(plan_: Plan) -> dict | None:
    """The object as it will be after the plan (check mode's answer), with its id if known."""
    if plan_.after is None:
        return None
    result = dict(plan_.after)
    result["id"] = plan_.actual_id
    return result


__all__ = ["plan", "normalise", "represent", "planned_object", "PLANNERS", "NORMALISERS", "Ref"]
