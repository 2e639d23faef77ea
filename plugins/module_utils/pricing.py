# Copyright: (c) 2026, autoscale.hetzner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""What a topology costs, from the API's own prices (``GET /pricing``), never from a table of ours.

The one place that knows the shape of ``/pricing`` (see ../shared/reference/hcloud-api.md §3.5): the stack
module's plan and budget guard use it, and so can a filter or a status report (hand it plain dicts).

* ``Prices``         the ``pricing`` object of ``GET /pricing``, looked up per resource type and location;
                     a type or location without a price is a ``PricingError`` naming it.
* ``resource_items`` the billed items of one resource in the planners' normalised form (a server is its
                     type, plus backups as a surcharge of ``server_backup.percentage`` on the server price,
                     plus its primary IPv4/IPv6; a volume is its GB; a load balancer its type; a floating IP
                     its type in its home location).
* ``Bill``           items added up per resource type, type and location, with monthly and hourly totals
                     (net and gross) as exact decimal strings.
* ``stack_cost``     the cost before and after a stack plan, and the change.
* ``topology``       plain dicts (declaration keys or an inventory host's ``hcloud_*`` variables) -> the
                     [(kind, state)] the functions above take, for a filter or report without a plan.

Amounts are ``Decimal``; returned as strings with every digit the API gave (``"17.8500"``), so that a test
or a report can add the API's prices itself and compare exactly. Volumes and floating IPs have monthly
prices only in ``/pricing`` (``hourly`` is null for them and they are left out of the hourly total).
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

ZERO = Decimal(0)
# Resource types of a bill, in the order they are shown.
CATEGORIES = ("server", "backup", "primary_ipv4", "primary_ipv6", "volume", "load_balancer", "floating_ip")
CATEGORY_TITLES = {
    "server": "servers", "backup": "backups", "primary_ipv4": "primary IPv4s", "primary_ipv6": "primary IPv6s",
    "volume": "volumes", "load_balancer": "load balancers", "floating_ip": "floating IPs",
}
MONTHLY_ONLY = ("volume", "floating_ip")
CURRENCY_SYMBOLS = {"EUR": "\u20ac", "USD": "$"}


class PricingError(ValueError):
    """A price the topology needs is not in /pricing (or /pricing is not what the API returns)."""


def _decimal(value, where):
    try:
        return Decimal(str(value))
    except (InvalidOperation, TypeError, ValueError):
        raise PricingError("/pricing: %s is not a decimal amount: %r" % (where, value)) from None


def money(price, where):
    """{"net", "gross"} of the API -> (net, gross) Decimals."""
    if not isinstance(price, dict) or "net" not in price or "gross" not in price:
        raise PricingError("/pricing: %s has no net and gross amounts" % where)
    return _decimal(price["net"], where + ".net"), _decimal(price["gross"], where + ".gross")


def amount(value):
    """An exact decimal string with at least two decimals (``Decimal('12.4')`` -> ``"12.40"``)."""
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0")
    whole, _dot, fraction = text.partition(".")
    return "%s.%s" % (whole, fraction.ljust(2, "0"))


def pair(net, gross):
    return {"net": amount(net), "gross": amount(gross)}


class Prices:
    """The ``pricing`` object of ``GET /pricing``."""

    def __init__(self, pricing):
        if isinstance(pricing, dict) and "pricing" in pricing and "server_types" not in pricing:
            pricing = pricing["pricing"]
        if not isinstance(pricing, dict) or "server_types" not in pricing:
            raise PricingError("/pricing: expected the 'pricing' object of GET /pricing (with server_types)")
        self.raw = pricing
        self.currency = str(pricing.get("currency") or "")
        self.vat_rate = str(pricing.get("vat_rate") or "")
        self._types = {
            "server": {t.get("name"): t.get("prices") or [] for t in pricing.get("server_types") or []},
            "load_balancer": {t.get("name"): t.get("prices") or [] for t in pricing.get("load_balancer_types") or []},
            "primary_ip": {t.get("type"): t.get("prices") or [] for t in pricing.get("primary_ips") or []},
            "floating_ip": {t.get("type"): t.get("prices") or [] for t in pricing.get("floating_ips") or []},
        }

    def _located(self, kind, name, location, what):
        if name not in self._types[kind]:
            raise PricingError("/pricing has no price for %s %s (known: %s)" % (
                what, name, ", ".join(sorted(str(n) for n in self._types[kind])) or "none"))
        if not location:
            raise PricingError("the location of %s %s is not known, so its price is not either; give a location"
                               % (what, name))
        entry = next((p for p in self._types[kind][name] if p.get("location") == location), None)
        if entry is None:
            raise PricingError("/pricing has no price for %s %s in %s" % (what, name, location))
        where = "%s %s in %s" % (what, name, location)
        monthly = money(entry.get("price_monthly"), where + " price_monthly")
        hourly = money(entry["price_hourly"], where + " price_hourly") if "price_hourly" in entry else None
        return monthly, hourly

    def server(self, server_type, location):
        return self._located("server", server_type, location, "server type")

    def load_balancer(self, lb_type, location):
        return self._located("load_balancer", lb_type, location, "load balancer type")

    def primary_ip(self, ip_type, location):
        return self._located("primary_ip", ip_type, location, "primary IP type")

    def floating_ip(self, ip_type, location):
        monthly, _hourly = self._located("floating_ip", ip_type, location, "floating IP type")
        return monthly, None

    def volume_per_gb(self):
        return money((self.raw.get("volume") or {}).get("price_per_gb_month"), "volume.price_per_gb_month")

    def backup_percentage(self):
        backup = self.raw.get("server_backup") or {}
        if "percentage" not in backup:
            raise PricingError("/pricing has no server_backup.percentage")
        return _decimal(backup["percentage"], "server_backup.percentage")


def _item(category, what, count, monthly, hourly):
    return {"type": category, "what": what, "count": count, "monthly": monthly, "hourly": hourly}


def resource_items(kind, state, prices, server_location=None):
    """The billed items of one resource, given in the planners' normalised form (``normalise_server``...).

    Each item: type (a CATEGORIES entry), what (type and location), count (servers, GB, ...), monthly and
    hourly ((net, gross) for the whole count; hourly None when /pricing has a monthly price only).
    ``server_location(name)`` gives the location of a server by name (volumes and floating IPs without a
    location of their own are where their server is)."""
    if not state:
        return []
    locate = server_location or (lambda name: None)
    if kind == "server":
        server_type, location = state.get("server_type"), state.get("location")
        monthly, hourly = prices.server(server_type, location)
        what = "%s in %s" % (server_type, location)
        items = [_item("server", what, 1, monthly, hourly)]
        if state.get("backups"):
            share = prices.backup_percentage() / Decimal(100)
            items.append(_item("backup", "%s%% of %s" % (amount(prices.backup_percentage()), what), 1,
                               tuple(x * share for x in monthly), tuple(x * share for x in hourly) if hourly else None))
        for family in ("ipv4", "ipv6"):
            if state.get("enable_" + family, True):
                monthly, hourly = prices.primary_ip(family, location)
                items.append(_item("primary_" + family, location, 1, monthly, hourly))
        return items
    if kind == "volume":
        size = int(state.get("size") or 0)
        location = state.get("location") or (locate(state["server"]) if state.get("server") else None)
        per_gb = prices.volume_per_gb()
        return [_item("volume", "GB in %s" % location if location else "GB", size,
                      tuple(x * size for x in per_gb), None)]
    if kind == "load_balancer":
        monthly, hourly = prices.load_balancer(state.get("load_balancer_type"), state.get("location"))
        return [_item("load_balancer", "%s in %s" % (state.get("load_balancer_type"), state.get("location")), 1,
                      monthly, hourly)]
    if kind == "floating_ip":
        ip_type = state.get("type") or "ipv4"
        location = state.get("home_location") or (locate(state["server"]) if state.get("server") else None)
        monthly, hourly = prices.floating_ip(ip_type, location)
        return [_item("floating_ip", "%s in %s" % (ip_type, location), 1, monthly, hourly)]
    return []  # SSH keys, networks, firewalls and placement groups cost nothing


class Bill:
    """Items added up per (resource type, what)."""

    def __init__(self):
        self.lines = {}

    def add(self, items, sign=1):
        for item in items:
            key = (item["type"], item["what"])
            line = self.lines.setdefault(key, {"type": item["type"], "what": item["what"], "count": 0,
                                               "monthly": [ZERO, ZERO], "hourly": [ZERO, ZERO]})
            line["count"] += sign * item["count"]
            for period in ("monthly", "hourly"):
                if item[period] is not None:
                    line[period][0] += sign * item[period][0]
                    line[period][1] += sign * item[period][1]

    def total(self, period):
        net = sum((line[period][0] for line in self.lines.values()), ZERO)
        gross = sum((line[period][1] for line in self.lines.values()), ZERO)
        return net, gross

    def breakdown(self):
        order = {c: i for i, c in enumerate(CATEGORIES)}
        result = []
        for key in sorted(self.lines, key=lambda k: (order.get(k[0], 99), k[1])):
            line = self.lines[key]
            if not line["count"] and not any(line["monthly"]):
                continue
            result.append({"type": line["type"], "what": line["what"], "count": line["count"],
                           "monthly": pair(*line["monthly"]),
                           "hourly": None if line["type"] in MONTHLY_ONLY else pair(*line["hourly"])})
        return result


def bill_of(resources, prices, server_location=None):
    """A Bill of [(kind, normalised state)]; raises PricingError for the first missing price."""
    bill = Bill()
    for kind, state in resources:
        bill.add(resource_items(kind, state, prices, server_location))
    return bill


def topology(servers=(), volumes=(), load_balancers=(), floating_ips=(), location=None):
    """[(kind, state)] for ``stack_cost``/``bill_of`` from plain dicts: the declaration's keys (``server_type``,
    ``location``, ``backups``, ``enable_ipv4``...) or an inventory host's (``hcloud_server_type``,
    ``hcloud_location``, ``hcloud_ipv4``...). ``location`` is the default (the stack's). For a filter or report
    that has no stack plan: ``stack_cost(Prices(pricing), [], topology(servers=...))``."""
    def first(item, *keys):
        return next((item[k] for k in keys if item.get(k) is not None), None)

    def has_primary(server, family):
        # an address key that is present says it all (an inventory host without a public IPv4 has
        # hcloud_ipv4: None); enable_* is the declaration's switch, on unless set to false
        for key in (family, "hcloud_" + family):
            if key in server:
                return bool(server[key])
        return server.get("enable_" + family) is not False

    result = []
    for server in servers or []:
        ipv4 = has_primary(server, "ipv4")
        ipv6 = has_primary(server, "ipv6")
        result.append(("server", {
            "name": first(server, "name", "inventory_hostname", "hcloud_name"),
            "server_type": first(server, "server_type", "hcloud_server_type"),
            "location": first(server, "location", "hcloud_location") or location,
            "backups": bool(first(server, "backups", "hcloud_backups")),
            "enable_ipv4": ipv4,
            "enable_ipv6": ipv6}))
    for volume in volumes or []:
        result.append(("volume", {"name": volume.get("name"), "size": volume.get("size"), "server": volume.get("server"),
                                  "location": volume.get("location") or (None if volume.get("server") else location)}))
    for lb in load_balancers or []:
        result.append(("load_balancer", {"name": lb.get("name"), "load_balancer_type": lb.get("load_balancer_type"),
                                         "location": lb.get("location") or location}))
    for fip in floating_ips or []:
        result.append(("floating_ip", {"name": fip.get("name"), "type": fip.get("type") or "ipv4",
                                       "server": fip.get("server"),
                                       "home_location": fip.get("home_location") or (None if fip.get("server")
                                                                                     else location)}))
    return result


def stack_cost(prices, before, after, budget=None):
    """The cost of a stack now (``before``) and after a plan (``after``), both [(kind, normalised state)].

    Returns {currency, vat_rate, monthly, hourly (after the plan), current {monthly, hourly}, change {monthly,
    hourly}, breakdown (after the plan; each line also with its change), budget, over_budget}."""
    def located(states):
        where = {s.get("name"): s.get("location") for kind, s in states if kind == "server" and s}
        return where.get

    now = bill_of(before, prices, located(before))
    then = bill_of(after, prices, located(after))
    change = Bill()
    change.add([dict(line, monthly=tuple(line["monthly"]), hourly=tuple(line["hourly"]))
                for line in then.lines.values()])
    change.add([dict(line, monthly=tuple(line["monthly"]), hourly=tuple(line["hourly"]))
                for line in now.lines.values()], sign=-1)
    changes = {(line["type"], line["what"]): line for line in change.breakdown()}
    breakdown = []
    for line in then.breakdown():
        moved = changes.pop((line["type"], line["what"]), None)
        breakdown.append(dict(line, change=_line_change(moved)))
    for line in changes.values():   # what goes away entirely
        breakdown.append(dict(line, count=0, monthly=pair(ZERO, ZERO),
                              hourly=None if line["type"] in MONTHLY_ONLY else pair(ZERO, ZERO),
                              change=_line_change(line)))
    monthly = then.total("monthly")
    result = {
        "source": "GET /pricing", "currency": prices.currency, "vat_rate": prices.vat_rate,
        "monthly": pair(*monthly), "hourly": pair(*then.total("hourly")),
        "current": {"monthly": pair(*now.total("monthly")), "hourly": pair(*now.total("hourly"))},
        "change": {"monthly": pair(*change.total("monthly")), "hourly": pair(*change.total("hourly"))},
        "breakdown": breakdown,
        "budget": None, "over_budget": False,
    }
    if budget is not None:
        result["budget"] = amount(Decimal(str(budget)))
        result["over_budget"] = monthly[1] > Decimal(str(budget))
    return result


def _line_change(line):
    if line is None:
        return None
    return {"count": line["count"], "monthly": line["monthly"]}


def _sym(currency):
    return CURRENCY_SYMBOLS.get(currency, (currency + " ") if currency else "")


def show(value, currency, places=2, signed=False):
    """``Decimal``/string -> ``€12.40`` (``+€12.40`` with signed)."""
    number = Decimal(str(value))
    quantum = Decimal(1).scaleb(-places)
    text = "%s%s" % (_sym(currency), format(abs(number).quantize(quantum), "f"))
    if number < 0:
        return "-" + text
    return ("+" + text) if signed else text


def render_cost(cost):
    """The cost section of the plan text (gross amounts, i.e. what the invoice shows, net in brackets)."""
    currency = cost["currency"]
    lines = ["Cost (prices from GET /pricing, %s, gross incl. %s%% VAT):" % (currency, cost["vat_rate"])]
    for line in cost["breakdown"]:
        unit = "GB" if line["type"] == "volume" else "\u00d7"
        count = ("%d GB" % line["count"]) if unit == "GB" else ("%d \u00d7" % line["count"])
        change = ""
        if line.get("change") and Decimal(line["change"]["monthly"]["gross"]):
            change = "  (%s/month)" % show(line["change"]["monthly"]["gross"], currency, signed=True)
        hourly = "" if line["hourly"] is None else "  %s/hour" % show(line["hourly"]["gross"], currency, 4)
        lines.append("  %-14s %-32s %-8s %s/month%s%s" % (
            CATEGORY_TITLES.get(line["type"], line["type"]), line["what"], count,
            show(line["monthly"]["gross"], currency), hourly, change))
    lines.append("  total: %s/month (net %s), %s/hour%s" % (
        show(cost["monthly"]["gross"], currency), show(cost["monthly"]["net"], currency),
        show(cost["hourly"]["gross"], currency, 4),
        " (volumes and floating IPs are priced per month only)" if any(
            line["type"] in MONTHLY_ONLY and line["count"] for line in cost["breakdown"]) else ""))
    lines.append("  change: %s/month, %s/hour (now %s/month)" % (
        show(cost["change"]["monthly"]["gross"], currency, signed=True),
        show(cost["change"]["hourly"]["gross"], currency, 4, signed=True),
        show(cost["current"]["monthly"]["gross"], currency)))
    if cost.get("budget") is not None:
        left = Decimal(cost["budget"]) - Decimal(cost["monthly"]["gross"])
        lines.append("  budget: %s/month, %s" % (
            show(cost["budget"], currency),
            ("EXCEEDED by %s" % show(-left, currency)) if cost["over_budget"] else ("%s left" % show(left, currency))))
    return "\n".join(lines)
