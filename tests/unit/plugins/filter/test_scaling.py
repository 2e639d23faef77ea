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
