# Copyright: (c) 2026, autoscale.hetzner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Converging a whole declared topology: check, read, plan with the per-type planners, apply
concurrently, verify.

The per-type reconcile logic lives in planners.py (one planner per resource type, shared with the
per-resource modules). This file only adds what a *stack* needs on top:

* ``expand``            the stack declaration -> per-type desired specs (the planners' input), with
                        the ownership labels on everything and, for every option, the place in the
                        declaration it came from (so every message names ``tiers[1].servers[0].ip``).
* ``check_declaration`` everything that can be known from the declaration alone; any problem
                        stops the run before the first request.
* ``read_state``        one list request per resource type (in parallel), catalogue objects
                        harvested from what those lists embed, so a no-change run reads nothing else.
* ``plan_stack``        ownership checks, cross-resource validation, one Plan per resource, the
                        deletions of ``prune`` with their guards (``prune_max``, emptied tiers).
* ``StackLock``         one run at a time per stack (a placement group whose name is the lock).
* ``apply_stack``       dependency levels; inside a level every plan's phase N starts concurrently and
                        all their actions are awaited together (GET /actions?id=..). A failure stops
                        only its resource and what depends on it.
* ``render_plan``       the Terraform-plan-like text for --check/--diff and the data form.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from .api import HetznerApi, HetznerError
from .reconcile import Context, Ref, Resolver, Step, execute_step, jsonable
from . import planners
from . import pricing
from . import validation as v
from .specs import suggest

MANAGED_BY_KEY = "managed-by"
MANAGED_BY_VALUE = "autoscale.hetzner.stack"
STACK_KEY = "stack"
TIER_KEY = "tier"
RESERVED_LABELS = (MANAGED_BY_KEY, STACK_KEY, TIER_KEY)

# Creation order. A level starts when every action of the previous level has finished: servers
# need their networks, firewalls, keys and placement groups; volumes, load balancer targets and
# floating IPs need their servers. Deletions run in the reverse order.
LEVELS = [
    ["ssh_key", "network", "firewall", "placement_group"],
    ["server"],
    ["volume", "load_balancer", "floating_ip"],
]
KINDS = [kind for level in LEVELS for kind in level]
LIST_PATHS = {
    "ssh_key": "ssh_keys", "network": "networks", "firewall": "firewalls", "placement_group": "placement_groups",
    "server": "servers", "volume": "volumes", "load_balancer": "load_balancers", "floating_ip": "floating_ips",
}
DECLARATION_LISTS = {path: kind for kind, path in LIST_PATHS.items() if kind != "server"}
SYMBOLS = {"create": "+", "update": "~", "delete": "-"}
# Re-plans after the apply: a resource whose action failed, or whose answer was lost, is repaired in
# the same run (the failure is still reported).
REPAIR_PASSES = 2


# --------------------------------------------------------------------------- the declaration

def managed_labels(stack_name, extra=None):
    labels = dict(extra or {})
    labels[MANAGED_BY_KEY] = MANAGED_BY_VALUE
    labels[STACK_KEY] = stack_name
    return labels


def tier_selector(stack_name, tier):
    return "%s=%s,%s=%s,%s=%s" % (MANAGED_BY_KEY, MANAGED_BY_VALUE, STACK_KEY, stack_name, TIER_KEY, tier)


def _clean(spec):
    return {k: val for k, val in spec.items() if val is not None}


class Expansion:
    """The declaration as per-type desired specs, plus where each option of each spec came from."""

    def __init__(self):
        self.desired = {kind: [] for kind in KINDS}
        self.origins = {}  # (kind, name) -> {"": path of the item, option: path of the value}

    def add(self, kind, spec, path, origins=None):
        self.desired[kind].append(spec)
        entry = {"": path}
        entry.update(origins or {})
        self.origins.setdefault((kind, spec["name"]), entry)

    def where(self, kind, name, option=None):
        entry = self.origins.get((kind, name)) or {}
        if option is None:
            return entry.get("") or "%s %s" % (kind, name)
        return entry.get(option) or "%s.%s" % (entry.get("") or kind, option)

    def locate(self, kind, name, message):
        """'option[0].key: text' from a planner -> 'tiers[1].servers[0].key: text' (declaration path)."""
        entry = self.origins.get((kind, name))
        if entry is None:
            return "%s %r: %s" % (kind, name, message)
        head, sep, text = message.partition(": ")
        match = re.match(r"^([a-z_]+)((?:\[\d+\])?(?:[.\[][\w.\[\]]*)?)$", head) if sep else None
        if match is None:
            return "%s (%s %s): %s" % (entry[""], kind, name, message)
        key, rest = match.groups()
        prefixes = [option for option in entry if option and head.startswith(option)
                    and head[len(option):len(option) + 1] in ("", ".", "[")]
        if prefixes:
            option = max(prefixes, key=len)
            return "%s%s: %s" % (entry[option], head[len(option):], text)
        if key in entry:
            return "%s%s: %s" % (entry[key], rest, text)
        return "%s.%s: %s" % (entry[""], head, text)


def _first(*pairs):
    """(value, path) of the first pair whose value is set, else (None, path of the first pair)."""
    for value, path in pairs:
        if value is not None:
            return value, path
    return None, pairs[0][1]


def expand(params):
    """The validated declaration -> Expansion ({kind: [desired spec in the per-resource module's
    option format]} plus origins)."""
    result = Expansion()
    name = params["name"]
    base_labels = managed_labels(name, params.get("labels"))
    default_location = params.get("location")

    def labelled(item, extra=None):
        labels = dict(params.get("labels") or {})
        labels.update(extra or {})
        labels.update(item.get("labels") or {})
        labels.update(base_labels)  # the stack's own labels always win (user ones are refused earlier)
        if extra and TIER_KEY in extra:
            labels[TIER_KEY] = extra[TIER_KEY]
        return labels

    def simple(path, i, item):
        return {key: "%s[%d].%s" % (path, i, key) for key in item}

    for i, key in enumerate(params.get("ssh_keys") or []):
        result.add("ssh_key", _clean({"name": key["name"], "public_key": key.get("public_key"),
                                      "labels": labelled(key)}), "ssh_keys[%d]" % i, simple("ssh_keys", i, key))
    for i, net in enumerate(params.get("networks") or []):
        origins = simple("networks", i, net)
        result.add("network", _clean({
            "name": net["name"], "ip_range": net.get("ip_range"), "labels": labelled(net),
            "subnets": [_clean({"ip_range": s["ip_range"], "network_zone": s.get("network_zone") or "eu-central",
                                "type": s.get("type") or "cloud", "vswitch_id": s.get("vswitch_id")})
                        for s in net.get("subnets") or []],
            "routes": [{"destination": r["destination"], "gateway": r["gateway"]} for r in net.get("routes") or []],
            "delete_protection": net.get("delete_protection"),
            "expose_routes_to_vswitch": net.get("expose_routes_to_vswitch"),
        }), "networks[%d]" % i, origins)
    for i, firewall in enumerate(params.get("firewalls") or []):
        result.add("firewall", _clean({"name": firewall["name"], "labels": labelled(firewall),
                                       "rules": [_clean(dict(rule)) for rule in firewall.get("rules") or []]}),
                   "firewalls[%d]" % i, simple("firewalls", i, firewall))
    for i, group in enumerate(params.get("placement_groups") or []):
        result.add("placement_group", {"name": group["name"], "type": group.get("type") or "spread",
                                       "labels": labelled(group)}, "placement_groups[%d]" % i,
                   simple("placement_groups", i, group))
    for t, tier in enumerate(params.get("tiers") or []):
        tier_path = "tiers[%d]" % t
        for s, server in enumerate(tier.get("servers") or []):
            path = "%s.servers[%d]" % (tier_path, s)
            origins = {"name": path + ".name", "labels": path + ".labels"}
            spec = {"name": server["name"]}

            for key, default, default_path in (("server_type", None, None), ("image", None, None),
                                               ("location", default_location, "location"), ("ssh_keys", None, None),
                                               ("firewalls", [], None), ("placement_group", "", None),
                                               ("user_data", None, None), ("enable_ipv4", None, None),
                                               ("enable_ipv6", None, None), ("backups", None, None),
                                               ("delete_protection", None, None), ("state", "started", None)):
                value, origins[key] = _first((server.get(key), "%s.%s" % (path, key)),
                                             (tier.get(key), "%s.%s" % (tier_path, key)),
                                             (default, default_path or "%s.%s" % (path, key)))
                if value is not None:
                    spec[key] = value
            if spec.get("delete_protection") is not None:
                spec["rebuild_protection"] = spec["delete_protection"]
            origins["rebuild_protection"] = origins["delete_protection"]
            network, network_path = _first((server.get("network"), path + ".network"),
                                           (tier.get("network"), tier_path + ".network"))
            spec["networks"] = [_clean({"network": network, "ip": server.get("ip"),
                                        "alias_ips": server.get("alias_ips")})] if network else []
            origins.update({"networks": network_path, "networks[0]": network_path,
                            "networks[0].network": network_path, "networks[0].ip": path + ".ip",
                            "networks[0].alias_ips": path + ".alias_ips"})
            spec["labels"] = labelled(server, dict(tier.get("labels") or {}, **{TIER_KEY: tier["name"]}))
            result.add("server", spec, path, origins)
    for i, volume in enumerate(params.get("volumes") or []):
        origins = simple("volumes", i, volume)
        location = volume.get("location")
        if location is None and volume.get("server") is None and default_location:
            location, origins["location"] = default_location, "location"
        result.add("volume", _clean({
            "name": volume["name"], "size": volume.get("size"), "server": volume.get("server"),
            "location": location, "format": volume.get("format"), "automount": volume.get("automount"),
            "labels": labelled(volume), "delete_protection": volume.get("delete_protection")}),
            "volumes[%d]" % i, origins)
    for i, lb in enumerate(params.get("load_balancers") or []):
        path = "load_balancers[%d]" % i
        origins = simple("load_balancers", i, lb)
        origins["network_ip"] = path + ".ip"
        location, origins["location"] = _first((lb.get("location"), path + ".location"), (default_location, "location"))
        targets = []
        for target in lb.get("targets") or []:
            if target.get("tier"):
                targets.append({"type": "label_selector", "label_selector": tier_selector(name, target["tier"]),
                                "use_private_ip": bool(target.get("use_private_ip"))})
            elif target.get("server"):
                targets.append({"type": "server", "server": target["server"],
                                "use_private_ip": bool(target.get("use_private_ip"))})
            else:
                targets.append({"type": "label_selector", "label_selector": target.get("label_selector"),
                                "use_private_ip": bool(target.get("use_private_ip"))})
        result.add("load_balancer", _clean({
            "name": lb["name"], "load_balancer_type": lb.get("load_balancer_type"),
            "location": location, "network": lb.get("network"),
            "network_ip": lb.get("ip"), "algorithm": lb.get("algorithm"),
            "services": [_clean(dict(s)) for s in lb.get("services") or []], "targets": targets,
            "labels": labelled(lb), "public_interface": lb.get("public_interface"),
            "delete_protection": lb.get("delete_protection")}), path, origins)
    for i, fip in enumerate(params.get("floating_ips") or []):
        result.add("floating_ip", _clean({
            "name": fip["name"], "type": fip.get("type") or "ipv4", "home_location": fip.get("home_location"),
            "server": fip.get("server"), "description": fip.get("description"), "labels": labelled(fip),
            "delete_protection": fip.get("delete_protection")}), "floating_ips[%d]" % i,
            simple("floating_ips", i, fip))
    return result


def expand_topology(params):
    """The declaration -> {kind: [desired specs]} (see :func:`expand`)."""
    return expand(params).desired


# --------------------------------------------------------------------------- checks of the declaration alone

def lock_name(stack_name):
    return "%s.%s" % (LOCK_PREFIX, stack_name)


def _labels_maps(params):
    """(path, labels) of every labels map in the declaration."""
    yield "labels", params.get("labels")
    for key in list(DECLARATION_LISTS) + ["tiers"]:
        for i, item in enumerate(params.get(key) or []):
            yield "%s[%d].labels" % (key, i), item.get("labels")
            for j, server in enumerate(item.get("servers") or [] if key == "tiers" else []):
                yield "%s[%d].servers[%d].labels" % (key, i, j), server.get("labels")


def _subnets_of(network):
    result = []
    for subnet in network.get("subnets") or []:
        try:
            result.append(ipaddress.ip_network(subnet["ip_range"], strict=False))
        except ValueError:
            pass
    return result


def _server_location(params, tier, server):
    return server.get("location") or tier.get("location") or params.get("location")


def check_declaration(params, prune=False):
    """(errors, warnings) of the declaration on its own: every message names the key path."""
    errors, warnings = [], []
    stack_name = params.get("name")
    for path, labels in _labels_maps(params):
        for key in sorted(labels or {}):
            if key in RESERVED_LABELS:
                errors.append("%s.%s: %r is a label the stack sets itself (%s); rename your label, e.g. to role" % (
                    path, key, key, ", ".join(RESERVED_LABELS)))
        v.check_labels(labels, errors, option=path)
    v.check_labels({STACK_KEY: stack_name}, errors, option="name")
    budget = params.get("budget")
    if budget is not None and not budget > 0:
        errors.append("budget: %r is not a monthly amount; give the most the stack may cost per month in the "
                      "currency of the API's prices, VAT included, e.g. 50 (or leave budget out)" % (budget,))
    # names unique per type, tiers unique
    for key in list(DECLARATION_LISTS) + ["tiers"]:
        seen = {}
        for i, item in enumerate(params.get(key) or []):
            if item.get("name") in seen:
                errors.append("%s[%d].name: %r is already used by %s[%d]; names must be unique" % (
                    key, i, item["name"], key, seen[item["name"]]))
            seen.setdefault(item.get("name"), i)
    servers, seen = {}, {}
    for t, tier in enumerate(params.get("tiers") or []):
        for s, server in enumerate(tier.get("servers") or []):
            path = "tiers[%d].servers[%d]" % (t, s)
            if server["name"] in seen:
                errors.append("%s.name: %r is already declared at %s; server names must be unique" % (
                    path, server["name"], seen[server["name"]]))
            seen.setdefault(server["name"], path)
            servers.setdefault(server["name"], (path, tier, server))
    for i, group in enumerate(params.get("placement_groups") or []):
        if group["name"].startswith(LOCK_PREFIX + "."):
            errors.append("placement_groups[%d].name: names starting with %s. are reserved for the lock of a "
                          "stack run; choose another name" % (i, LOCK_PREFIX))
    # servers: fixed IPs need a network, are unique, lie in a subnet of a declared network
    networks = {n["name"]: n for n in params.get("networks") or []}
    fixed = {}
    members = {}
    for name, (path, tier, server) in servers.items():
        network = server.get("network") or tier.get("network")
        for key in ("ip", "alias_ips"):
            if server.get(key) and not network:
                errors.append("%s.%s: a fixed private IP needs a network; set network on the tier or the server"
                              % (path, key))
        group = server.get("placement_group") or tier.get("placement_group")
        if group:
            members.setdefault(group, []).append(name)
        ip = server.get("ip")
        if not ip or not network:
            continue
        if (network, ip) in fixed:
            errors.append("%s.ip: %s in network %r is also declared for %s; every server needs its own address" % (
                path, ip, network, fixed[(network, ip)]))
        fixed.setdefault((network, ip), path)
        if network in networks:
            try:
                address = ipaddress.ip_address(ip)
            except ValueError:
                continue  # reported by the server's own checks
            subnets = _subnets_of(networks[network])
            if subnets and not any(address.version == n.version and address in n for n in subnets):
                errors.append("%s.ip: %s is outside every subnet of network %r (%s); pick an address inside one" % (
                    path, ip, network, ", ".join(str(n) for n in subnets)))
    for group, names in members.items():
        if len(names) > 10:
            errors.append("placement group %r: %d servers declared, a spread group holds at most 10 (%s); split "
                          "the tier over two groups" % (group, len(names), ", ".join(names)))
    # load balancers: targets, fixed IP
    tiers = [tier["name"] for tier in params.get("tiers") or []]
    for i, lb in enumerate(params.get("load_balancers") or []):
        path = "load_balancers[%d]" % i
        if lb.get("ip") and not lb.get("network"):
            errors.append("%s.ip: a fixed private IP needs network; set network or remove ip" % path)
        for j, target in enumerate(lb.get("targets") or []):
            where = "%s.targets[%d]" % (path, j)
            given = [k for k in ("tier", "server", "label_selector") if target.get(k)]
            if len(given) != 1:
                errors.append("%s: give exactly one of tier, server or label_selector%s" % (
                    where, " (got %s)" % ", ".join(given) if given else ""))
            if target.get("tier") and target["tier"] not in tiers:
                hint = suggest(target["tier"], tiers)
                errors.append("%s.tier: this stack has no tier %r%s; declared tiers: %s" % (
                    where, target["tier"], "; did you mean %s?" % hint if hint else "", ", ".join(tiers) or "none"))
            if target.get("use_private_ip") and not lb.get("network"):
                errors.append("%s.use_private_ip: needs the load balancer in a network; set %s.network" % (
                    where, path))
    # volumes: a location that contradicts the server's, or none at all
    for i, volume in enumerate(params.get("volumes") or []):
        path = "volumes[%d]" % i
        server = servers.get(volume.get("server"))
        if server is not None and volume.get("location"):
            location = _server_location(params, server[1], server[2])
            if location and location != volume["location"]:
                errors.append("%s.location: %s, but its server %r is in %s; a volume attaches only to servers in "
                              "its location: remove location or make them match" % (
                                  path, volume["location"], volume["server"], location))
        if not volume.get("server") and not volume.get("location") and not params.get("location"):
            errors.append("%s.location: required for a volume without server (or set the stack's location)" % path)
    # an empty declaration
    declared = sum(len(params.get(key) or []) for key in list(DECLARATION_LISTS) + ["tiers"])
    if not declared:
        if prune:
            errors.append("prune: the declaration is empty, so prune would delete every resource of stack %r; "
                          "to delete the stack on purpose use state: absent" % stack_name)
        else:
            warnings.append("the declaration of stack %r is empty: nothing is declared (check the variable that "
                            "holds it, e.g. hetzner_stack)" % stack_name)
    return errors, warnings


def static_errors(expansion):
    """The per-resource checks of validation.static_errors, in declaration paths."""
    errors = []
    for kind in KINDS:
        for spec in expansion.desired[kind]:
            errors.extend(expansion.locate(kind, spec["name"], e) for e in v.static_errors(kind, spec))
    return _unique(errors)


def _unique(items):
    seen, result = set(), []
    for item in items:
        if item not in seen:
            seen.add(item)
            result.append(item)
    return result


# --------------------------------------------------------------------------- reading

def read_state(api, kinds=KINDS, parallel=8):
    """One list per resource type, all at once. Returns a Context with the embedded catalogue
    objects (server types, locations, images, LB types) harvested from the listed resources."""
    with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
        futures = {kind: pool.submit(api.list, kind) for kind in kinds}
        objects = {kind: future.result() for kind, future in futures.items()}
    ctx = Context(objects)
    harvest_catalogue(ctx)
    return ctx


def harvest_catalogue(ctx):
    """Servers embed their server type, location and image, LBs their type and location: enough
    for the planners to check an unchanged stack without reading the catalogue."""
    seen = {"server_type": set(), "location": set(), "image": set(), "load_balancer_type": set()}

    def keep(kind, obj):
        if obj and obj.get("id") is not None and obj["id"] not in seen[kind]:
            seen[kind].add(obj["id"])
            if ctx.by_id(kind, obj["id"]) is None:
                ctx.add(kind, obj)

    for server in ctx.all("server"):
        keep("server_type", server.get("server_type"))
        keep("location", server.get("location") or (server.get("datacenter") or {}).get("location"))
        keep("image", server.get("image"))
    for volume in ctx.all("volume"):
        keep("location", volume.get("location"))
    for lb in ctx.all("load_balancer"):
        keep("location", lb.get("location"))
        keep("load_balancer_type", lb.get("load_balancer_type"))
    for fip in ctx.all("floating_ip"):
        keep("location", fip.get("home_location"))


def catalogue_needs(desired, ctx):
    """Which catalogue lists are still needed to plan: {kind: [names]} ({} on a no-change run)."""
    needs = {"location": set(), "server_type": set(), "image": set(), "load_balancer_type": set()}
    for spec in desired["server"]:
        if spec.get("location"):
            needs["location"].add(spec["location"])
        if spec.get("server_type"):
            needs["server_type"].add(spec["server_type"])
        if ctx.by_name("server", spec["name"]) is None and spec.get("image"):
            needs["image"].add(spec["image"])
    for spec in desired["volume"]:
        if spec.get("location"):
            needs["location"].add(spec["location"])
    for spec in desired["load_balancer"]:
        if spec.get("location"):
            needs["location"].add(spec["location"])
        if spec.get("load_balancer_type"):
            needs["load_balancer_type"].add(spec["load_balancer_type"])
    for spec in desired["floating_ip"]:
        if spec.get("home_location"):
            needs["location"].add(spec["home_location"])
    missing = {}
    for kind, names in needs.items():
        unknown = sorted(str(n) for n in names if (ctx.images(n) if kind == "image" else ctx.lookup(kind, n)) in
                         (None, []))
        if unknown:
            missing[kind] = unknown
    if desired["server"] and "location" in missing:
        # a new location may also change which server types are orderable there
        missing.setdefault("server_type", sorted({s["server_type"] for s in desired["server"] if s.get("server_type")}))
    return missing


def read_catalogue(api, ctx, missing, parallel=8):
    """List the catalogue kinds that are missing (images only by name)."""
    jobs = {}
    with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
        for kind in ("location", "server_type", "load_balancer_type"):
            if kind in missing:
                jobs[kind] = pool.submit(api.list, kind)
        for name in missing.get("image", []):
            if str(name).isdigit():
                jobs["image:" + name] = pool.submit(lambda n: [o for o in [api.get("image", int(n))] if o], name)
            else:
                jobs["image:" + name] = pool.submit(api.list, "image", name=name, include_deprecated="true")
        for key, future in jobs.items():
            kind = key.split(":")[0]
            for obj in future.result():
                ctx.add(kind, obj)
            ctx.objects.setdefault(kind, [])


# --------------------------------------------------------------------------- planning

class StackPlan:
    """Every resource's Plan, in level order, plus what blocks the run.

    A structured object on purpose: the entries (``plan_entries``) are what the module returns and
    what a later layer (costs from /pricing) annotates."""

    def __init__(self, name):
        self.name = name
        self.plans = []          # list of Plan (creates/updates, level order), deletions separately
        self.deletions = []      # list of Plan (reverse level order)
        self.undeclared = []     # [(kind, name)] of owned resources not declared (kept without prune)
        self.errors = []
        self.warnings = []

    @property
    def all_plans(self):
        return self.plans + self.deletions

    @property
    def changed(self):
        return any(p.changed for p in self.all_plans)


def owned_by(obj, stack_name):
    labels = obj.get("labels") or {}
    return labels.get(MANAGED_BY_KEY) == MANAGED_BY_VALUE and labels.get(STACK_KEY) == stack_name


def _desired_network_like(spec):
    """A desired network as validation input (no id: it does not exist yet)."""
    return {"name": spec["name"], "ip_range": spec.get("ip_range"), "subnets": spec.get("subnets") or []}


# server option -> (kind it references, whether it matters for an existing server)
SERVER_REFERENCES = (("ssh_keys", "ssh_key", False), ("firewalls", "firewall", True),
                     ("placement_group", "placement_group", True))


def validate_stack(stack_name, desired, ctx, errors, where=None):
    """Checks across resources that no single planner can see (the planners check the rest).

    ``where(kind, name, option)`` names the declaration path of an option (see Expansion.where)."""
    where = where or (lambda kind, name, option=None: "%s %r%s" % (kind, name, ": " + option if option else ""))
    declared = {kind: {spec["name"] for spec in desired[kind]} for kind in KINDS}

    def exists(kind, ref):
        return ref in declared[kind] or ctx.lookup(kind, ref) is not None

    # fixed private IPs in a network that is only created in this run: the right zone
    networks = {spec["name"]: spec for spec in desired["network"]}
    for spec in desired["server"] + [lb for lb in desired["load_balancer"] if lb.get("network")]:
        kind = "server" if "networks" in spec else "load_balancer"
        if kind == "server":
            attachments = [(n.get("network"), n.get("ip")) for n in spec.get("networks") or []]
        else:
            attachments = [(spec.get("network"), spec.get("network_ip"))]
        location = ctx.lookup("location", spec.get("location")) if spec.get("location") else None
        for network_name, ip in attachments:
            if network_name in networks and ctx.lookup("network", network_name) is None:
                network_like = _desired_network_like(networks[network_name])
                messages = []
                v.check_location_in_zone(location, network_like, "network", messages)
                if ip:
                    v.check_fixed_ip(ip, network_like, location, ctx, "ip", messages)
                for message in messages:
                    key, text = message.split(": ", 1)
                    if kind == "server":
                        key = "networks[0].ip" if key == "ip" else "networks[0].network"
                    else:
                        key = "network_ip" if key == "ip" else "network"
                    errors.append("%s: %s" % (where(kind, spec["name"], key), text))
            elif network_name and not exists("network", network_name):
                option = "networks[0].network" if kind == "server" else "network"
                errors.append("%s: network %r is neither declared in this stack nor existing; declare it under "
                              "networks or fix the name" % (where(kind, spec["name"], option), network_name))
    # references to things that are neither declared nor existing
    for spec in desired["server"]:
        existing = ctx.by_name("server", spec["name"]) is not None
        for option, kind, always in SERVER_REFERENCES:
            if existing and not always:
                continue  # keys only matter when a server is created
            refs = spec.get(option)
            for ref in ([refs] if isinstance(refs, str) else refs or []):
                if ref and not exists(kind, ref):
                    errors.append("%s: %s %r is neither declared in this stack nor existing; declare it under %s "
                                  "or fix the name" % (where("server", spec["name"], option), kind, ref,
                                                       LIST_PATHS[kind]))
    for kind, option in (("volume", "server"), ("floating_ip", "server")):
        for spec in desired[kind]:
            if spec.get(option) and not exists("server", spec[option]):
                errors.append("%s: server %r is neither declared in this stack nor existing; declare it in a tier "
                              "or fix the name" % (where(kind, spec["name"], option), spec[option]))
    for spec in desired["load_balancer"]:
        for i, target in enumerate(spec.get("targets") or []):
            if target.get("type") == "server" and not exists("server", target.get("server")):
                errors.append("%s: server %r is neither declared in this stack nor existing; declare it in a tier or "
                              "fix the name" % (where("load_balancer", spec["name"], "targets") +
                                                "[%d].server" % i, target.get("server")))


def plan_stack(stack_name, desired, ctx, prune=False, expansion=None, prune_max=None, prune_tiers=(),
               teardown=False, unprotect=False):
    """Plans for every declared resource, plus deletions of owned, undeclared ones when pruning.

    Guards of prune (not for ``teardown``, i.e. state=absent): no more deletions than ``prune_max``,
    and no tier loses all its servers unless it is listed in ``prune_tiers``. A delete-protected resource
    stops the run, unless ``teardown`` and ``unprotect``: then its protection is removed first."""
    result = StackPlan(stack_name)
    where = expansion.where if expansion is not None else None

    def located(kind, name, message):
        return expansion.locate(kind, name, message) if expansion is not None else "%s %r: %s" % (kind, name, message)

    actual = {kind: {} for kind in KINDS}
    for kind in KINDS:
        for obj in ctx.all(kind):
            if obj.get("name"):
                actual[kind][obj["name"]] = obj

    # ownership: never adopt or touch what this stack did not create
    for kind in KINDS:
        for spec in desired[kind]:
            obj = actual[kind].get(spec["name"])
            if obj is not None and not owned_by(obj, stack_name):
                owner = (obj.get("labels") or {}).get(STACK_KEY)
                result.errors.append(located(kind, spec["name"], (
                    "name: %s %r already exists and is not managed by stack %r (%s); rename it in the declaration, "
                    "or delete/relabel the existing one") % (
                        kind, spec["name"], stack_name,
                        "it belongs to stack %r" % owner if owner and (obj.get("labels") or {}).get(MANAGED_BY_KEY)
                        else "it has no label %s=%s" % (MANAGED_BY_KEY, MANAGED_BY_VALUE))))

    ctx.pending = {(kind, spec["name"]) for kind in KINDS for spec in desired[kind]
                   if spec["name"] not in actual[kind]}
    validate_stack(stack_name, desired, ctx, result.errors, where)

    for kind in KINDS:
        for spec in desired[kind]:
            obj = actual[kind].get(spec["name"])
            if obj is not None and not owned_by(obj, stack_name):
                continue
            plan = planners.plan(kind, spec, obj, ctx)
            result.plans.append(plan)
            result.errors.extend(located(kind, spec["name"], e) for e in plan.errors)
            result.warnings.extend(located(kind, spec["name"], w) for w in plan.warnings)

    declared = {kind: {spec["name"] for spec in desired[kind]} for kind in KINDS}
    undeclared = [(kind, obj) for level in reversed(LEVELS) for kind in level for obj in ctx.all(kind)
                  if owned_by(obj, stack_name) and obj.get("name") not in declared[kind]]
    if not prune:
        result.undeclared = [(kind, obj["name"]) for kind, obj in undeclared]
    else:
        for kind, obj in undeclared:
            protected = bool((obj.get("protection") or {}).get("delete"))
            if protected and teardown and not unprotect:
                result.errors.append(
                    "%s %r is delete-protected; nothing is deleted while it is. unprotect: true removes the "
                    "protection first (playbooks/destroy.yml: -e unprotect=yes)" % (kind, obj["name"]))
                continue
            if protected and not teardown:
                result.errors.append(
                    "%s %r is delete-protected and no longer declared; declare it with "
                    "delete_protection: false first, or remove the protection by hand" % (kind, obj["name"]))
                continue
            plan = planners.plan(kind, {"name": obj["name"], "state": "absent"}, obj, ctx)
            if protected:
                plan.errors = [e for e in plan.errors if "delete-protected" not in e]
                body = {"delete": False, "rebuild": False} if kind == "server" else {"delete": False}
                plan.phases.insert(0, [Step("action", kind, obj["id"], "change_protection", body)])
            result.deletions.append(plan)
        if not teardown:
            _guard_prune(result, desired, ctx, stack_name, prune_max, prune_tiers)
    result.errors = _unique(result.errors)
    return result


def _guard_prune(result, desired, ctx, stack_name, prune_max, prune_tiers):
    doomed = [p for p in result.deletions if p.changed]
    if prune_max is not None and len(doomed) > prune_max:
        result.errors.append(
            "prune: %d resources would be deleted, more than prune_max (%d): %s. Check the declaration (a misspelt "
            "name deletes the resource it no longer names); if these deletions are wanted, run with prune_max: %d" % (
                len(doomed), prune_max, ", ".join("%s %s" % (p.kind, p.name) for p in doomed), len(doomed)))
    deleted = {p.name for p in doomed if p.kind == "server"}
    declared_tiers = {}
    for spec in desired["server"]:
        declared_tiers.setdefault(spec["labels"].get(TIER_KEY), []).append(spec["name"])
    tiers = {}
    for obj in ctx.all("server"):
        if owned_by(obj, stack_name):
            tiers.setdefault((obj.get("labels") or {}).get(TIER_KEY), []).append(obj["name"])
    for tier, names in sorted(tiers.items(), key=lambda item: str(item[0])):
        if tier is None or tier in (prune_tiers or ()) or declared_tiers.get(tier):
            continue
        if all(name in deleted for name in names):
            result.errors.append(
                "prune: tier %r would lose all its servers (%s); if the tier is meant to go, add it to "
                "prune_tiers: [%s]" % (tier, ", ".join(sorted(names)), tier))


# --------------------------------------------------------------------------- cost

def read_pricing(api):
    """The ``pricing`` object of GET /pricing (one request)."""
    return (api.request("GET", "/pricing", doing="reading the prices (GET /pricing)") or {}).get("pricing")


def plan_cost(stack_plan, ctx, prices, budget=None):
    """The cost of the stack now and after ``stack_plan`` (see pricing.stack_cost). Raises
    pricing.PricingError when /pricing lacks a price the stack needs."""
    name = stack_plan.name
    before = [(kind, planners.NORMALISERS[kind](obj, ctx)) for kind in KINDS for obj in ctx.all(kind)
              if owned_by(obj, name)]
    undeclared = set(stack_plan.undeclared)
    after = [(plan.kind, plan.after) for plan in stack_plan.plans if plan.after]
    after.extend((kind, planners.NORMALISERS[kind](obj, ctx)) for kind in KINDS for obj in ctx.all(kind)
                 if (kind, obj.get("name")) in undeclared and owned_by(obj, name))
    return pricing.stack_cost(prices, before, after, budget)


# --------------------------------------------------------------------------- rendering

def _short(value):
    text = repr(jsonable(value)) if not isinstance(value, str) else value
    return text if len(text) <= 200 else text[:197] + "..."


def plan_changes(plan):
    """{field: {before, after}} of what the plan changes (for deletions: what goes away)."""
    before = plan.before or {}
    after = plan.after or {}
    if plan.operation == "create":
        return {key: {"before": None, "after": jsonable(value)} for key, value in after.items()
                if value not in (None, [], {}, False)}
    if plan.operation == "delete":
        return {}
    return {key: {"before": jsonable(before.get(key)), "after": jsonable(after.get(key))}
            for key in sorted(set(before) | set(after)) if before.get(key) != after.get(key)}


def plan_entries(stack_plan):
    entries = []
    for plan in stack_plan.all_plans:
        if not plan.changed:
            continue
        operation = plan.operation if plan.operation in SYMBOLS else "update"
        entries.append({"action": operation, "type": plan.kind, "name": plan.name,
                        "changes": plan_changes(plan), "requests": len(plan.steps())})
    return entries


def summary_counts(entries):
    counts = {"create": 0, "update": 0, "delete": 0}
    for entry in entries:
        counts[entry["action"]] += 1
    return counts


def render_plan(stack_name, entries, undeclared=()):
    counts = summary_counts(entries)
    lines = ["Stack %s: %d to create, %d to update, %d to delete%s" % (
        stack_name, counts["create"], counts["update"], counts["delete"],
        ", %d no longer declared (kept)" % len(undeclared) if undeclared else "")]
    if not entries:
        lines.append("  (no changes: the cloud matches the declaration)")
    for entry in entries:
        lines.append("%s %s %s" % (SYMBOLS[entry["action"]], entry["type"], entry["name"]))
        for key, change in entry["changes"].items():
            if entry["action"] == "create":
                lines.append("      %s: %s" % (key, _short(change["after"])))
            else:
                lines.append("      %s: %s -> %s" % (key, _short(change["before"]), _short(change["after"])))
    for kind, name in undeclared:
        lines.append("! %s %s: no longer declared, kept (prune: true deletes it)" % (kind, name))
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- one run at a time

LOCK_PREFIX = "autoscale-stack-lock"
LOCK_MANAGED_BY = "autoscale.hetzner.stack-lock"


def _read(path):
    try:
        with open(path) as handle:
            return handle.read().strip()
    except OSError:
        return None


def process_start(pid):
    """Start time of a process (clock ticks since boot), None if there is no such process."""
    stat = _read("/proc/%d/stat" % pid)
    if not stat:
        return None
    return stat.rsplit(")", 1)[-1].split()[19]


def this_process():
    """Where this run lives: machine, boot, pid and the pid's start time (pids are reused)."""
    machine = _read("/etc/machine-id") or re.sub(r"[^a-zA-Z0-9.-]", "-", socket.gethostname())[:63]
    return {"machine": machine[:63], "boot": (_read("/proc/sys/kernel/random/boot_id") or "unknown")[:63],
            "pid": str(os.getpid()), "pstart": process_start(os.getpid()) or "unknown"}


class StackLock:
    """One run at a time per stack.

    The API offers no locks, but names are unique per project and a create is atomic: the lock is a
    placement group named ``autoscale-stack-lock.<stack>`` (free of charge, no effect on servers),
    created before the first write and deleted after the last. Its labels say who holds it (run id,
    machine, boot, pid and the pid's start time) and until when (``expires``, renewed every
    ``ttl/3`` seconds while the run lasts). A waiting run takes over a lock whose holder is gone: on
    the same machine and boot when its process no longer exists (a ``kill -9`` is noticed at once),
    elsewhere when it has expired. Otherwise it waits up to ``wait`` seconds, then fails with
    "another run is in progress", before anything changed.
    """

    def __init__(self, api, stack_name, ttl=90, poll=2.0):
        self.api = api
        self.stack_name = stack_name
        self.name = lock_name(stack_name)
        self.ttl = ttl
        self.poll = poll
        self.run_id = uuid.uuid4().hex
        self.me = this_process()
        self.obj = None
        self.contended = False
        self.taken_over = []
        self._stop = threading.Event()
        self._thread = None

    def labels(self):
        labels = {MANAGED_BY_KEY: LOCK_MANAGED_BY, "stack-lock": self.stack_name, "run": self.run_id,
                  "expires": str(int(time.time() + self.ttl)), "started": str(int(time.time()))}
        labels.update(self.me)
        return labels

    @staticmethod
    def describe(obj):
        labels = (obj or {}).get("labels") or {}
        started = labels.get("started")
        return "run %s (pid %s on machine %s, started %s)" % (
            labels.get("run", "?"), labels.get("pid", "?"), labels.get("machine", "?")[:12],
            time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(int(started))) if str(started).isdigit() else "?")

    def stale(self, obj, now=None):
        """Why the holder of ``obj`` is gone, or None while it may still run."""
        labels = obj.get("labels") or {}
        now = time.time() if now is None else now
        expires = labels.get("expires")
        if not str(expires).isdigit() or int(expires) < now:
            return "its lock expired at %s" % time.strftime("%H:%M:%S UTC", time.gmtime(int(expires or 0)))
        if labels.get("machine") == self.me["machine"]:
            if labels.get("boot") != self.me["boot"]:
                return "the machine it ran on has rebooted since"
            pid = labels.get("pid")
            if str(pid).isdigit() and process_start(int(pid)) != labels.get("pstart"):
                return "its process %s no longer exists" % pid
        return None

    def held_by_other(self, ctx):
        """The lock object in a listed state, if another run holds it."""
        obj = ctx.by_name("placement_group", self.name)
        if obj is not None and ((obj.get("labels") or {}).get("run") != self.run_id):
            return obj
        return None

    def remove_stale(self, obj):
        """Delete the lock ``obj`` if its holder is gone; returns who held it and why it was removed."""
        reason = self.stale(obj)
        if reason is None:
            return None
        try:
            self.api.delete("placement_group", obj["id"])
        except HetznerError as exc:
            if exc.code != "not_found":
                raise
        return "%s: %s" % (self.describe(obj), reason)

    def acquire(self, wait):
        deadline = time.monotonic() + wait
        while True:
            try:
                self.obj = self.api.create("placement_group", {"name": self.name, "type": "spread",
                                                               "labels": self.labels()})["placement_group"]
                break
            except HetznerError as exc:
                if exc.code != "uniqueness_error":
                    raise
            holder = self.api.find("placement_group", self.name)
            if holder is None:
                continue  # released in between
            if (holder.get("labels") or {}).get("run") == self.run_id:
                self.obj = holder  # our create went through, its answer was lost
                break
            removed = self.remove_stale(holder)
            if removed:
                self.taken_over.append(removed)
                self.contended = True
                continue
            self.contended = True
            if time.monotonic() >= deadline:
                labels = holder.get("labels") or {}
                raise HetznerError(
                    "another run is in progress on stack %s: %s holds the lock (placement group %r). Nothing was "
                    "changed. Run again when it has finished (this run waited %ds; lock_timeout sets how long). If "
                    "that run died on another machine, its lock expires at %s" % (
                        self.stack_name, self.describe(holder), self.name, wait,
                        time.strftime("%H:%M:%S UTC", time.gmtime(int(labels.get("expires") or 0)))),
                    code="stack_locked")
            time.sleep(self.poll)
        self._thread = threading.Thread(target=self._renew, name="stack-lock", daemon=True)
        self._thread.start()
        return self

    def _renew(self):
        while not self._stop.wait(self.ttl / 3.0):
            try:
                self.api.update("placement_group", self.obj["id"], {"labels": self.labels()})
            except HetznerError:
                pass  # the next renewal tries again; the lock only expires after ttl

    def release(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        if self.obj is None:
            return None
        try:
            self.api.delete("placement_group", self.obj["id"])
        except HetznerError as exc:
            if exc.code != "not_found":
                return "could not remove the lock %r (%s); the next run takes it over" % (self.name, exc.message)
        finally:
            self.obj = None
        return None


# --------------------------------------------------------------------------- applying

class ApplyReport:
    """What went wrong while applying: failed resources (with the API's message) and the ones skipped
    because they depend on a failed one. A re-plan after the apply repairs them."""

    def __init__(self):
        self.failed = {}    # (kind, name) -> message
        self.skipped = []   # (kind, name, failed dependency)

    def fail(self, plan, message):
        self.failed.setdefault((plan.kind, plan.name), "%s %r: %s" % (plan.kind, plan.name, message))

    @property
    def messages(self):
        return list(self.failed.values()) + ["%s %r: not attempted, it depends on %s %r, which failed" % (
            kind, name, dep[0], dep[1]) for kind, name, dep in self.skipped]


def adopter(api, stack_name):
    """A create answered uniqueness_error after a lost answer: the object is ours if it carries our labels."""
    def adopt(step):
        obj = api.find(step.kind, (step.body or {}).get("name"))
        return obj if obj is not None and owned_by(obj, stack_name) else None
    return adopt


def _refs(value):
    if isinstance(value, Ref):
        yield (value.kind, value.name)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _refs(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _refs(item)


def depends_on(plan):
    """(kind, name) of the resources created in this run that a plan's steps refer to."""
    found = set()
    for step in plan.steps():
        found.update(_refs(step.body))
        found.update(_refs(step.target))
    found.discard((plan.kind, plan.name))
    return found


def _start(api, plan, index, resolver, adopt):
    actions = []
    for step in plan.phases[index]:
        actions.extend(execute_step(api, step, resolver, adopt=adopt))
    return actions


def apply_plans(api, plans, resolver, report, parallel=10, timeout=1800.0, stack_name=None):
    """Run plans in lock step: phase N of every plan starts together, then one batched wait.

    A failure (an error answer, a failed action) stops that plan; the others go on. Plans that refer
    to a failed resource are not started at all."""
    adopt = adopter(api, stack_name) if stack_name else None
    alive = []
    for plan in plans:
        failed = sorted(dep for dep in depends_on(plan) if dep in report.failed or
                        any(dep == (k, n) for k, n, _d in report.skipped))
        if failed:
            report.skipped.append((plan.kind, plan.name, failed[0]))
        else:
            alive.append(plan)
    depth = max([len(plan.phases) for plan in alive] or [0])
    for index in range(depth):
        work = [plan for plan in alive if index < len(plan.phases) and (plan.kind, plan.name) not in report.failed]
        if not work:
            break
        owners = {}
        actions = []
        with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
            futures = [(plan, pool.submit(_start, api, plan, index, resolver, adopt)) for plan in work]
            for plan, future in futures:
                try:
                    started = future.result()
                except HetznerError as exc:
                    report.fail(plan, exc.message)
                    continue
                for action in started:
                    owners[action.get("id")] = plan
                actions.extend(started)
        if not actions:
            continue
        try:
            finished = api.wait(actions, timeout=timeout, raise_on_error=False)
        except HetznerError as exc:  # timed out: every plan still waiting stops here
            for plan in set(owners.values()):
                report.fail(plan, exc.message)
            continue
        for action in finished:
            if action.get("status") == "error":
                error = action.get("error") or {}
                report.fail(owners.get(action.get("id"), work[0]), "%s failed: %s (%s)" % (
                    action.get("command"), error.get("message"), error.get("code")))


def plan_level(plan):
    """When a plan may start. Level of its kind, except that volumes, floating IPs and load
    balancers that do not refer to a server start early: a load balancer whose targets are label
    selectors is built while the servers boot, which takes its phases off the critical path."""
    level = next(i for i, kinds in enumerate(LEVELS) if plan.kind in kinds)
    if level == 2 and plan.operation != "delete":
        if not any(_mentions_server(step.body) for step in plan.steps() if step.body):
            return 1
    return level


def _mentions_server(value):
    if isinstance(value, dict):
        if value.get("type") == "server" or "server" in value and value.get("type") is None:
            return True
        return any(_mentions_server(v) for v in value.values())
    if isinstance(value, list):
        return any(_mentions_server(v) for v in value)
    return False


def wait_for_locked(api, plans, ctx, timeout):
    """Before changing them, wait for the actions still running on servers the list shows locked
    (left by a run that was killed, or started by another client)."""
    running = []
    for plan in plans:
        obj = ctx.by_id(plan.kind, plan.actual_id) if plan.actual_id is not None and plan.changed else None
        if obj is not None and obj.get("locked"):
            running.extend(api.running_actions(plan.kind, obj["id"]))
    if running:
        api.wait(running, timeout=timeout, raise_on_error=False)


def apply_stack(api, stack_plan, ctx, parallel=10, timeout=1800.0, reread=None):
    """Creations and updates level by level, then deletions in reverse level order. Returns an
    ApplyReport (failures do not raise: they stop their resource and its dependants only).

    reread(kinds) -> Context refreshes the state before deletions of a level whose resources
    may reference ones deleted in an earlier step (e.g. firewalls applied to deleted servers).
    """
    report = ApplyReport()
    resolver = Resolver(api, ctx)
    wait_for_locked(api, stack_plan.all_plans, ctx, timeout)
    for index in range(len(LEVELS)):
        plans = [p for p in stack_plan.plans if plan_level(p) == index and p.changed]
        if plans:
            apply_plans(api, plans, resolver, report, parallel, timeout, stack_plan.name)
    deleted_kinds = set()
    for level in reversed(LEVELS):
        plans = [p for p in stack_plan.deletions if p.kind in level and p.changed]
        if not plans:
            continue
        if deleted_kinds and reread is not None:
            fresh = reread(level)
            replanned = []
            for plan in plans:
                obj = fresh.by_name(plan.kind, plan.name)
                if obj is not None:
                    replanned.append(planners.plan(plan.kind, {"name": plan.name, "state": "absent"}, obj, fresh))
            plans = [p for p in replanned if p.changed]
        apply_plans(api, plans, resolver, report, parallel, timeout, stack_plan.name)
        deleted_kinds.update(level)
    return report


# Kinds whose create answer is the final object (no action follows that changes it).
CREATE_IS_FINAL = {"ssh_key", "network", "firewall", "placement_group"}


def unaffected(ctx, stack_plan, report):
    """A Context with the kinds that need no new read after an apply: every change to them was a create
    or an update whose answer holds the object (recorded in ``ctx``), nothing acted on them, and nothing
    of them failed. SSH keys, placement groups and networks of a new stack, typically. The catalogue is
    kept too. Everything else (servers, volumes, load balancers, firewalls that servers were created
    with) is read again to verify the apply."""
    touched = set()
    for plan in stack_plan.all_plans:
        if not plan.changed:
            continue
        if plan.kind == "server":
            touched.add("firewall")  # a server created with firewalls changes their applied_to
        for step in plan.steps():
            if step.op in ("action", "delete") or step.kind != plan.kind or \
                    step.op == "create" and step.kind not in CREATE_IS_FINAL:
                touched.update((plan.kind, step.kind))
    touched.update(kind for kind, _name in report.failed)
    touched.update(kind for kind, _name, _dep in report.skipped)
    keep = [kind for kind in ctx.objects if kind not in touched]
    return Context({kind: ctx.all(kind) for kind in keep})


def make_api(transport, poll_interval=0.5, poll_max_interval=2.0, parallel=8):
    """The API for a stack run. Polls start at 0.5 s and grow by half up to 2 s while nothing finishes
    (after a finished action they start again at 0.5 s, for its successor): a server create (about 10 s)
    and its start take 8 polls (every request counts against the project's rate limit of 3600 per hour)."""
    return HetznerApi(transport, poll_interval=poll_interval, poll_max_interval=poll_max_interval, parallel=parallel)


def represent_all(ctx, stack_name):
    result = {}
    for kind in KINDS:
        result[LIST_PATHS[kind]] = [planners.represent(kind, obj, ctx) for obj in ctx.all(kind)
                                    if owned_by(obj, stack_name)]
    return result
