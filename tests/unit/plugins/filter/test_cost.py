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
                                                price("fsn1", "0.5000000000", "0.5950000000")]}],
    "volume": {"price_per_gb_month": {"net": "0.0440000000", "gross": "0.0523600000"}},
    "load_balancer_types": [{"name": "lb11", "prices": [price("nbg1", "5.3900000000", "6.4141000000")]}],
}


def test_servers_by_location_their_ipv4_volumes_by_gb_and_load_balancers_add_up():
    cost = monthly_cost(PRICING, servers=[
        {"server_type": "cx23", "location": "nbg1", "ipv4": True},
        {"hcloud_server_type": "cx23", "hcloud_location": "fsn1", "hcloud_ipv4": "198.18.64.3"},   # an inventory host
        {"server_type": "cx23", "location": "nbg1", "ipv4": None},                                 # no primary IPv4
    ], volumes=[{"size": 50}], load_balancers=[{"load_balancer_type": "lb11"}], location="nbg1")
    assert cost["net"] == "18.86"       # 3.49 + 3.29 + 3.49 + 2 x 0.50 + 50 x 0.044 + 5.39
    assert cost["gross"] == "22.44"
    assert {i["what"]: (i["count"], i["net"]) for i in cost["items"]} == {
        "server cx23": (3, "10.27"), "primary IPv4": (2, "1.00"), "volume GB": (50, "2.20"), "load balancer lb11": (1, "5.39")}
    assert (cost["currency"], cost["vat_rate"]) == ("EUR", "19.00")


@pytest.mark.parametrize("servers, load_balancers, message", [
    ([{"server_type": "cx22", "location": "nbg1"}], [], "server type cx22 is not in the API's /pricing"),
    ([{"server_type": "cx23", "location": "ash"}], [], "no price for server type cx23 in ash"),
    ([], [{"load_balancer_type": "lb11", "location": "fsn1"}], "no price for load balancer type lb11 in fsn1"),
])
def test_what_has_no_price_is_named(servers, load_balancers, message):
    with pytest.raises(AnsibleFilterError, match=message):
        monthly_cost(PRICING, servers=servers, load_balancers=load_balancers)


def test_the_input_must_be_the_pricing_object():
    with pytest.raises(AnsibleFilterError, match="'pricing' object of GET /pricing"):
        monthly_cost({"pricing": PRICING})
