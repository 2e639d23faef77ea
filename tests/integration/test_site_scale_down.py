# Copyright (c) 2026, autoscale.hetzner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""site.yml's wait before it deletes a web server that is no longer declared: the server's health check
fails first (the web role's drain), then site.yml waits as long as the slowest load balancer service
takes to see it (interval x retries + timeout), then provisioning deletes it.

The wait is site.yml's own task, taken from the playbook and rendered with each scenario's inventory,
as site.yml renders it. Why: its first version used a filter argument Jinja does not have
(`max(default=0)`) and failed only when a web server went away, which no test of `make test` did
(tests/e2e's scale-down test, outside `make test`, found it). The machines part of scaling down
(the load balancer serves without a failed request while the server leaves) is that e2e test."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def site_drain_task():
    plays = yaml.safe_load((ROOT / "playbooks" / "site.yml").read_text())
    play = next(p for p in plays if p.get("hosts") == "site_leaving")
    return next(t for t in play["tasks"] if "ansible.builtin.pause" in t)


def rendered_wait(ansible_env, tmp_path, inventory, *args):
    """The seconds site.yml's drain wait renders to with the scenario's inventory (and -e args)."""
    task = site_drain_task()
    playbook = [{"hosts": "localhost", "gather_facts": False, "tasks": [{
        "name": "Render site.yml's drain wait",
        "ansible.builtin.debug": {"msg": "DRAIN=" + task["ansible.builtin.pause"]["seconds"]
                                         + " WHEN={{ (" + task["when"] + ") | string }}"},
        "vars": task["vars"]}]}]
    path = tmp_path / f"drain-{inventory}.yml"
    path.write_text(yaml.safe_dump(playbook))
    proc = subprocess.run([str(BIN / "ansible-playbook"), "-i", str(ROOT / "inventories" / inventory), str(path), *args],
                          env=ansible_env, cwd=str(ROOT), capture_output=True, text=True, timeout=300, check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-3000:]
    found = re.search(r'"msg": "DRAIN=(\d+) WHEN=(True|False)"', output)
    assert found, output[-3000:]
    return int(found.group(1)), found.group(2) == "True"


@pytest.mark.parametrize("inventory, args, seconds", [
    # minimal with a load balancer: its health check every 5 s, 3 s timeout, 2 retries -> 5 x 2 + 3
    ("minimal", ("-e", json.dumps({"web_load_balancer": True})), 13),
    # production's lb11: every 15 s, 10 s timeout, 3 retries -> 15 x 3 + 10
    ("production", (), 55),
])
def test_a_web_server_that_goes_away_waits_for_the_load_balancers_health_checks(ansible_env, tmp_path, inventory, args, seconds):
    assert rendered_wait(ansible_env, tmp_path, inventory, *args) == (seconds, True)


def test_without_a_load_balancer_nothing_waits(ansible_env, tmp_path):
    assert rendered_wait(ansible_env, tmp_path, "minimal") == (0, False)
