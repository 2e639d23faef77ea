# Copyright (c) 2026, autoscale.hetzner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The inventory plugin, run the way ansible-inventory runs it, against a fake API with a request log."""

from __future__ import annotations

import os
import sys

import pytest

from ansible.errors import AnsibleError
from ansible.inventory.data import InventoryData
from ansible.inventory.manager import InventoryManager
from ansible.parsing.dataloader import DataLoader
from ansible.plugins.loader import init_plugin_loader, inventory_loader
from ansible.utils.display import Display

# The collection loader must own the ansible_collections namespace before the plugin is imported,
# or the inventory loader later finds a module it did not load itself.
init_plugin_loader()

sys.path.insert(0, os.path.dirname(__file__))
from fake_hcloud_api import FakeHcloudAPI, make_server  # noqa: E402  pylint: disable=wrong-import-position

from ansible_collections.autoscale.hetzner.plugins.inventory.hcloud import (  # noqa: E402
    InventoryModule,
    first_ipv6_address,
    group_name,
)

NETWORKS = [
    {"id": 10, "name": "autoscale-network", "ip_range": "10.0.0.0/16", "subnets": [], "labels": {}},
    {"id": 11, "name": "backup-net", "ip_range": "10.1.0.0/16", "subnets": [], "labels": {}},
]

SERVERS = [
    make_server(1, "web-1", {"tier": "web", "stack": "prod"}, ipv4="203.0.113.1", private_net=[(10, "10.0.1.10")]),
    make_server(2, "web-2", {"tier": "web", "stack": "prod"}, location="fsn1", ipv4="203.0.113.2",
                private_net=[(10, "10.0.1.11")]),
    make_server(3, "db-1", {"tier": "db", "role": "primary", "stack": "prod"}, server_type="ccx23",
                private_net=[(11, "10.1.0.5"), (10, "10.0.3.10")]),
    make_server(4, "stopped-1", {"stack": "test"}, status="off", ipv4="203.0.113.4"),
]


@pytest.fixture
def api():
    with FakeHcloudAPI(SERVERS, NETWORKS) as fake:
        yield fake


def load_inventory(tmp_path, api, config):
    path = tmp_path / "test.hcloud.yml"
    lines = ["plugin: autoscale.hetzner.hcloud", "api_token: test-token", "api_endpoint: %s" % api.endpoint]
    path.write_text("\n".join(lines) + "\n" + config)
    loader = DataLoader()
    inventory = InventoryManager(loader=loader, sources=[str(path)], parse=False)
    inventory.parse_sources(cache=False)
    if not inventory.hosts:
        # parse_sources only warns when a source fails; surface the reason in the test.
        raise AssertionError("inventory source failed to parse")
    return inventory


def hostvars(inventory, name):
    return inventory.get_host(name).get_vars()


def group_members(inventory, group):
    return sorted(h.name for h in inventory.groups[group].get_hosts())


def test_groups_from_labels_location_type_and_network(tmp_path, api):
    inventory = load_inventory(tmp_path, api, "")
    assert group_members(inventory, "hcloud") == ["db-1", "stopped-1", "web-1", "web-2"]
    assert group_members(inventory, "web") == ["web-1", "web-2"]
    assert group_members(inventory, "db") == ["db-1"]
    assert group_members(inventory, "primary") == ["db-1"]
    assert group_members(inventory, "location_fsn1") == ["web-2"]
    assert group_members(inventory, "server_type_ccx23") == ["db-1"]
    assert group_members(inventory, "network_autoscale_network") == ["db-1", "web-1", "web-2"]
    assert group_members(inventory, "network_backup_net") == ["db-1"]


def test_hostvars_carry_the_hcloud_facts(tmp_path, api):
    inventory = load_inventory(tmp_path, api, "")
    web = hostvars(inventory, "web-1")
    assert web["ansible_host"] == "203.0.113.1"
    assert web["hcloud_id"] == 1
    assert web["hcloud_status"] == "running"
    assert web["hcloud_server_type"] == "cx23"
    assert web["hcloud_location"] == "nbg1"
    assert web["hcloud_labels"] == {"tier": "web", "stack": "prod"}
    assert web["hcloud_ipv4"] == "203.0.113.1"
    assert web["hcloud_ipv6"] == "2001:db8:1::1"
    assert web["hcloud_image"] == "debian-12"
    assert web["hcloud_private_networks"] == [
        {"id": 10, "name": "autoscale-network", "ip": "10.0.1.10", "alias_ips": []}
    ]
    assert web["hcloud_ipv6_network"] == "2001:db8:1::" and web["hcloud_ipv6_network_mask"] == "64"
    # db-1 has no public IPv4: no ansible_host rather than a wrong one, and hcloud_ipv4 is undefined
    # (as in hetzner.hcloud), so `default()` falls back
    assert "ansible_host" not in hostvars(inventory, "db-1")
    assert "hcloud_ipv4" not in hostvars(inventory, "db-1")


def test_one_list_of_networks_and_no_token_probe(tmp_path, api):
    load_inventory(tmp_path, api, "")
    paths = sorted(request[0] for request in api.requests)
    assert paths == ["/v1/networks", "/v1/servers"]
    assert all(query["per_page"] == ["50"] for path, query in api.requests)


def test_connect_with_private_ipv4_in_the_named_network(tmp_path, api):
    inventory = load_inventory(tmp_path, api, "connect_with: private_ipv4\nnetwork: autoscale-network\n")
    assert hostvars(inventory, "db-1")["ansible_host"] == "10.0.3.10"
    assert hostvars(inventory, "db-1")["hcloud_private_ipv4"] == "10.0.3.10"
    assert hostvars(inventory, "web-2")["ansible_host"] == "10.0.1.11"


def test_network_filters_the_hosts_to_its_servers_as_in_hetzner_hcloud(tmp_path, api):
    inventory = load_inventory(tmp_path, api, "network: autoscale-network\n")
    assert sorted(inventory.hosts) == ["db-1", "web-1", "web-2"]  # stopped-1 is in no network
    inventory = load_inventory(tmp_path, api, "network: backup-net\n")
    assert sorted(inventory.hosts) == ["db-1"]
    assert hostvars(inventory, "db-1")["hcloud_private_ipv4"] == "10.1.0.5"
    assert group_members(inventory, "network_autoscale_network") == ["db-1"]  # its other networks stay listed
    by_id = load_inventory(tmp_path, api, "network: 11\n")
    assert sorted(by_id.hosts) == ["db-1"]
    templated = load_inventory(tmp_path, api, "network: \"{{ 'backup' ~ '-net' }}\"\n")
    assert sorted(templated.hosts) == ["db-1"]


def test_network_costs_no_request(tmp_path, api):
    load_inventory(tmp_path, api, "network: backup-net\n")
    assert sorted(request[0] for request in api.requests) == ["/v1/networks", "/v1/servers"]


def test_network_name_wins_over_an_id(tmp_path):
    """hetzner.hcloud looks a name up first, then an ID: a network named "10" is that one, not ID 10."""
    networks = NETWORKS + [{"id": 12, "name": "10", "ip_range": "10.2.0.0/16", "subnets": [], "labels": {}}]
    servers = SERVERS + [make_server(5, "odd-1", {}, ipv4="203.0.113.5", private_net=[(12, "10.2.0.2")])]
    with FakeHcloudAPI(servers, networks) as fake:
        inventory = load_inventory(tmp_path, fake, "network: '10'\n")
    assert sorted(inventory.hosts) == ["odd-1"]


def test_unknown_network_names_the_option_and_the_fix(tmp_path, api):
    path = tmp_path / "test.hcloud.yml"
    path.write_text("plugin: autoscale.hetzner.hcloud\napi_token: test-token\napi_endpoint: %s\nnetwork: nope\n"
                    % api.endpoint)
    plugin = inventory_loader.get("autoscale.hetzner.hcloud")
    with pytest.raises(AnsibleError) as raised:
        plugin.parse(InventoryData(), DataLoader(), str(path), cache=False)
    message = str(raised.value)
    assert "network: no private network is named 'nope'" in message
    assert "autoscale-network, backup-net" in message and "remove the option" in message


def test_connect_with_hostname_is_the_server_name(tmp_path, api):
    inventory = load_inventory(tmp_path, api, "connect_with: hostname\n")
    assert hostvars(inventory, "db-1")["ansible_host"] == "db-1"
    assert hostvars(inventory, "web-1")["ansible_host"] == "web-1"


def test_connect_with_name_is_a_deprecated_alias_of_hostname(tmp_path, api, monkeypatch):
    deprecations = []
    monkeypatch.setattr(Display, "deprecated", lambda self, msg, version=None, **kw: deprecations.append((msg, version)))
    inventory = load_inventory(tmp_path, api, "connect_with: name\n")
    assert hostvars(inventory, "db-1")["ansible_host"] == "db-1"
    assert len(deprecations) == 1 and deprecations[0][1] == "1.0.0"
    assert "connect_with: name is renamed connect_with: hostname" in deprecations[0][0]


def test_label_selector_and_status_are_sent_to_the_api(tmp_path, api):
    inventory = load_inventory(tmp_path, api, "label_selector: stack=prod\nstatus: [running]\n")
    assert group_members(inventory, "hcloud") == ["db-1", "web-1", "web-2"]
    server_queries = [query for path, query in api.requests if path == "/v1/servers"]
    assert server_queries == [{"label_selector": ["stack=prod"], "status": ["running"], "page": ["1"], "per_page": ["50"]}]


def test_constructed_keyed_groups_compose_and_groups(tmp_path, api):
    config = (
        "keyed_groups:\n"
        "  - key: hcloud_labels.stack\n"
        "    prefix: stack\n"
        "compose:\n"
        "  ansible_host: hcloud_ipv4 | default(hcloud_private_ipv4)\n"
        "groups:\n"
        "  stopped: hcloud_status == 'off'\n"
    )
    inventory = load_inventory(tmp_path, api, config)
    assert group_members(inventory, "stack_prod") == ["db-1", "web-1", "web-2"]
    assert group_members(inventory, "stopped") == ["stopped-1"]
    assert hostvars(inventory, "db-1")["ansible_host"] == "10.1.0.5"


def test_configurable_label_groups_and_group_by(tmp_path, api):
    inventory = load_inventory(tmp_path, api, "label_groups: [stack]\ngroup_by: [status]\n")
    assert group_members(inventory, "prod") == ["db-1", "web-1", "web-2"]
    assert group_members(inventory, "status_off") == ["stopped-1"]
    assert "web" not in inventory.groups
    assert "location_nbg1" not in inventory.groups


def test_1000_servers_in_21_requests(tmp_path):
    servers = [
        make_server(i, "srv-%04d" % i, {"tier": ("web", "app", "db")[i % 3]}, ipv4="198.51.%d.%d" % (i // 250, i % 250),
                    private_net=[(100 + i % 10, "10.%d.0.%d" % (i % 10, 2 + i // 10))])
        for i in range(1, 1001)
    ]
    networks = [{"id": 100 + n, "name": "net-%d" % n, "ip_range": "10.%d.0.0/16" % n, "subnets": [], "labels": {}}
                for n in range(10)]
    with FakeHcloudAPI(servers, networks) as api:
        inventory = load_inventory(tmp_path, api, "")
        assert len(inventory.hosts) == 1000
        assert len(group_members(inventory, "app")) == 334  # i % 3 == 1
        assert len(api.requests) == 21  # 20 server pages + 1 network page


def test_cache_serves_the_second_run_without_requests(tmp_path, api):
    config = "cache: true\ncache_plugin: ansible.builtin.jsonfile\ncache_connection: %s\n" % (tmp_path / "cache")
    path = tmp_path / "test.hcloud.yml"
    path.write_text("plugin: autoscale.hetzner.hcloud\napi_token: test-token\napi_endpoint: %s\n%s" % (api.endpoint, config))
    first = InventoryManager(loader=DataLoader(), sources=[str(path)], parse=False)
    first.parse_sources(cache=False)  # --flush-cache: read the API, write the cache
    count = len(api.requests)
    second = InventoryManager(loader=DataLoader(), sources=[str(path)], parse=False)
    second.parse_sources(cache=True)
    assert len(api.requests) == count
    assert sorted(second.hosts) == sorted(first.hosts)


def test_helpers():
    assert group_name("autoscale-network") == "autoscale_network"
    assert group_name("1a") == "_1a"
    assert first_ipv6_address("2001:db8::/64") == "2001:db8::1"
    assert first_ipv6_address(None) is None
    assert InventoryModule().verify_file("/nonexistent/foo.hcloud.yml") is False
