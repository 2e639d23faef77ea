# Copyright (c) 2026, autoscale.hetzner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""module_utils/pricing.py: costs from a /pricing object, exactly, with clear errors for missing prices."""

from __future__ import annotations

from decimal import Decimal

import pytest

from ansible_collections.autoscale.hetzner.plugins.module_utils.pricing import (
    Prices,
    PricingError,
    amount,
    render_cost,
    stack_cost,
    topology,
)


def price(net, gross):
    return {"net": net, "gross": gross}


PRICING = {"pricing": {
    "currency": "EUR", "vat_rate": "19.00",
    "volume": {"price_per_gb_month": price("0.0440000000", "0.0523600000000000")},
    "server_backup": {"percentage": "20.00"},
    "server_types": [{"name": "cx23", "prices": [
        {"location": "nbg1", "price_hourly": price("0.0060", "0.00714"), "price_monthly": price("3.4900", "4.1531")}]}],
    "load_balancer_types": [{"name": "lb11", "prices": [
        {"location": "nbg1", "price_hourly": price("0.0090", "0.01071"), "price_monthly": price("5.3900", "6.4141")}]}],
    "primary_ips": [
        {"type": "ipv4", "prices": [{"location": "nbg1", "price_hourly": price("0.0008", "0.000952"),
                                     "price_monthly": price("0.5000", "0.5950")}]},
        {"type": "ipv6", "prices": [{"location": "nbg1", "price_hourly": price("0", "0"),
                                     "price_monthly": price("0", "0")}]}],
    "floating_ips": [{"type": "ipv4", "prices": [{"location": "nbg1", "price_monthly": price("3.00", "3.57")}]}],
}}

SERVER = {"name": "web-1", "server_type": "cx23", "location": "nbg1", "backups": False, "enable_ipv4": True,
          "enable_ipv6": True}


def test_amounts_keep_every_digit_and_two_decimals_at_least():
    assert amount(Decimal("12.4")) == "12.40"
    assert amount(Decimal("0.0523600000")) == "0.05236"
    assert amount(Decimal("7")) == "7.00"


def test_servers_with_backups_ips_volumes_lbs_and_floating_ips_add_up_exactly():
    prices = Prices(PRICING)
    after = [("server", dict(SERVER, backups=True)),
             ("volume", {"name": "data", "size": 50, "server": "web-1", "location": None}),
             ("load_balancer", {"name": "lb", "load_balancer_type": "lb11", "location": "nbg1"}),
             ("floating_ip", {"name": "vip", "type": "ipv4", "home_location": None, "server": "web-1"}),
             ("firewall", {"name": "fw"})]
    cost = stack_cost(prices, [], after)
    monthly = Decimal("4.1531") * Decimal("1.2") + Decimal("0.5950") + 50 * Decimal("0.05236") + \
        Decimal("6.4141") + Decimal("3.57")
    assert Decimal(cost["monthly"]["gross"]) == monthly
    assert Decimal(cost["hourly"]["gross"]) == Decimal("0.00714") * Decimal("1.2") + Decimal("0.000952") + \
        Decimal("0.01071")
    lines = {(line["type"], line["what"]): line for line in cost["breakdown"]}
    assert lines[("backup", "20.00% of cx23 in nbg1")]["monthly"]["net"] == "0.698"
    assert lines[("volume", "GB in nbg1")]["count"] == 50 and lines[("volume", "GB in nbg1")]["hourly"] is None
    assert lines[("floating_ip", "ipv4 in nbg1")]["monthly"]["gross"] == "3.57"
    assert cost["change"] == {"monthly": cost["monthly"], "hourly": cost["hourly"]}


def test_the_change_counts_what_goes_and_the_budget_compares_the_gross_monthly_cost():
    prices = Prices(PRICING)
    before = [("server", SERVER), ("server", dict(SERVER, name="web-2"))]
    cost = stack_cost(prices, before, [("server", SERVER)], budget=4)
    assert Decimal(cost["change"]["monthly"]["gross"]) == -(Decimal("4.1531") + Decimal("0.5950"))
    servers = next(line for line in cost["breakdown"] if line["type"] == "server")
    assert servers["count"] == 1 and servers["change"]["count"] == -1
    assert cost["over_budget"] is True and cost["budget"] == "4.00"
    text = render_cost(cost)
    assert "change: -\u20ac4.75/month" in text and "EXCEEDED by \u20ac0.75" in text
    assert stack_cost(prices, before, [("server", SERVER)], budget=5)["over_budget"] is False


@pytest.mark.parametrize("state, message", [
    (dict(SERVER, server_type="cx99"), "/pricing has no price for server type cx99 (known: cx23)"),
    (dict(SERVER, location="ash"), "/pricing has no price for server type cx23 in ash"),
    (dict(SERVER, location=None), "the location of server type cx23 is not known"),
])
def test_a_missing_price_is_an_error_naming_it(state, message):
    with pytest.raises(PricingError, match=message.replace("(", r"\(").replace(")", r"\)")):
        stack_cost(Prices(PRICING), [], [("server", state)])


def test_something_else_than_pricing_is_refused():
    with pytest.raises(PricingError, match="expected the 'pricing' object"):
        Prices({"servers": []})


def test_a_topology_of_plain_dicts_or_inventory_hosts_costs_the_same_as_normalised_states():
    """What a filter or a status report without a stack plan uses (issue-14's monthly_cost can switch to it)."""
    prices = Prices(PRICING)
    plain = topology(servers=[{"name": "web-1", "server_type": "cx23"},
                              {"hcloud_server_type": "cx23", "hcloud_location": "nbg1", "hcloud_ipv4": "198.18.0.5",
                               "inventory_hostname": "web-2"}],
                     volumes=[{"name": "data", "size": 10, "server": "web-1"}],
                     load_balancers=[{"name": "lb", "load_balancer_type": "lb11"}], location="nbg1")
    states = [("server", SERVER), ("server", dict(SERVER, name="web-2")),
              ("volume", {"name": "data", "size": 10, "server": "web-1", "location": None}),
              ("load_balancer", {"name": "lb", "load_balancer_type": "lb11", "location": "nbg1"})]
    assert stack_cost(prices, [], plain) == stack_cost(prices, [], states)
