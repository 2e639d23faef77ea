# Copyright (c) 2026, autoscale.hetzner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The stack plan's cost comes from the local cloud's GET /pricing, and a budget stops a plan before
any write.

The expected amounts are added up here from the raw /pricing answer and the scenario's declaration,
without the collection's code, so a wrong lookup (location, type, backups, primary IPs) shows."""

from __future__ import annotations

import copy
from decimal import Decimal

import pytest
import requests

from test_stack import (
    admin_url,
    new_project,
    project_inventory,
    run_provision,
    scenario,
    server_stats,
)

SCENARIOS = ["minimal", "production"]


def get_pricing(localcloud, token):
    answer = requests.get(localcloud["endpoint"] + "/pricing", headers={"Authorization": "Bearer " + token},
                          timeout=10)
    answer.raise_for_status()
    return answer.json()["pricing"]


def _located(prices, location, period="price_monthly"):
    entry = next(p for p in prices if p["location"] == location)
    return Decimal(entry[period]["gross"]), Decimal(entry[period]["net"])


def expected_cost(pricing, stack, period="price_monthly"):
    """(gross, net) per month (or hour) of a declaration, straight from /pricing."""
    gross, net = Decimal(0), Decimal(0)

    def add(amounts, factor=Decimal(1)):
        nonlocal gross, net
        gross += amounts[0] * factor
        net += amounts[1] * factor

    server_types = {t["name"]: t["prices"] for t in pricing["server_types"]}
    primary = {t["type"]: t["prices"] for t in pricing["primary_ips"]}
    where = {}
    for tier in stack.get("tiers") or []:
        for server in tier["servers"]:
            setting = {**{k: v for k, v in tier.items() if k != "servers"}, **server}
            location = setting.get("location") or stack["location"]
            where[server["name"]] = location
            price = _located(server_types[setting["server_type"]], location, period)
            add(price)
            if setting.get("backups"):
                add(price, Decimal(pricing["server_backup"]["percentage"]) / 100)
            for family in ("ipv4", "ipv6"):
                if setting.get("enable_" + family, True):
                    add(_located(primary[family], location, period))
    if period == "price_monthly":
        per_gb = pricing["volume"]["price_per_gb_month"]
        for volume in stack.get("volumes") or []:
            add((Decimal(per_gb["gross"]), Decimal(per_gb["net"])), Decimal(volume["size"]))
        floating = {t["type"]: t["prices"] for t in pricing["floating_ips"]}
        for fip in stack.get("floating_ips") or []:
            location = fip.get("home_location") or where.get(fip.get("server")) or stack["location"]
            add(_located(floating[fip.get("type", "ipv4")], location, period))
    lb_types = {t["name"]: t["prices"] for t in pricing["load_balancer_types"]}
    for lb in stack.get("load_balancers") or []:
        add(_located(lb_types[lb["load_balancer_type"]], lb.get("location") or stack["location"], period))
    return gross, net


def plan_of(run_playbook, token, stack, **kwargs):
    result, data = run_provision(run_playbook, token, stack=stack, check=True, diff=True, **kwargs)
    return result, data


@pytest.mark.parametrize("name", SCENARIOS)
def test_plan_cost_is_the_sum_of_the_apis_prices(localcloud, run_playbook, name):
    token = new_project(localcloud, "cost-" + name)
    stack = scenario(name)
    result, data = plan_of(run_playbook, token, stack, inventory=name)
    assert result.rc == 0, result.output[-3000:]
    cost = data["cost"]
    pricing = get_pricing(localcloud, token)
    gross, net = expected_cost(pricing, stack)
    assert (Decimal(cost["monthly"]["gross"]), Decimal(cost["monthly"]["net"])) == (gross, net)
    hourly_gross, hourly_net = expected_cost(pricing, stack, "price_hourly")
    assert (Decimal(cost["hourly"]["gross"]), Decimal(cost["hourly"]["net"])) == (hourly_gross, hourly_net)
    # an empty project: all of it is the change, nothing costs anything now
    assert Decimal(cost["current"]["monthly"]["gross"]) == 0
    assert Decimal(cost["change"]["monthly"]["gross"]) == gross
    assert cost["currency"] == pricing["currency"] and cost["vat_rate"] == pricing["vat_rate"]
    # the breakdown adds up to the total, per resource type with type and location
    assert sum(Decimal(line["monthly"]["gross"]) for line in cost["breakdown"]) == gross
    servers = sum(len(t["servers"]) for t in stack["tiers"])
    assert sum(line["count"] for line in cost["breakdown"] if line["type"] == "server") == servers
    assert sum(line["count"] for line in cost["breakdown"] if line["type"] == "volume") == \
        sum(v["size"] for v in stack.get("volumes") or [])
    text = data["summary"]["text"]
    assert "GET /pricing" in text
    assert "change: +\u20ac%s/month" % gross.quantize(Decimal("0.01")) in text
    assert project_inventory(localcloud, token)["servers"] == []  # check mode


def test_a_changed_price_in_the_catalogue_changes_the_plan(localcloud, run_playbook):
    token = new_project(localcloud, "cost-price-change")
    stack = scenario("minimal")
    _result, before = plan_of(run_playbook, token, stack, inventory="minimal")
    pricing = copy.deepcopy(get_pricing(localcloud, token))
    cx23 = next(t for t in pricing["server_types"] if t["name"] == "cx23")
    nbg1 = next(p for p in cx23["prices"] if p["location"] == "nbg1")
    nbg1["price_monthly"] = {"net": str(Decimal(nbg1["price_monthly"]["net"]) + 10),
                             "gross": str(Decimal(nbg1["price_monthly"]["gross"]) + 10)}
    answer = requests.put(admin_url(localcloud, "/_localcloud/pricing"), json=pricing, timeout=10)
    assert answer.status_code == 200, answer.text
    try:
        assert get_pricing(localcloud, token) == pricing
        result, after = plan_of(run_playbook, token, stack, inventory="minimal")
        assert result.rc == 0, result.output[-3000:]
    finally:
        requests.delete(admin_url(localcloud, "/_localcloud/pricing"), timeout=10).raise_for_status()
    in_nbg1 = sum(1 for t in stack["tiers"] if t["server_type"] == "cx23" for s in t["servers"]
                  if s.get("location", stack["location"]) == "nbg1")
    assert in_nbg1 == 2
    assert Decimal(after["cost"]["monthly"]["gross"]) - Decimal(before["cost"]["monthly"]["gross"]) == 10 * in_nbg1
    assert Decimal(after["cost"]["monthly"]["gross"]) == expected_cost(pricing, stack)[0]


def test_a_broken_price_override_is_refused_with_the_field(localcloud):
    answer = requests.put(admin_url(localcloud, "/_localcloud/pricing"),
                          json={"pricing": {"currency": "EUR"}}, timeout=10)
    assert answer.status_code == 422 and "server_types" in answer.text
    pricing = requests.get(admin_url(localcloud, "/_localcloud/pricing"), timeout=10).json()["pricing"]
    pricing["volume"]["price_per_gb_month"]["gross"] = 0.05
    answer = requests.put(admin_url(localcloud, "/_localcloud/pricing"), json=pricing, timeout=10)
    assert answer.status_code == 422 and "pricing.volume.price_per_gb_month.gross" in answer.text
    assert requests.get(admin_url(localcloud, "/_localcloud/pricing"), timeout=10).json()["overridden"] is False


def test_a_plan_over_budget_fails_before_any_write_with_the_breakdown(localcloud, run_playbook):
    token = new_project(localcloud, "cost-budget")
    stack = scenario("production")
    gross, _net = expected_cost(get_pricing(localcloud, token), stack)
    stack["budget"] = float(gross - 1)
    requests.delete(admin_url(localcloud, "/_localcloud/stats"), timeout=10).raise_for_status()
    result, data = run_provision(run_playbook, token, stack=stack)
    assert result.rc != 0
    routes = server_stats(localcloud)["by_route"]
    assert routes and all(route.startswith("GET ") for route in routes), routes
    assert "GET /v1/pricing" in routes
    assert all(not names for names in project_inventory(localcloud, token).values())
    assert data["changed"] is False and data["cost"]["over_budget"] is True
    message = data["msg"]
    assert "budget" in message and "more than the budget of \u20ac%s/month" % Decimal(stack["budget"]).quantize(
        Decimal("0.01")) in message
    for line in data["cost"]["breakdown"]:     # the breakdown is in the message
        assert line["what"] in message
    assert "EXCEEDED" in message

    # the same declaration within its budget plans (check mode) and says what is left
    stack["budget"] = float(gross + 1)
    result, data = plan_of(run_playbook, token, stack)
    assert result.rc == 0, result.output[-3000:]
    assert data["cost"]["over_budget"] is False and "\u20ac1.00 left" in data["summary"]["text"]


@pytest.mark.parametrize("budget, expected", [
    (-5, "budget: -5.0 is not a monthly amount"),
    (0, "budget: 0.0 is not a monthly amount"),
    ("lots", "budget: must be a number"),
])
def test_a_bad_budget_names_the_field_and_changes_nothing(localcloud, run_playbook, budget, expected):
    token = new_project(localcloud, "cost-bad-budget")
    stack = scenario("minimal")
    stack["budget"] = budget
    result, data = run_provision(run_playbook, token, stack=stack, inventory="minimal")
    assert result.rc != 0
    assert expected in data["msg"], data["msg"]
    assert all(not names for names in project_inventory(localcloud, token).values())
