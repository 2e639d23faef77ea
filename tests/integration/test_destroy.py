# Copyright (c) 2026, autoscale.hetzner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""playbooks/destroy.yml: shows what goes, asks, deletes only what the stack manages, stops at protection."""

from __future__ import annotations

import json
import subprocess

import pytest
import requests

from conftest import ROOT, VENV_BIN
from test_stack import (
    PUBLIC_KEY,
    admin_url,
    converge,
    declared_names,
    new_project,
    project_inventory,
    scenario,
    server_stats,
)


def destroy(ansible_env, token, *extra):
    """destroy.yml on the minimal inventory, without a terminal (stdin from /dev/null): what CI and cron see."""
    cmd = [str(VENV_BIN / "ansible-playbook"), "-i", str(ROOT / "inventories" / "minimal" / "hosts.ini"),
           str(ROOT / "playbooks" / "destroy.yml"), "-e", json.dumps({"admin_public_key": PUBLIC_KEY})]
    for item in extra:
        cmd += ["-e", item]
    env = dict(ansible_env, HCLOUD_TOKEN=token)
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=str(ROOT), stdin=subprocess.DEVNULL,
                          timeout=600, check=False)


def create_foreign_server(localcloud, token, name):
    answer = requests.post(localcloud["endpoint"] + "/servers", headers={"Authorization": "Bearer " + token},
                           json={"name": name, "server_type": "cx23", "image": "debian-12", "location": "nbg1"},
                           timeout=10)
    answer.raise_for_status()


@pytest.mark.long
def test_destroy_asks_deletes_only_the_stack_and_stops_at_protection(localcloud, run_playbook, ansible_env):
    token = new_project(localcloud, "destroy")
    stack = scenario("minimal")
    for tier in stack["tiers"]:
        if tier["name"] == "db":
            tier["backups"] = True
            tier["delete_protection"] = True
    converge(run_playbook, token, inventory="minimal", stack=stack)
    create_foreign_server(localcloud, token, "not-in-the-stack")
    everything = project_inventory(localcloud, token)
    assert "not-in-the-stack" in everything["servers"]

    # protected: refused before anything is deleted, even with confirm=yes
    requests.delete(admin_url(localcloud, "/_localcloud/stats"), timeout=10).raise_for_status()
    run = destroy(ansible_env, token, "confirm=yes", '{"hetzner_stack": %s}' % json.dumps(stack))
    assert run.returncode != 0, run.stdout
    assert "server 'autoscale-min-db-1' is delete-protected" in run.stdout and "unprotect=yes" in run.stdout
    assert "Nothing was deleted" in run.stdout
    assert all(route.startswith("GET ") for route in server_stats(localcloud)["by_route"])
    assert project_inventory(localcloud, token) == everything

    # no confirmation (no terminal, no -e confirm=yes): shows the list and the warnings, deletes nothing
    requests.delete(admin_url(localcloud, "/_localcloud/stats"), timeout=10).raise_for_status()
    run = destroy(ansible_env, token, "unprotect=yes", '{"hetzner_stack": %s}' % json.dumps(stack))
    assert run.returncode != 0
    assert "Not confirmed: nothing was deleted" in run.stdout, run.stdout[-2500:]
    for name in declared_names(stack)["servers"] + declared_names(stack)["volumes"]:
        assert name in run.stdout
    assert "not-in-the-stack" not in run.stdout
    assert "volume autoscale-min-db-1-data (50 GB) is deleted" in run.stdout
    assert "server autoscale-min-db-1 has backups" in run.stdout
    assert "delete protection is removed first from: autoscale-min-db-1" in run.stdout
    assert "change: -\u20ac" in run.stdout    # what it saves per month
    assert all(route.startswith("GET ") for route in server_stats(localcloud)["by_route"])
    assert project_inventory(localcloud, token) == everything

    # confirmed and unprotected: everything of the stack goes, the foreign server stays
    run = destroy(ansible_env, token, "confirm=yes", "unprotect=yes", '{"hetzner_stack": %s}' % json.dumps(stack))
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    left = project_inventory(localcloud, token)
    assert left["servers"] == ["not-in-the-stack"]
    assert all(not names for path, names in left.items() if path != "servers"), left

    # nothing left of the stack: says so, deletes nothing
    run = destroy(ansible_env, token, '{"hetzner_stack": %s}' % json.dumps(stack))
    assert run.returncode == 0, run.stdout[-3000:]
    assert "0 to delete" in run.stdout
    assert project_inventory(localcloud, token)["servers"] == ["not-in-the-stack"]


def test_destroy_without_a_stack_in_the_inventory_names_the_variable(localcloud, ansible_env):
    token = new_project(localcloud, "destroy-no-stack")
    run = destroy(ansible_env, token, '{"hetzner_stack": {}}')
    assert run.returncode != 0
    assert "hetzner_stack.name: not set" in run.stdout
