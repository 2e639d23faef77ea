# Copyright (c) 2026, autoscale.hetzner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""monthly_cost: the stack's monthly cost from the API's /pricing (the verification summary's last line)."""
from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError
from ansible.plugins.loader import init_plugin_loader

init_plugin_loader()

from ansible_collections.autoscale.hetzner.plugins.filter.cost import monthly_cost  # noqa: E402  pylint: disable=wrong-import-position


def price(location, net, gross):
    return {"location": location, "price_monthly": {"net": net, "gross": gross}}


PRICING = {
    "currency": "EUR",
    "vat_rate": "19.00",
    "server_types": [{"name": "cx23", "prices": [price("nbg1", "3.4900000000", "4.1531000000"),
                                                 price("fsn1", "3.2900000000", "3.9151000000")]}],
    "primary_ips": [{"type": "ipv4", "prices": [price("nbg1", "0.5000000000", "0.5950000000"),
                                                price("fsn1", "0.5000000000", "0.5950000000")]},
                    {"type": "ipv6", "prices": [price("nbg1", "0.0000000000", "0.0000000000"),
                                                price("fsn1", "0.0000000000", "0.0000000000")]}],
    "server_backup": {"percentage": "20.00"},
    "volume": {"price_per_gb_month": {"net": "0.0440000000", "gross": "0.0523600000"}},
    "load_balancer_types": [{"name": "lb11", "prices": [price("nbg1", "5.3900000000", "6.4141000000")]}],
}


def test_servers_by_location_their_ipv4_volumes_by_gb_and_load_balancers_add_up():
    cost = monthly_cost(PRICING, servers=[
        {"server_type": "cx23", "location": "nbg1", "enable_ipv6": False},                      # as declared
        {"hcloud_server_type": "cx23", "hcloud_location": "fsn1", "hcloud_ipv4": "198.18.64.3",
         "hcloud_ipv6": None},                                                                  # an inventory host
        {"server_type": "cx23", "location": "nbg1", "ipv4": None, "ipv6": None, "backups": True},  # no public IP
    ], volumes=[{"size": 50}], load_balancers=[{"load_balancer_type": "lb11"}], location="nbg1")
    # 3.49 + 3.29 + 3.49 (+ 20 % backup 0.698) + 2 x 0.50 + 50 x 0.044 + 5.39 = 19.558
    assert cost["net"] == "19.56"
    assert cost["gross"] == "23.27"     # 4.1531 + 3.9151 + 4.1531 x 1.2 + 2 x 0.595 + 50 x 0.05236 + 6.4141
    assert {i["what"]: (i["count"], i["net"]) for i in cost["items"]} == {
        "cx23 in nbg1": (2, "6.98"), "cx23 in fsn1": (1, "3.29"), "backup 20.00% of cx23 in nbg1": (1, "0.70"),
        "primary ipv4 nbg1": (1, "0.50"), "primary ipv4 fsn1": (1, "0.50"), "volume GB in nbg1": (50, "2.20"),
        "lb11 in nbg1": (1, "5.39")}
    assert (cost["currency"], cost["vat_rate"]) == ("EUR", "19.00")


@pytest.mark.parametrize("servers, load_balancers, message", [
    ([{"server_type": "cx22", "location": "nbg1"}], [], "no price for server type cx22 \\(known: cx23\\)"),
    ([{"server_type": "cx23", "location": "ash"}], [], "no price for server type cx23 in ash"),
    ([], [{"load_balancer_type": "lb11", "location": "fsn1"}], "no price for load balancer type lb11 in fsn1"),
])
def test_what_has_no_price_is_named(servers, load_balancers, message):
    with pytest.raises(AnsibleFilterError, match=message):
        monthly_cost(PRICING, servers=servers, load_balancers=load_balancers)


def test_the_input_must_be_the_pricing_object():
    with pytest.raises(AnsibleFilterError, match="'pricing' object of GET /pricing"):
        monthly_cost({"pricing": PRICING})


def test_lines_that_cost_nothing_are_left_out_of_the_summary():
    cost = monthly_cost(PRICING, servers=[{"server_type": "cx23", "location": "nbg1"}])   # IPv4 and IPv6 on
    assert [i["what"] for i in cost["items"]] == ["cx23 in nbg1", "primary ipv4 nbg1"]
    assert cost["net"] == "3.99"
