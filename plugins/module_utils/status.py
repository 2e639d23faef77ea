# Copyright: (c) 2026, autoscale.hetzner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The status of a stack: what exists, what it costs, how it drifted from the declaration, how healthy it is.

Built on the stack's own reading and planning (module_utils/stack.py): the drift is the check-mode plan (a
declared resource the plan creates is missing, one it updates has changed) plus what the plan keeps without
a declaration (undeclared) and what the project holds without the stack's labels (outside). The cost is
module_utils/pricing.py's, the same code that prices the plan. Rendering (Markdown tables, Mermaid, Graphviz
DOT) is pure: ``render_markdown(status)`` and ``render_dot(status)`` take the data stack_info returns.
"""

from __future__ import annotations

import re
from decimal import Decimal

from . import planners
from . import pricing
from .stack import KINDS, LOCK_MANAGED_BY, MANAGED_BY_KEY, TIER_KEY, owned_by, plan_cost, plan_entries

# what the tables call each kind, in the report's order
TITLES = {
    "server": "Servers", "network": "Networks", "volume": "Volumes", "load_balancer": "Load balancers",
    "firewall": "Firewalls", "floating_ip": "Floating IPs", "placement_group": "Placement groups",
    "ssh_key": "SSH keys",
}
ORDER = ["server", "network", "volume", "load_balancer", "firewall", "floating_ip", "placement_group", "ssh_key"]
DRIFT_TEXT = {
    "missing": "declared, does not exist (a stack run creates it)",
    "changed": "differs from the declaration (a stack run updates it)",
    "undeclared": "carries the stack's labels, not declared (kept; prune: true deletes it)",
    "outside": "in the project, not managed by any stack (created by hand or another tool)",
}
HEALTHY_SERVER = ("running",)
HEALTHY_TARGET = ("healthy",)


def _gross(items):
    """(net, gross) monthly of pricing items, as decimal strings."""
    net = sum((i["monthly"][0] for i in items), Decimal(0))
    gross = sum((i["monthly"][1] for i in items), Decimal(0))
    return pricing.pair(net, gross)


def _state(kind, obj):
    """The state column: what the API says about the resource."""
    if kind == "server":
        return obj.get("status") or "unknown"
    if kind == "volume":
        return obj.get("status") or "available"
    if kind == "floating_ip":
        return "assigned" if obj.get("server") else "unassigned"
    if kind == "firewall":
        return "applied to %d" % len(obj.get("applied_to") or [])
    if kind == "placement_group":
        return "%d servers" % len(obj.get("servers") or [])
    return "exists"


def _details(kind, state, obj):
    """The details column, from the planners' normalised state (and the raw object for addresses)."""
    if kind == "server":
        public = (obj or {}).get("public_net") or {}
        parts = ["%s in %s" % (state.get("server_type"), state.get("location"))]
        ipv4 = (public.get("ipv4") or {}).get("ip")
        if ipv4:
            parts.append(ipv4)
        parts.extend("%s %s" % (n["network"], n["ip"]) for n in state.get("networks") or [])
        if state.get("backups"):
            parts.append("backups")
        return ", ".join(parts)
    if kind == "network":
        return ", ".join([state.get("ip_range") or ""] + [s["ip_range"] for s in state.get("subnets") or []])
    if kind == "volume":
        where = state.get("location") or ""
        return "%s GB in %s%s" % (state.get("size"), where, ", on %s" % state["server"] if state.get("server") else "")
    if kind == "load_balancer":
        public = ((obj or {}).get("public_net") or {}).get("ipv4") or {}
        ports = ", ".join("%s %s" % (s["protocol"], s["listen_port"]) for s in state.get("services") or [])
        return "%s in %s%s%s" % (state.get("load_balancer_type"), state.get("location"),
                                 ", %s" % public["ip"] if public.get("ip") else "", ", %s" % ports if ports else "")
    if kind == "floating_ip":
        return "%s %s%s" % (state.get("type"), (obj or {}).get("ip") or state.get("home_location") or "",
                            ", on %s" % state["server"] if state.get("server") else "")
    if kind == "firewall":
        count = len(state.get("rules") or [])
        return "%d rule%s" % (count, "" if count == 1 else "s")
    if kind == "placement_group":
        return state.get("type") or ""
    return ""


def _links(kind, state, obj, ctx):
    """Edges of the diagram, [(kind, name, label)], from one resource to the resources it uses."""
    links = []
    if kind == "server":
        for network in state.get("networks") or []:
            links.append(("network", network["network"], network.get("ip") or ""))
        if obj:   # every firewall applied, also through a label selector
            firewalls = [ctx.name_of("firewall", e.get("id")) for e in (obj.get("public_net") or {}).get("firewalls") or []]
        else:     # a missing server: the firewalls it is declared with
            firewalls = state.get("firewalls") or []
        links.extend(("firewall", name, "") for name in sorted(set(f for f in firewalls if f is not None), key=str))
        if state.get("placement_group"):
            links.append(("placement_group", state["placement_group"], "placement"))
    elif kind in ("volume", "floating_ip"):
        if state.get("server"):
            links.append(("server", state["server"], "attached" if kind == "volume" else "assigned"))
    elif kind == "load_balancer":
        if state.get("network"):
            links.append(("network", state["network"], state.get("network_ip") or ""))
        for target in _target_servers(state, obj, ctx):
            links.append(("server", target, "target"))
    return links


def _target_servers(state, obj, ctx):
    """Names of the servers a load balancer sends to (label selectors resolved by the API)."""
    names = []
    if obj:
        for target in obj.get("targets") or []:
            entries = target.get("targets") if target.get("type") == "label_selector" else [target]
            for entry in entries or []:
                if entry.get("type") == "server":
                    name = ctx.name_of("server", (entry.get("server") or {}).get("id"))
                    if name is not None:
                        names.append(name)
    else:
        names = [t["server"] for t in state.get("targets") or [] if t.get("type") == "server"]
    return sorted(set(names), key=str)


def target_health(lb, ctx):
    """[{load_balancer, target, listen_port, status}] from the API's health_status of each target."""
    rows = []
    for target in lb.get("targets") or []:
        entries = target.get("targets") if target.get("type") == "label_selector" else [target]
        for entry in entries or []:
            if entry.get("type") == "server":
                name = ctx.name_of("server", (entry.get("server") or {}).get("id"))
            else:
                name = (entry.get("ip") or {}).get("ip")
            for health in entry.get("health_status") or []:
                rows.append({"load_balancer": lb.get("name"), "target": name, "listen_port": health.get("listen_port"),
                             "status": health.get("status")})
    return rows


def _prometheus_data(answer, endpoint):
    """The ``data`` of one Prometheus HTTP API answer (``{"status": "success", "data": ...}``), or raise ValueError
    saying what was wrong with it."""
    if not isinstance(answer, dict):
        raise ValueError("%s: no JSON object in the answer" % endpoint)
    if answer.get("status") != "success":
        raise ValueError("%s: status %s: %s" % (endpoint, answer.get("status"),
                                                answer.get("error") or answer.get("errorType") or "no error given"))
    if not isinstance(answer.get("data"), dict):
        raise ValueError("%s: the answer has no data" % endpoint)
    return answer["data"]


def prometheus_health(asked):
    """The health of each service as Prometheus sees it, from the answers status.yml fetched on the monitoring
    host (Prometheus listens on a private address only, so the controller cannot ask it itself).

    ``asked``: None (nobody asked) or {host, url, problem, targets, alerts}: ``targets`` the JSON of
    ``/api/v1/targets?state=active``, ``alerts`` that of ``/api/v1/alerts``, ``problem`` why they are missing
    (no monitoring host, the host unreachable, Prometheus not answering).

    Returns {available, host, url, problem, services, alerts, down, firing, healthy}: ``services`` one row per
    scraped target (server = its ``instance`` label, service = its ``job``, up, last_error, last_scrape,
    scrape_url, tier), ``alerts`` the firing and pending alerts (firing first), ``down`` the services that are not
    up ("job/instance"), ``healthy`` every service up. Alerts do not make ``healthy`` false: they include cost and
    capacity warnings (over budget, disk filling up) that are not a service down; the report lists them."""
    asked = asked or {}
    result = {"available": False, "host": asked.get("host"), "url": asked.get("url"),
              "problem": asked.get("problem") or (None if asked else "not asked"),
              "services": [], "alerts": [], "down": [], "firing": 0, "healthy": True}
    if result["problem"]:
        return result
    try:
        targets = _prometheus_data(asked.get("targets"), "/api/v1/targets").get("activeTargets")
        if not isinstance(targets, list):
            raise ValueError("/api/v1/targets: no activeTargets in the answer")
        alerts = _prometheus_data(asked.get("alerts"), "/api/v1/alerts").get("alerts") \
            if asked.get("alerts") is not None else []
        if not isinstance(alerts, list):
            raise ValueError("/api/v1/alerts: no alerts in the answer")
    except ValueError as exc:
        result["problem"] = "Prometheus at %s answered what is not its HTTP API: %s" % (asked.get("url"), exc)
        return result
    services = []
    for target in targets:
        labels = target.get("labels") or {}
        health = target.get("health") or "unknown"
        services.append({"server": labels.get("instance") or target.get("scrapeUrl"), "service": labels.get("job"),
                         "health": health, "up": health == "up", "last_error": target.get("lastError") or "",
                         "last_scrape": target.get("lastScrape"), "scrape_url": target.get("scrapeUrl"),
                         "tier": labels.get("tier")})
    services.sort(key=lambda s: (str(s["server"]), str(s["service"])))
    rows = []
    for alert in alerts:
        labels = alert.get("labels") or {}
        annotations = alert.get("annotations") or {}
        rows.append({"name": labels.get("alertname"), "state": alert.get("state"), "severity": labels.get("severity"),
                     "instance": labels.get("instance") or labels.get("job") or "",
                     "since": alert.get("activeAt"), "summary": annotations.get("summary") or
                     annotations.get("description") or ""})
    rows.sort(key=lambda a: (a["state"] != "firing", str(a["name"]), str(a["instance"])))
    result.update(available=True, services=services, alerts=rows,
                  down=["%s/%s" % (s["service"], s["server"]) for s in services if not s["up"]],
                  firing=sum(1 for a in rows if a["state"] == "firing"))
    result["healthy"] = not result["down"]
    return result


def _row(kind, name, state, obj, ctx, prices, server_location, drift=None, changes=None):
    row = {"type": kind, "name": name, "id": (obj or {}).get("id"),
           "state": _state(kind, obj) if obj else "missing",
           "tier": ((state or {}).get("labels") or {}).get(TIER_KEY) if kind == "server" else None,
           "details": _details(kind, state or {}, obj), "drift": drift, "changes": changes or {},
           "links": [list(link) for link in _links(kind, state or {}, obj, ctx)]}
    try:
        row["monthly"] = _gross(pricing.resource_items(kind, state, prices, server_location))
    except pricing.PricingError:
        row["monthly"] = None
    return row


def stack_status(stack_name, stack_plan, ctx, pricing_object, budget=None, prometheus=None):
    """The status data of stack ``stack_name`` from its check-mode plan (without prune) and the state it was
    planned on. Returns {stack, resources (rows, every kind), drift {missing, changed, undeclared, outside},
    health {servers, targets, prometheus, lock}, cost {now, declared, outside, breakdown, ...}, in_sync, errors}.
    ``prometheus``: Prometheus's answers (see prometheus_health), None when nobody asked it."""
    prices = pricing.Prices(pricing_object)
    entries = {(e["type"], e["name"]): e for e in plan_entries(stack_plan)}
    undeclared = set(stack_plan.undeclared)
    states = {kind: {} for kind in KINDS}
    for kind in KINDS:
        for obj in ctx.all(kind):
            states[kind][obj.get("name")] = planners.NORMALISERS[kind](obj, ctx)

    def server_location(name):
        return (states["server"].get(name) or {}).get("location")

    rows, outside_states = [], []
    for kind in KINDS:
        for obj in ctx.all(kind):
            labels = obj.get("labels") or {}
            state = states[kind][obj.get("name")]
            if owned_by(obj, stack_name):
                entry = entries.get((kind, obj.get("name")))
                drift = "undeclared" if (kind, obj.get("name")) in undeclared else (
                    "changed" if entry is not None and entry["action"] == "update" else None)
                rows.append(_row(kind, obj.get("name"), state, obj, ctx, prices, server_location, drift,
                                 entry["changes"] if drift == "changed" else None))
            elif labels.get(MANAGED_BY_KEY) in (None, ""):
                rows.append(_row(kind, obj.get("name"), state, obj, ctx, prices, server_location, "outside"))
                outside_states.append((kind, state))
            # another stack's resources and stack locks are not this stack's drift
    for plan in stack_plan.plans:
        if plan.operation == "create" and plan.after:
            rows.append(_row(plan.kind, plan.name, plan.after, None, ctx, prices, server_location, "missing"))

    order = {kind: i for i, kind in enumerate(ORDER)}
    rows.sort(key=lambda r: (order[r["type"]], r["drift"] == "outside", str(r["name"])))
    drift = {key: [dict(type=r["type"], name=r["name"], changes=r["changes"]) if key == "changed"
                   else dict(type=r["type"], name=r["name"]) for r in rows if r["drift"] == key]
             for key in DRIFT_TEXT}

    now = [(kind, states[kind][obj.get("name")]) for kind in KINDS for obj in ctx.all(kind) if owned_by(obj, stack_name)]
    cost, problem = None, None
    try:
        current = pricing.stack_cost(prices, [], now, budget)
        planned = plan_cost(stack_plan, ctx, prices, budget)
        outside = pricing.stack_cost(prices, [], outside_states)
        cost = {"source": current["source"], "currency": current["currency"], "vat_rate": current["vat_rate"],
                "monthly": current["monthly"], "hourly": current["hourly"], "breakdown": current["breakdown"],
                "declared": planned["monthly"], "outside": outside["monthly"],
                "budget": current["budget"], "over_budget": current["over_budget"]}
        for line in cost["breakdown"]:
            line.pop("change", None)
    except pricing.PricingError as exc:
        problem = str(exc)

    servers = [{"name": r["name"], "status": r["state"], "healthy": r["state"] in HEALTHY_SERVER, "tier": r["tier"]}
               for r in rows if r["type"] == "server" and r["drift"] != "outside" and r["id"] is not None]
    targets = sorted((t for obj in ctx.all("load_balancer") if owned_by(obj, stack_name) for t in target_health(obj, ctx)),
                     key=lambda t: (str(t["load_balancer"]), str(t["target"]), t["listen_port"] or 0))
    for target in targets:
        target["healthy"] = target["status"] in HEALTHY_TARGET
    lock = next((obj for obj in ctx.all("placement_group") if (obj.get("labels") or {}).get(MANAGED_BY_KEY)
                 == LOCK_MANAGED_BY and (obj.get("labels") or {}).get("stack-lock") == stack_name), None)
    services = prometheus_health(prometheus)
    health = {"servers": servers, "targets": targets, "prometheus": services,
              "healthy": all(s["healthy"] for s in servers) and all(t["healthy"] for t in targets)
              and services["healthy"],
              "run_in_progress": lock is not None}
    return {"stack": stack_name, "resources": rows, "drift": drift, "health": health, "cost": cost,
            "cost_problem": problem, "errors": list(stack_plan.errors),
            "in_sync": not any(drift[key] for key in ("missing", "changed", "undeclared"))}


# --------------------------------------------------------------------------- rendering

def _money(value, currency):
    return pricing.show(value, currency) if value is not None else "?"


def _cell(value):
    return str(value if value is not None else "").replace("|", "\\|").replace("\n", " ")


def _table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines.extend("| " + " | ".join(_cell(c) for c in row) + " |" for row in rows)
    return lines


def _currency(status):
    return (status.get("cost") or {}).get("currency") or "EUR"


def render_tables(status):
    """The status as Markdown text without the diagram: what the playbook prints and the report's body."""
    currency = _currency(status)
    cost = status.get("cost")
    lines = ["# Stack %s" % status["stack"], ""]
    if cost:
        lines.append("Monthly cost now: %s (VAT included; %s net), from %s." % (
            _money(cost["monthly"]["gross"], currency), _money(cost["monthly"]["net"], currency), cost["source"]))
        if cost["declared"]["gross"] != cost["monthly"]["gross"]:
            lines.append("Monthly cost once the declaration is applied: %s." % _money(cost["declared"]["gross"], currency))
        if Decimal(cost["outside"]["gross"]):
            lines.append("Resources outside the stack cost another %s per month." % _money(cost["outside"]["gross"],
                                                                                           currency))
        if cost["budget"] is not None:
            lines.append("Budget: %s per month, %s." % (_money(cost["budget"], currency),
                                                        "EXCEEDED" if cost["over_budget"] else "within"))
    else:
        lines.append("Monthly cost: unknown (%s)." % status.get("cost_problem"))
    services = status["health"].get("prometheus") or {}
    lines.append("Drift: %s. Health: %s." % (
        "none, the project matches the declaration" if status["in_sync"] and not status["drift"]["outside"] else
        ", ".join("%d %s" % (len(status["drift"][k]), k) for k in DRIFT_TEXT if status["drift"][k]),
        ("every server running, every load balancer target healthy"
         + (", every service Prometheus scrapes up" if services.get("available") else ""))
        if status["health"]["healthy"] else "PROBLEMS"))
    if services.get("available"):
        lines.append("Prometheus (%s on %s): %d of %d services up, %d alert%s firing." % (
            services["url"], services["host"], len(services["services"]) - len(services["down"]),
            len(services["services"]), services["firing"], "" if services["firing"] == 1 else "s"))
    else:
        lines.append("Prometheus: no service health (%s)." % (services.get("problem") or "not asked"))
    if status["health"]["run_in_progress"]:
        lines.append("A stack run is in progress (its lock exists): this status may change at any moment.")
    for kind in ORDER:
        rows = [r for r in status["resources"] if r["type"] == kind]
        if not rows:
            continue
        lines += ["", "## %s" % TITLES[kind], ""]
        lines += _table(["name", "id", "state", "details", "per month", "drift"],
                        [[r["name"], r["id"], r["state"], r["details"],
                          _money((r["monthly"] or {}).get("gross"), currency) if r["monthly"] else "?",
                          r["drift"] or ""] for r in rows])
    lines += ["", "## Drift", ""]
    if any(status["drift"].values()):
        rows = []
        for key in DRIFT_TEXT:
            for item in status["drift"][key]:
                what = DRIFT_TEXT[key]
                if item.get("changes"):
                    what += ": " + ", ".join("%s %s -> %s" % (field, _short(c.get("before")),
                                                              _short(c.get("after")))
                                             for field, c in sorted(item["changes"].items()))
                rows.append([key, item["type"], item["name"], what])
        lines += _table(["drift", "type", "name", "what"], rows)
    else:
        lines.append("None: every declared resource exists as declared, nothing else is in the project.")
    if status["errors"]:
        lines += ["", "The declaration cannot be applied as it is:"] + ["- %s" % e for e in status["errors"]]
    lines += ["", "## Health", ""]
    health = status["health"]
    rows = [["server", s["name"], "", s["status"], "ok" if s["healthy"] else "PROBLEM"] for s in health["servers"]]
    rows += [["load balancer target", "%s -> %s" % (t["load_balancer"], t["target"]), t["listen_port"], t["status"],
              "ok" if t["healthy"] else "PROBLEM"] for t in health["targets"]]
    lines += _table(["what", "name", "port", "status", "health"], rows) if rows else ["Nothing to check."]
    lines += render_services(services)
    if cost:
        lines += ["", "## Cost per month", ""]
        lines += _table(["type", "what", "count", "net", "gross"],
                        [[line["type"], line["what"], line["count"], _money(line["monthly"]["net"], currency),
                          _money(line["monthly"]["gross"], currency)] for line in cost["breakdown"]])
        lines.append("| total | | | %s | %s |" % (_money(cost["monthly"]["net"], currency),
                                                  _money(cost["monthly"]["gross"], currency)))
    return "\n".join(lines) + "\n"


def render_services(services):
    """The "Services (Prometheus)" section: one row per server and service Prometheus scrapes, then the alerts; or
    why there is no such table."""
    lines = ["", "## Services (Prometheus)", ""]
    if not services.get("available"):
        return lines + ["No service health from Prometheus: %s." % (services.get("problem") or "not asked")]
    lines.append("Asked on %s: %s (active targets and alerts)." % (services["host"], services["url"]))
    lines.append("")
    rows = [[s["server"], s["service"], s["health"] if s["up"] else "%s: PROBLEM" % s["health"], s["last_scrape"] or "",
             _short(s["last_error"], 160) if s["last_error"] else ""] for s in services["services"]]
    lines += _table(["server", "service", "health", "last scrape", "last error"], rows) if rows else \
        ["Prometheus scrapes nothing (no active target)."]
    lines += ["", "### Alerts", ""]
    if services["alerts"]:
        lines += _table(["alert", "state", "severity", "instance", "since", "summary"],
                        [[a["name"], a["state"], a["severity"] or "", a["instance"], a["since"] or "", _short(a["summary"], 120)]
                         for a in services["alerts"]])
    else:
        lines.append("None firing or pending.")
    return lines


def _short(value, limit=60):
    text = str(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _node_ids(rows):
    """{(type, name): id} safe in Mermaid and DOT; readable (server__web_1), unique (web-1 and web_1 differ)."""
    ids, taken = {}, set()
    for row in rows:
        base = re.sub(r"[^A-Za-z0-9_]", "_", "%s__%s" % (row["type"], row["name"]))
        ident, n = base, 1
        while ident in taken:
            n += 1
            ident = "%s_%d" % (base, n)
        taken.add(ident)
        ids[(row["type"], row["name"])] = ident
    return ids


def _label(row):
    return "%s %s" % (row["type"].replace("_", " "), row["name"])


def _diagram_rows(status):
    return [r for r in status["resources"] if r["type"] != "ssh_key"] + \
        [r for r in status["resources"] if r["type"] == "ssh_key"]


def _tiers(rows):
    tiers = {}
    for row in rows:
        if row["type"] == "server" and row.get("tier") and row["drift"] != "outside":
            tiers.setdefault(row["tier"], []).append(row)
    return tiers


def _edges(rows):
    present = {(r["type"], r["name"]) for r in rows}
    return [(row, kind, name, label) for row in rows for kind, name, label in row["links"] if (kind, name) in present]


def render_mermaid(status):
    """A Mermaid flowchart of every resource (tiers as subgraphs; missing dashed, drift coloured)."""
    rows = _diagram_rows(status)
    tiers = _tiers(rows)
    in_tier = {id(r) for members in tiers.values() for r in members}
    ids = _node_ids(rows)
    lines = ["flowchart LR"]

    def node(row):
        text = "%s<br/>%s" % (_label(row), row["details"]) if row["details"] else _label(row)
        if row["drift"]:
            text += "<br/>(%s)" % row["drift"]
        return '%s["%s"]' % (ids[(row["type"], row["name"])], text.replace('"', "'"))

    for tier in sorted(tiers):
        lines.append('  subgraph tier_%s["tier %s"]' % (re.sub(r"\W", "_", tier), tier))
        lines.extend("    " + node(r) for r in tiers[tier])
        lines.append("  end")
    lines.extend("  " + node(r) for r in rows if id(r) not in in_tier)
    for row, kind, name, label in _edges(rows):
        arrow = " -->|%s| " % label if label else " --> "
        lines.append("  %s%s%s" % (ids[(row["type"], row["name"])], arrow, ids[(kind, name)]))
    lines += ["  classDef missing stroke-dasharray: 5 5,stroke:#d33", "  classDef changed stroke:#e90,stroke-width:2px",
              "  classDef undeclared stroke:#e90,stroke-dasharray: 3 3", "  classDef outside fill:#eee,stroke:#999"]
    for key in DRIFT_TEXT:
        marked = [ids[(r["type"], r["name"])] for r in rows if r["drift"] == key]
        if marked:
            lines.append("  class %s %s" % (",".join(marked), key))
    return "\n".join(lines) + "\n"


def _dot_quote(text):
    return '"%s"' % str(text).replace("\\", "\\\\").replace('"', '\\"')


DOT_STYLE = {
    "missing": 'style="dashed", color="red"', "changed": 'color="orange", penwidth=2',
    "undeclared": 'style="dashed", color="orange"', "outside": 'style="filled", fillcolor="gray90", color="gray50"',
}
DOT_SHAPE = {"server": "box", "network": "ellipse", "volume": "cylinder", "load_balancer": "diamond",
             "firewall": "octagon", "floating_ip": "circle", "placement_group": "folder", "ssh_key": "note"}


def render_dot(status):
    """The same diagram as Graphviz DOT (``dot -Tsvg`` renders it)."""
    rows = _diagram_rows(status)
    tiers = _tiers(rows)
    in_tier = {id(r) for members in tiers.values() for r in members}
    ids = _node_ids(rows)
    lines = ["digraph %s {" % _dot_quote("stack " + status["stack"]), "  rankdir=LR;",
             '  node [fontname="Helvetica", fontsize=10];', '  edge [fontname="Helvetica", fontsize=9];',
             "  label=%s; labelloc=t;" % _dot_quote("stack %s" % status["stack"])]

    def node(row):
        text = "\\n".join(x for x in (_label(row), row["details"], "(%s)" % row["drift"] if row["drift"] else "") if x)
        attrs = "label=%s, shape=%s" % (_dot_quote(text).replace("\\\\n", "\\n"), DOT_SHAPE.get(row["type"], "box"))
        if row["drift"]:
            attrs += ", " + DOT_STYLE[row["drift"]]
        return "%s [%s];" % (_dot_quote(ids[(row["type"], row["name"])]), attrs)

    for tier in sorted(tiers):
        lines.append("  subgraph %s {" % _dot_quote("cluster_tier_" + tier))
        lines.append("    label=%s;" % _dot_quote("tier " + tier))
        lines.extend("    " + node(r) for r in tiers[tier])
        lines.append("  }")
    lines.extend("  " + node(r) for r in rows if id(r) not in in_tier)
    for row, kind, name, label in _edges(rows):
        source, target = ids[(row["type"], row["name"])], ids[(kind, name)]
        lines.append("  %s -> %s [label=%s];" % (_dot_quote(source), _dot_quote(target), _dot_quote(label)))
    lines.append("}")
    return "\n".join(lines) + "\n"


def render_markdown(status, svg=None):
    """The report file: the tables, then the diagram (Mermaid; ``svg`` names the Graphviz rendering beside it)."""
    text = render_tables(status)
    text += "\n## Diagram\n\n```mermaid\n%s```\n" % render_mermaid(status)
    if svg:
        text += "\nRendered with Graphviz: [%s](%s) (source: the .dot file beside it).\n" % (svg, svg)
    return text
