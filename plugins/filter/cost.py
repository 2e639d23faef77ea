# Copyright: (c) 2026, autoscale.hetzner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The monthly cost of a stack from the API's prices (GET /pricing), never from a price table.

Documentation: monthly_cost.yml next to this file.
"""

from __future__ import annotations

from decimal import Decimal

from ansible.errors import AnsibleFilterError


def _monthly(prices, location, what):
    """(net, gross) per month of one resource type in one location."""
    entry = next((p for p in prices or [] if p.get("location") == location), None)
    if entry is None:
        raise AnsibleFilterError("monthly_cost: the API's /pricing has no price for %s in %s" % (what, location))
    return Decimal(entry["price_monthly"]["net"]), Decimal(entry["price_monthly"]["gross"])


def monthly_cost(pricing, servers=None, volumes=None, load_balancers=None, location=None):
    """{currency, net, gross, items: [{what, count, net, gross}]} for servers ({server_type, location,
    ipv4}, or an inventory host's hcloud_server_type, hcloud_location, hcloud_ipv4), volumes ({size}) and
    load balancers ({load_balancer_type, location}; without one, location)."""
    if not isinstance(pricing, dict) or "server_types" not in pricing:
        raise AnsibleFilterError("monthly_cost: the input must be the 'pricing' object of GET /pricing")
    items = {}

    def add(what, net, gross, count=1):
        item = items.setdefault(what, {"what": what, "count": 0, "net": Decimal(0), "gross": Decimal(0)})
        item["count"] += count
        item["net"] += net
        item["gross"] += gross

    types = {t["name"]: t["prices"] for t in pricing.get("server_types", [])}
    ipv4 = next((p["prices"] for p in pricing.get("primary_ips", []) if p.get("type") == "ipv4"), [])
    for server in servers or []:
        name = server.get("server_type") or server.get("hcloud_server_type")
        where = server.get("location") or server.get("hcloud_location") or location
        if name not in types:
            raise AnsibleFilterError("monthly_cost: server type %s is not in the API's /pricing" % (name,))
        add("server %s" % name, *_monthly(types[name], where, "server type " + name))
        if server.get("ipv4") or server.get("hcloud_ipv4"):
            add("primary IPv4", *_monthly(ipv4, where, "a primary IPv4"))
    per_gb = pricing.get("volume", {}).get("price_per_gb_month", {})
    for volume in volumes or []:
        size = Decimal(int(volume.get("size", 0)))
        add("volume GB", size * Decimal(per_gb.get("net", 0)), size * Decimal(per_gb.get("gross", 0)), int(size))
    lb_types = {t["name"]: t["prices"] for t in pricing.get("load_balancer_types", [])}
    for lb in load_balancers or []:
        name = lb.get("load_balancer_type")
        if name not in lb_types:
            raise AnsibleFilterError("monthly_cost: load balancer type %s is not in the API's /pricing" % (name,))
        add("load balancer %s" % name, *_monthly(lb_types[name], lb.get("location") or location, "load balancer type " + name))

    def money(value):
        return "%.2f" % value.quantize(Decimal("0.01"))
    lines = [dict(item, net=money(item["net"]), gross=money(item["gross"])) for item in items.values()]
    return {
        "currency": pricing.get("currency", ""),
        "vat_rate": pricing.get("vat_rate", ""),
        "net": money(sum((i["net"] for i in items.values()), Decimal(0))),
        "gross": money(sum((i["gross"] for i in items.values()), Decimal(0))),
        "items": lines,
    }


class FilterModule:
    def filters(self):
        return {"monthly_cost": monthly_cost}
