# Copyright: (c) 2026, autoscale.hetzner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Converging a whole declared topology: read, plan with the per-type planners, apply concurrently.

The per-type reconcile logic lives in planners.py (one planner per resource type, shared with the
per-resource modules). This file only adds what a *stack* needs on top:

* ``expand_topology``   the stack declaration -> per-type desired specs (the planners' input),
                        with the ownership labels on everything.
* ``read_state``        one list request per resource type (in parallel), catalogue objects
                        harvested from what those lists embed, so a no-change run reads nothing else.
* ``plan_stack``        ownership checks, cross-resource validation, one Plan per resource.
* ``apply_stack``       dependency levels; inside a level every plan's phase N starts concurrently and
                        all their actions are awaited together (GET /actions?id=..).
* ``render_plan``       the Terraform-plan-like text for --check/--diff and the data form.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from .api import HetznerApi, HetznerError
from .reconcile import Context, Resolver, execute_step, jsonable
from . import planners
from . import validation as v

MANAGED_BY_KEY = "managed-by"
MANAGED_BY_VALUE = "autoscale.hetzner.stack"
STACK_KEY = "stack"
TIER_KEY = "tier"

# Creation order. A level starts when every action of the previous level has finished: servers
# need their networks, firewalls, keys and placement groups; volumes, load balancer targets and
# floating IPs need their servers. Deletions run in the reverse order.
LEVELS = [
    ["ssh_key", "network", "firewall", "placement_group"],
    ["server"],
    ["volume", "load_balancer", "floating_ip"],
]
KINDS = [kind for level in LEVELS for kind in level]
# Kinds whose resources have actions (GET /<kinds>/{id}/actions).
KINDS_WITH_ACTIONS = {"server", "network", "firewall", "volume", "load_balancer", "floating_ip"}
# Answers to a retried request whose first attempt was applied but whose answer was lost (502
# after the fact): the wanted state is there already.
ALREADY_DONE = {"server_already_attached", "firewall_already_applied", "target_already_defined",
                "volume_already_attached", "load_balancer_already_attached"}
LIST_PATHS = {
    "ssh_key": "ssh_keys", "network": "networks", "firewall": "firewalls", "placement_group": "placement_groups",
    "server": "servers", "volume": "volumes", "load_balancer": "load_balancers", "floating_ip": "floating_ips",
}
SYMBOLS = {"create": "+", "update": "~", "delete": "-"}


# --------------------------------------------------------------------------- API access

class CountingClient:
    """hcloud Client per thread (requests.Session is not meant to be shared between threads),
    and a count of the requests sent (retries included, as the API sees them)."""

    def __init__(self, factory):
        self._factory = factory
        self._local = threading.local()
        self._lock = threading.Lock()
        self.requests = 0

    def request(self, method, url, **kwargs):
        client = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = self._factory()
            session = client._client._session  # count every HTTP exchange, including retries
            session.hooks["response"].append(self._count)
        return client.request(method, url, **kwargs)

    def _count(self, response, *args, **kwargs):
        with self._lock:
            self.requests += 1
        return response


# --------------------------------------------------------------------------- the declaration

def managed_labels(stack_name, extra=None):
    labels = dict(extra or {})
    labels[MANAGED_BY_KEY] = MANAGED_BY_VALUE
    labels[STACK_KEY] = stack_name
    return labels


def tier_selector(stack_name, tier):
    return "%s=%s,%s=%s,%s=%s" % (MANAGED_BY_KEY, MANAGED_BY_VALUE, STACK_KEY, stack_name, TIER_KEY, tier)


def _pick(*values):
    for value in values:
        if value is not None:
            return value
    return None


def _clean(spec):
    return {k: val for k, val in spec.items() if val is not None}


def expand_topology(params):
    """The module parameters -> {kind: [desired spec in the per-resource module's option format]}."""
    name = params["name"]
    base_labels = managed_labels(name, params.get("labels"))
    default_location = params.get("location")
    desired = {kind: [] for kind in KINDS}

    def labelled(item, extra=None):
        labels = dict(base_labels)
        labels.update(extra or {})
        labels.update(item.get("labels") or {})
        return labels

    for key in (params.get("ssh_keys") or []):
        desired["ssh_key"].append(_clean({"name": key["name"], "public_key": key.get("public_key"),
                                          "labels": labelled(key)}))
    for net in (params.get("networks") or []):
        desired["network"].append(_clean({
            "name": net["name"], "ip_range": net.get("ip_range"), "labels": labelled(net),
            "subnets": [_clean({"ip_range": s["ip_range"], "network_zone": s.get("network_zone") or "eu-central",
                                "type": s.get("type") or "cloud", "vswitch_id": s.get("vswitch_id")})
                        for s in net.get("subnets") or []],
            "routes": net.get("routes") or [],
            "delete_protection": net.get("delete_protection"),
            "expose_routes_to_vswitch": net.get("expose_routes_to_vswitch"),
        }))
    for firewall in (params.get("firewalls") or []):
        desired["firewall"].append(_clean({"name": firewall["name"], "labels": labelled(firewall),
                                           "rules": [_clean(dict(rule)) for rule in firewall.get("rules") or []]}))
    for group in (params.get("placement_groups") or []):
        desired["placement_group"].append({"name": group["name"], "type": group.get("type") or "spread",
                                           "labels": labelled(group)})
    servers_by_tier = {}
    for tier in (params.get("tiers") or []):
        for server in tier.get("servers") or []:
            network = _pick(server.get("network"), tier.get("network"))
            networks = None
            if network:
                networks = [_clean({"network": network, "ip": server.get("ip"),
                                    "alias_ips": server.get("alias_ips")})]
            protection = _pick(server.get("delete_protection"), tier.get("delete_protection"))
            spec = _clean({
                "name": server["name"],
                "server_type": _pick(server.get("server_type"), tier.get("server_type")),
                "image": _pick(server.get("image"), tier.get("image")),
                "location": _pick(server.get("location"), tier.get("location"), default_location),
                "ssh_keys": _pick(server.get("ssh_keys"), tier.get("ssh_keys")),
                "firewalls": _pick(server.get("firewalls"), tier.get("firewalls"), []),
                "placement_group": _pick(server.get("placement_group"), tier.get("placement_group"), ""),
                "networks": networks if networks is not None else [],
                "labels": labelled(server, dict(tier.get("labels") or {}, **{TIER_KEY: tier["name"]})),
                "user_data": _pick(server.get("user_data"), tier.get("user_data")),
                "enable_ipv4": _pick(server.get("enable_ipv4"), tier.get("enable_ipv4")),
                "enable_ipv6": _pick(server.get("enable_ipv6"), tier.get("enable_ipv6")),
                "backups": _pick(server.get("backups"), tier.get("backups")),
                "delete_protection": protection,
                "rebuild_protection": protection,
                "state": "present",
            })
            desired["server"].append(spec)
            servers_by_tier.setdefault(tier["name"], []).append(spec)
    for volume in (params.get("volumes") or []):
        desired["volume"].append(_clean({
            "name": volume["name"], "size": volume.get("size"), "server": volume.get("server"),
            "location": volume.get("location") if volume.get("server") is None else None,
            "format": volume.get("format"), "automount": volume.get("automount"),
            "labels": labelled(volume), "delete_protection": volume.get("delete_protection")}))
    for lb in (params.get("load_balancers") or []):
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
        desired["load_balancer"].append(_clean({
            "name": lb["name"], "load_balancer_type": lb.get("load_balancer_type"),
            "location": _pick(lb.get("location"), default_location), "network": lb.get("network"),
            "network_ip": lb.get("ip"), "algorithm": lb.get("algorithm"),
            "services": [_clean(dict(s)) for s in lb.get("services") or []], "targets": targets,
            "labels": labelled(lb), "public_interface": lb.get("public_interface"),
            "delete_protection": lb.get("delete_protection")}))
    for fip in (params.get("floating_ips") or []):
        desired["floating_ip"].append(_clean({
            "name": fip["name"], "type": fip.get("type") or "ipv4",
            "home_location": fip.get("home_location") if fip.get("server") is None else fip.get("home_location"),
            "server": fip.get("server"), "description": fip.get("description"), "labels": labelled(fip),
            "delete_protection": fip.get("delete_protection")}))
    return desired


# --------------------------------------------------------------------------- reading

def _list_kind(api, kind):
    return api.list(kind)


def read_state(api, kinds=KINDS, parallel=8):
    """One list per resource type, all at once. Returns a Context with the embedded catalogue
    objects (server types, locations, images, LB types) harvested from the listed resources."""
    with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
        futures = {kind: pool.submit(_list_kind, api, kind) for kind in kinds}
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
        unknown = sorted(str(n) for n in names if ctx.lookup(kind, n) is None)
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
    """Every resource's Plan, in level order, plus what blocks the run."""

    def __init__(self, name):
        self.name = name
        self.plans = []          # list of Plan (creates/updates, level order), deletions separately
        self.deletions = []      # list of Plan (reverse level order)
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


def validate_stack(stack_name, desired, ctx, errors):
    """Checks across resources that no single planner can see (the planners check the rest)."""
    for kind in KINDS:
        v.check_duplicate_names(desired[kind], kind, errors)
    for spec in desired["ssh_key"]:
        parts = (spec.get("public_key") or "").split()
        if len(parts) < 2 or not parts[0].startswith(("ssh-", "ecdsa-", "sk-")):
            errors.append("ssh key %r: public_key is not one OpenSSH public key line ('ssh-ed25519 AAAA... comment'); "
                          "got %r" % (spec["name"], (spec.get("public_key") or "")[:40]))
    # fixed private IPs: unique across the declaration, inside a subnet of the right zone, even
    # when the network itself is only created in this run
    networks = {spec["name"]: spec for spec in desired["network"]}
    seen_ips = {}
    for spec in desired["server"] + [lb for lb in desired["load_balancer"] if lb.get("network")]:
        if "networks" in spec:
            attachments = [(n.get("network"), n.get("ip")) for n in spec.get("networks") or []]
        else:
            attachments = [(spec.get("network"), spec.get("network_ip"))]
        location = ctx.lookup("location", spec.get("location")) if spec.get("location") else None
        for network_name, ip in attachments:
            key = (network_name, ip)
            if ip:
                if key in seen_ips:
                    errors.append("%s: private IP %s in network %r is also declared for %s" % (
                        spec["name"], ip, network_name, seen_ips[key]))
                seen_ips[key] = spec["name"]
            if network_name in networks and ctx.lookup("network", network_name) is None:
                network_like = _desired_network_like(networks[network_name])
                v.check_location_in_zone(location, network_like, "%s: network" % spec["name"], errors)
                if ip:
                    v.check_fixed_ip(ip, network_like, location, ctx, "%s: ip" % spec["name"], errors)
            elif network_name and network_name not in networks and ctx.lookup("network", network_name) is None:
                errors.append("%s: network %r is neither declared in this stack nor existing" % (
                    spec["name"], network_name))
    # placement groups: a spread group holds at most 10 servers
    members = {}
    for spec in desired["server"]:
        if spec.get("placement_group"):
            members.setdefault(spec["placement_group"], []).append(spec["name"])
    for group, names in members.items():
        if len(names) > 10:
            errors.append("placement group %r: %d servers declared, a spread group holds at most 10; split the "
                          "tier over two groups" % (group, len(names)))
    # volumes attach only to servers in their location
    servers = {spec["name"]: spec for spec in desired["server"]}
    for spec in desired["volume"]:
        server = servers.get(spec.get("server"))
        if server and spec.get("location") and server.get("location") and spec["location"] != server["location"]:
            errors.append("volume %r: in %s but its server %r is in %s" % (
                spec["name"], spec["location"], server["name"], server["location"]))
    # references to things that are neither declared nor existing
    declared = {kind: {spec["name"] for spec in desired[kind]} for kind in KINDS}
    for spec in desired["server"]:
        refs = (("ssh_keys", "ssh_key"), ("firewalls", "firewall"))
        if ctx.by_name("server", spec["name"]) is not None:
            refs = refs[1:]  # keys only matter when a server is created
        for key, kind in refs:
            for ref in spec.get(key) or []:
                if ref not in declared[kind] and ctx.lookup(kind, ref) is None:
                    errors.append("server %r: %s %r is neither declared in this stack nor existing" % (
                        spec["name"], kind, ref))


def plan_stack(stack_name, desired, ctx, prune=False):
    """Plans for every declared resource, plus deletions of owned, undeclared ones when pruning."""
    result = StackPlan(stack_name)
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
                result.errors.append(
                    "%s %r already exists and is not managed by stack %r (%s); rename it in the declaration, "
                    "or delete/relabel the existing one" % (
                        kind, spec["name"], stack_name,
                        "it belongs to stack %r" % owner if owner and (obj.get("labels") or {}).get(MANAGED_BY_KEY)
                        else "it has no label %s=%s" % (MANAGED_BY_KEY, MANAGED_BY_VALUE)))

    ctx.pending = {(kind, spec["name"]) for kind in KINDS for spec in desired[kind]
                   if spec["name"] not in actual[kind]}
    validate_stack(stack_name, desired, ctx, result.errors)

    for kind in KINDS:
        for spec in desired[kind]:
            obj = actual[kind].get(spec["name"])
            if obj is not None and not owned_by(obj, stack_name):
                continue
            plan = planners.plan(kind, spec, obj, ctx)
            result.plans.append(plan)
            result.errors.extend("%s %r: %s" % (kind, spec["name"], e) for e in plan.errors)
            result.warnings.extend("%s %r: %s" % (kind, spec["name"], w) for w in plan.warnings)

    if prune:
        declared = {kind: {spec["name"] for spec in desired[kind]} for kind in KINDS}
        for level in reversed(LEVELS):
            for kind in level:
                for obj in ctx.all(kind):
                    if not owned_by(obj, stack_name) or obj.get("name") in declared[kind]:
                        continue
                    if (obj.get("protection") or {}).get("delete"):
                        result.errors.append(
                            "%s %r is delete-protected and no longer declared; declare it with "
                            "delete_protection: false first, or remove the protection by hand" % (kind, obj["name"]))
                        continue
                    plan = planners.plan(kind, {"name": obj["name"], "state": "absent"}, obj, ctx)
                    result.deletions.append(plan)
    return result


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


def render_plan(stack_name, entries):
    counts = summary_counts(entries)
    lines = ["Stack %s: %d to create, %d to update, %d to delete" % (
        stack_name, counts["create"], counts["update"], counts["delete"])]
    if not entries:
        lines.append("  (no changes: the cloud matches the declaration)")
    for entry in entries:
        lines.append("%s %s %s" % (SYMBOLS[entry["action"]], entry["type"], entry["name"]))
        for key, change in entry["changes"].items():
            if entry["action"] == "create":
                lines.append("      %s: %s" % (key, _short(change["after"])))
            else:
                lines.append("      %s: %s -> %s" % (key, _short(change["before"]), _short(change["after"])))
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- applying

def running_actions(api, kind, ident):
    if kind not in KINDS_WITH_ACTIONS:
        return []
    data = api.request("GET", "/%s/%s/actions" % (LIST_PATHS[kind], ident), params={"status": "running"})
    return data.get("actions") or []


def execute_step_tolerant(api, step, resolver, stack_name):
    """reconcile.execute_step, plus the answers that mean "already done" after a lost response.

    * create -> uniqueness_error: the first POST went through (answer lost, client retried). If
      the object carries this stack's labels it is ours: adopt it and wait for its running actions.
    * delete -> not_found: already gone.
    * attach/apply -> *_already_*: already attached.
    """
    try:
        return execute_step(api, step, resolver)
    except HetznerError as exc:
        if step.op == "create" and exc.code == "uniqueness_error" and step.body and step.body.get("name"):
            obj = api.find(step.kind, step.body["name"])
            if obj is not None and owned_by(obj, stack_name):
                resolver.record(step.kind, obj)
                return running_actions(api, step.kind, obj["id"])
        if step.op == "delete" and exc.code == "not_found":
            return []
        if step.op == "action" and exc.code in ALREADY_DONE:
            return []
        raise


def start_phase_tolerant(api, plan, index, resolver, stack_name):
    if plan.errors:
        raise HetznerError("refusing to execute a plan with errors: " + "; ".join(plan.errors))
    actions = []
    for step in plan.phases[index]:
        actions.extend(execute_step_tolerant(api, step, resolver, stack_name))
    return actions


def _run_phase_group(api, work, resolver, parallel, stack_name):
    """Start one phase of many plans concurrently; return all the actions they started."""
    actions = []
    errors = []
    with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
        futures = [pool.submit(start_phase_tolerant, api, plan, index, resolver, stack_name) for plan, index in work]
        for future in futures:
            try:
                actions.extend(future.result())
            except HetznerError as exc:
                errors.append(exc)
    return actions, errors


def apply_plans(api, plans, resolver, parallel=10, timeout=1800.0, stack_name=None):
    """Run plans in lock step: phase N of every plan starts together, then one batched wait.

    Errors of one resource do not stop the others of the same phase (their requests are already
    sent); the run stops after that phase and raises the first error, so nothing depending on a
    failed resource is attempted. A rerun continues from whatever exists.
    """
    depth = max([len(plan.phases) for plan in plans] or [0])
    for index in range(depth):
        work = [(plan, index) for plan in plans if index < len(plan.phases)]
        actions, errors = _run_phase_group(api, work, resolver, parallel, stack_name)
        if actions:
            try:
                api.wait(actions, timeout=timeout)
            except HetznerError as exc:
                errors.append(exc)
        if errors:
            raise errors[0]


def _mentions_server(value):
    if isinstance(value, dict):
        if value.get("type") == "server" or "server" in value and value.get("type") is None:
            return True
        return any(_mentions_server(v) for v in value.values())
    if isinstance(value, list):
        return any(_mentions_server(v) for v in value)
    return False


def plan_level(plan):
    """When a plan may start. Level of its kind, except that volumes, floating IPs and load
    balancers that do not refer to a server start early: a load balancer whose targets are label
    selectors is built while the servers boot, which takes its phases off the critical path."""
    level = next(i for i, kinds in enumerate(LEVELS) if plan.kind in kinds)
    if level == 2 and plan.operation != "delete":
        if not any(_mentions_server(step.body) for step in plan.steps() if step.body):
            return 1
    return level


def apply_stack(api, stack_plan, ctx, parallel=10, timeout=1800.0, reread=None):
    """Creations and updates level by level, then deletions in reverse level order.

    reread(kinds) -> Context refreshes the state before deletions of a level whose resources
    may reference ones deleted in an earlier step (e.g. firewalls applied to deleted servers).
    """
    resolver = Resolver(api, ctx)
    for index in range(len(LEVELS)):
        plans = [p for p in stack_plan.plans if plan_level(p) == index and p.changed]
        if plans:
            apply_plans(api, plans, resolver, parallel, timeout, stack_plan.name)
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
        apply_plans(api, plans, resolver, parallel, timeout, stack_plan.name)
        deleted_kinds.update(level)


def make_api(factory, poll_interval=0.5, poll_max_interval=1.5):
    """The API with a request counter. Polls start at 0.5 s and grow to 1.5 s: a server create
    (about 10 s) is seen done at most 1.5 s late, for a handful of extra GET /actions."""
    counting = CountingClient(factory)
    return HetznerApi(counting, poll_interval=poll_interval, poll_max_interval=poll_max_interval), counting


def represent_all(ctx, stack_name):
    result = {}
    for kind in KINDS:
        result[LIST_PATHS[kind]] = [planners.represent(kind, obj, ctx) for obj in ctx.all(kind)
                                    if owned_by(obj, stack_name)]
    return result
