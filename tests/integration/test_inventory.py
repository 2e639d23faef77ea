# Copyright (c) 2026, autoscale.hetzner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The inventory plugin against the local cloud, on a production stack made by the stack module:
ansible-inventory --graph/--list and an ad-hoc command, in two requests; and its options named as in
hetzner.hcloud's inventory plugin (network, connect_with) giving the same hosts as that plugin."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests

sys.path.insert(0, os.path.dirname(__file__))
from test_stack import (  # noqa: E402  pylint: disable=wrong-import-position
    ROOT,
    converge,
    new_project,
    scenario,
    server_stats,
)

BIN = Path(sys.executable).parent
# hetzner.hcloud 6.x (ansible 14, Python 3.12), which reads the API as it is today; 5.x in BIN still reads
# server.datacenter, which the local cloud only serves with its global legacy_datacenters setting.
BIN14 = ROOT / ".venv-ansible14" / "bin"


def plain(value):
    """ansible-inventory marks strings from inventory sources as unsafe: {"__ansible_unsafe": "x"}."""
    if isinstance(value, dict):
        if set(value) == {"__ansible_unsafe"}:
            return value["__ansible_unsafe"]
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def ansible(tool, args, env):
    proc = subprocess.run([str(BIN / tool)] + args, env=env, cwd=str(ROOT), capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_inventory_of_the_production_stack(localcloud, run_playbook, ansible_env, tmp_path):
    token = new_project(localcloud, "inventory-production")
    converge(run_playbook, token, stack=scenario("production"))
    # A server with the stack's label outside its network: the source's `network:` leaves it out.
    api_request(localcloud, token, "POST", "servers", {
        "name": "stray-1", "server_type": "cx23", "image": "debian-12", "location": "fsn1",
        "labels": {"stack": "autoscale-prod", "tier": "web"}})
    env = dict(ansible_env, HCLOUD_TOKEN=token)
    source = str(ROOT / "inventories" / "production" / "servers.hcloud.yml")

    before = server_stats(localcloud)["total"]
    listed = plain(json.loads(ansible("ansible-inventory", ["-i", source, "--list"], env)))
    assert server_stats(localcloud)["total"] - before == 2  # one page of servers, one of networks
    assert "stray-1" not in listed["_meta"]["hostvars"] and len(listed["_meta"]["hostvars"]) == 8

    def members(group):
        return sorted(listed.get(group, {}).get("hosts", []))

    assert members("web") == ["autoscale-prod-web-1", "autoscale-prod-web-2", "autoscale-prod-web-3"]
    assert members("app") == ["autoscale-prod-app-1", "autoscale-prod-app-2"]
    assert members("db") == ["autoscale-prod-db-1", "autoscale-prod-db-2"]
    assert members("primary") == ["autoscale-prod-db-1"] and members("standby") == ["autoscale-prod-db-2"]
    assert members("monitoring") == ["autoscale-prod-mon-1"]
    assert len(members("location_nbg1")) == 8
    assert members("server_type_ccx33") == ["autoscale-prod-db-1", "autoscale-prod-db-2"]
    assert len(members("network_autoscale_prod_network")) == 8
    hostvars = listed["_meta"]["hostvars"]
    db1 = hostvars["autoscale-prod-db-1"]
    assert db1["ansible_host"] == db1["hcloud_ipv4"]
    assert db1["hcloud_private_ipv4"] == "10.0.3.10"
    assert db1["hcloud_labels"]["role"] == "primary"
    assert db1["hcloud_status"] == "running"
    assert db1["hcloud_private_networks"][0]["name"] == "autoscale-prod-network"

    graph = ansible("ansible-inventory", ["-i", source, "--graph"], env)
    assert "@web:" in graph and "autoscale-prod-web-1" in graph

    # connect over the private network, only the web tier, and run an ad-hoc command on the result
    private = tmp_path / "private.hcloud.yml"
    private.write_text("plugin: autoscale.hetzner.hcloud\nlabel_selector: stack=autoscale-prod,tier=web\n"
                       "connect_with: private_ipv4\nnetwork: autoscale-prod-network\n")
    out = ansible("ansible", ["-i", str(private), "web", "-m", "ansible.builtin.debug", "-a", "var=ansible_host",
                              "-o"], env)
    assert "autoscale-prod-web-1 | SUCCESS" in out and "10.0.1.10" in out
    assert "autoscale-prod-db-1" not in out


def api_request(localcloud, token, method, path, body=None):
    answer = requests.request(method, "%s/%s" % (localcloud["endpoint"], path), json=body, timeout=10,
                              headers={"Authorization": "Bearer " + token})
    assert answer.ok, answer.text
    return answer.json()


def listing(tool_bin, config, env, tmp_path, name):
    source = tmp_path / ("%s.hcloud.yml" % name)
    source.write_text(config)
    proc = subprocess.run([str(tool_bin / "ansible-inventory"), "-i", str(source), "--list"], env=env, cwd=str(ROOT),
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return plain(json.JSONDecoder().raw_decode(proc.stdout[proc.stdout.index("{"):])[0])["_meta"]["hostvars"], proc.stderr


NAMES_CONFIGS = {
    "network_by_name": "network: names-a\n",
    "network_by_id": "network: {b_id}\nconnect_with: private_ipv4\n",
    "connect_private": "label_selector: names=yes\nnetwork: names-a\nconnect_with: private_ipv4\n",
    "connect_hostname": "label_selector: names=yes\nconnect_with: hostname\n",
}


def test_options_named_as_in_hetzner_hcloud_mean_the_same(localcloud, ansible_env, tmp_path):
    """network filters the hosts to its servers and picks their private IP, connect_with: hostname is the
    server name: the same hosts and addresses as hetzner.hcloud.hcloud lists from the same project."""
    token = new_project(localcloud, "inventory-names")
    networks = {}
    for name, cidr in (("names-a", "10.31.0.0/16"), ("names-b", "10.32.0.0/16")):
        networks[name] = api_request(localcloud, token, "POST", "networks", {
            "name": name, "ip_range": cidr,
            "subnets": [{"type": "cloud", "ip_range": cidr.replace("0.0/16", "1.0/24"), "network_zone": "eu-central"}],
        })["network"]["id"]
    for server, attached in (("in-a", ["names-a"]), ("in-a-and-b", ["names-a", "names-b"]), ("in-b", ["names-b"]),
                             ("in-none", [])):
        body = {"name": server, "server_type": "cx23", "image": "debian-12", "location": "nbg1",
                "labels": {"names": "yes"}}
        if attached:
            body["networks"] = [networks[n] for n in attached]
        api_request(localcloud, token, "POST", "servers", body)
    env = dict(ansible_env, HCLOUD_TOKEN=token,
               ANSIBLE_INVENTORY_ENABLED="autoscale.hetzner.hcloud,hetzner.hcloud.hcloud")
    servers = {s["name"]: s for s in api_request(localcloud, token, "GET", "servers")["servers"]}

    def private_ip(server, network):
        return next(p["ip"] for p in servers[server]["private_net"] if p["network"] == networks[network])

    ours = {}
    for case, config in NAMES_CONFIGS.items():
        config = config.format(b_id=networks["names-b"])
        ours[case], _ = listing(BIN, "plugin: autoscale.hetzner.hcloud\n" + config, env, tmp_path, "ours-" + case)

    # what each option means, spelled out
    assert sorted(ours["network_by_name"]) == ["in-a", "in-a-and-b"]
    assert ours["network_by_name"]["in-a-and-b"]["hcloud_private_ipv4"] == private_ip("in-a-and-b", "names-a")
    assert ours["network_by_name"]["in-a"]["ansible_host"] == servers["in-a"]["public_net"]["ipv4"]["ip"]
    assert sorted(ours["network_by_id"]) == ["in-a-and-b", "in-b"]
    assert ours["network_by_id"]["in-a-and-b"]["ansible_host"] == private_ip("in-a-and-b", "names-b")
    assert ours["connect_private"]["in-a"]["ansible_host"] == private_ip("in-a", "names-a")
    assert sorted(ours["connect_hostname"]) == ["in-a", "in-a-and-b", "in-b", "in-none"]
    assert all(host["ansible_host"] == name for name, host in ours["connect_hostname"].items())

    # a network that does not exist: an error naming the option and the fix
    source = tmp_path / "missing.hcloud.yml"
    source.write_text("plugin: autoscale.hetzner.hcloud\nnetwork: names-c\n")
    proc = subprocess.run([str(BIN / "ansible-inventory"), "-i", str(source), "--list"], cwd=str(ROOT),
                          env=dict(env, ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED="1"),
                          capture_output=True, text=True, check=False)
    assert proc.returncode != 0
    assert "network: no private network is named 'names-c'" in proc.stderr and "names-a, names-b" in proc.stderr

    # the deprecated connect_with: name still works, and says what to write
    old, stderr = listing(BIN, "plugin: autoscale.hetzner.hcloud\nconnect_with: name\nlabel_selector: names=yes\n",
                          env, tmp_path, "ours-name")
    assert old == ours["connect_hostname"]
    assert "connect_with: name is renamed connect_with: hostname" in " ".join(stderr.split())

    # the same configurations read by hetzner.hcloud's own plugin
    if not (BIN14 / "ansible-inventory").exists():
        pytest.skip("%s missing (make venv builds it): not compared with hetzner.hcloud 6.x" % BIN14)
    for case, config in NAMES_CONFIGS.items():
        config = config.format(b_id=networks["names-b"])
        theirs, _ = listing(BIN14, "plugin: hetzner.hcloud.hcloud\n" + config, env, tmp_path, "theirs-" + case)
        assert sorted(theirs) == sorted(ours[case]) and all(v["ansible_host"] for v in theirs.values()), case
        for host, values in theirs.items():
            # Every variable hetzner.hcloud sets, ours sets to the same value; ours adds alias_ips to each private
            # network, and hcloud_private_ipv4 (the first network's IP) when no network is set.
            values.pop("hcloud_datacenter", None)  # deprecated there, gone from the API
            mine = {key: ours[case][host].get(key) for key in values}
            mine["hcloud_private_networks"] = [{k: v for k, v in n.items() if k != "alias_ips"}
                                               for n in mine["hcloud_private_networks"]]
            assert mine == values, (case, host)
        again, _ = listing(BIN14, "plugin: autoscale.hetzner.hcloud\n" + config, env, tmp_path, "ours14-" + case)
        assert again == ours[case], case
