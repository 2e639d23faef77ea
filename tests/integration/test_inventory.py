# Copyright (c) 2026, autoscale.hetzner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The inventory plugin against the local cloud, on a production stack made by the stack module:
ansible-inventory --graph/--list and an ad-hoc command, in two requests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, os.path.dirname(__file__))
from test_stack import (  # noqa: E402  pylint: disable=wrong-import-position
    ROOT,
    converge,
    new_project,
    scenario,
    server_stats,
)

BIN = Path(sys.executable).parent


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
    env = dict(ansible_env, HCLOUD_TOKEN=token)
    source = str(ROOT / "inventories" / "production" / "servers.hcloud.yml")

    before = server_stats(localcloud)["total"]
    listed = plain(json.loads(ansible("ansible-inventory", ["-i", source, "--list"], env)))
    assert server_stats(localcloud)["total"] - before == 2  # one page of servers, one of networks

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
