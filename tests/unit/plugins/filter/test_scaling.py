# Copyright (c) 2026, autoscale.hetzner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""numbered_servers: a tier's servers from a count (the scenarios scale a tier with one variable)."""
from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError
from ansible.plugins.loader import init_plugin_loader

init_plugin_loader()

from ansible_collections.autoscale.hetzner.plugins.filter.scaling import numbered_servers  # noqa: E402  pylint: disable=wrong-import-position


def test_servers_get_names_ips_and_locations_in_turn():
    assert numbered_servers("s-web", 3, subnet="10.0.1.0/24", locations=["nbg1", "fsn1"]) == [
        {"name": "s-web-1", "ip": "10.0.1.10", "location": "nbg1"},
        {"name": "s-web-2", "ip": "10.0.1.11", "location": "fsn1"},
        {"name": "s-web-3", "ip": "10.0.1.12", "location": "nbg1"},
    ]


def test_scaling_up_keeps_the_existing_servers_and_adds_the_next():
    three = numbered_servers("s-web", 3, subnet="10.0.1.0/24")
    four = numbered_servers("s-web", "4", subnet="10.0.1.0/24")
    assert four[:3] == three and four[3] == {"name": "s-web-4", "ip": "10.0.1.13"}


def test_labels_are_copied_and_zero_is_allowed():
    servers = numbered_servers("s-app", 2, labels={"role": "x"})
    assert servers == [{"name": "s-app-1", "labels": {"role": "x"}}, {"name": "s-app-2", "labels": {"role": "x"}}]
    servers[0]["labels"]["role"] = "y"
    assert servers[1]["labels"] == {"role": "x"}
    assert numbered_servers("s-app", 0, subnet="10.0.2.0/24") == []


@pytest.mark.parametrize("args, kwargs, message", [
    (("s-web", -1), {}, "count is -1"),
    (("s-web", "three"), {}, "whole numbers"),
    (("s-web", 250), {"subnet": "10.0.1.0/24"}, "do not fit in 10.0.1.0/24"),
    (("s-web", 1), {"subnet": "10.0.1.0/24", "first": 1}, "do not fit"),
    (("s-web", 1), {"subnet": "10.0.1.5/24"}, "is not a network"),
    (("s-web", 1), {"locations": "nbg1"}, "locations must be a list"),
    (("", 1), {}, "name prefix"),
])
def test_bad_arguments_are_named(args, kwargs, message):
    with pytest.raises(AnsibleFilterError, match=message):
        numbered_servers(*args, **kwargs)


# drain_seconds: how long site.yml keeps a web server that goes away out of rotation before deleting it.
from ansible_collections.autoscale.hetzner.plugins.filter.scaling import drain_seconds  # noqa: E402  pylint: disable=wrong-import-position


def test_drain_time_is_the_slowest_service_health_check_to_see_a_failure():
    balancers = [
        {"services": [{"health_check": {"interval": 5, "timeout": 3, "retries": 2}}]},       # 5 x 2 + 3 = 13
        {"services": [{"health_check": {"interval": 10, "timeout": 2, "retries": 4}},        # 10 x 4 + 2 = 42
                      {"health_check": {"interval": "6", "timeout": "1", "retries": "1"}}]},
    ]
    assert drain_seconds(balancers) == 42


def test_a_service_without_a_health_check_counts_with_hetzners_defaults():
    # The stack module gives such a service interval 15 s, timeout 10 s, 3 retries: 15 x 3 + 10.
    assert drain_seconds([{"services": [{"protocol": "http", "listen_port": 80}]}]) == 55
    assert drain_seconds([{"services": [{"health_check": {"interval": 5}}]}]) == 25      # 5 x 3 + 10


def test_no_load_balancer_or_service_means_no_wait():
    assert drain_seconds(None) == 0
    assert drain_seconds([]) == 0
    assert drain_seconds([{"name": "lb", "services": []}, {"name": "lb2"}]) == 0


def test_bad_health_check_values_are_named_by_their_path():
    with pytest.raises(AnsibleFilterError, match=r"load_balancers\[0\]\.services\[1\]\.health_check\.retries must be a whole number of tries"):
        drain_seconds([{"services": [{}, {"health_check": {"retries": "three"}}]}])
    with pytest.raises(AnsibleFilterError, match=r"must be the stack's load_balancers \(a list\)"):
        drain_seconds({"services": []})
