# Copyright: (c) 2026, autoscale.hetzner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The monthly cost of a stack from the API's prices (GET /pricing), never from a price table.

The prices and the sums are module_utils/pricing.py's, the same code that prices the stack module's
plan, so the verification summary and the plan cannot disagree. Documentation: monthly_cost.yml.
"""

from __future__ import annotations

from decimal import Decimal

from ansible.errors import AnsibleFilterError

from ansible_collections.autoscale.hetzner.plugins.module_utils.pricing import (
    Prices, PricingError, stack_cost, topology)


def monthly_cost(pricing, servers=None, volumes=None, load_balancers=None, floating_ips=None, location=None):
    """{currency, vat_rate, net, gross, items: [{what, count, net, gross}]} per month for servers (the
    declaration's keys, or an inventory host's hcloud_server_type, hcloud_location, hcloud_ipv4...),
    volumes ({size}), load balancers ({load_balancer_type, location}) and floating IPs."""
    if not isinstance(pricing, dict) or "server_types" not in pricing:
        raise AnsibleFilterError("monthly_cost: the input must be the 'pricing' object of GET /pricing")
    try:
        cost = stack_cost(Prices(pricing), [], topology(servers=servers, volumes=volumes,
                                                        load_balancers=load_balancers,
                                                        floating_ips=floating_ips, location=location))
    except PricingError as exc:
        raise AnsibleFilterError("monthly_cost: %s" % exc) from None

    def cents(value):
        return "%.2f" % Decimal(value).quantize(Decimal("0.01"))
    items = [{"what": line["what"] if line["type"] in ("server", "load_balancer") else
              "%s %s" % (line["type"].replace("_", " "), line["what"]),
              "type": line["type"], "count": line["count"],
              "net": cents(line["monthly"]["net"]), "gross": cents(line["monthly"]["gross"])}
             for line in cost["breakdown"] if line["count"] and Decimal(line["monthly"]["gross"])]
    return {"currency": cost["currency"], "vat_rate": cost["vat_rate"], "net": cents(cost["monthly"]["net"]),
            "gross": cents(cost["monthly"]["gross"]), "items": items}


class FilterModule:
    def filters(self):
        return {"monthly_cost": monthly_cost}
