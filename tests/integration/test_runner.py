# Copyright (c) 2026, autoscale.hetzner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The collection's playbooks through ansible-runner (ansible_runner.run), the way AWX / Ansible Automation
Platform and Python tools run them: a private data directory, the runner's own event callback, the token in the
environment. On the local cloud without machines: provision.yml of the minimal scenario for real, then status.yml
reading it back. site.yml needs machines (it configures the servers over SSH; with --check on an empty project it
shows the plan and ends, test_site_check.py): tests/e2e/test_site.py runs its second site.yml run through
ansible_runner.run on the end-to-end stack."""

from __future__ import annotations

import ansible_runner
import pytest

from conftest import ROOT
from test_stack import PUBLIC_KEY, declared_names, new_project, project_inventory, scenario


def run(playbook, ansible_env, token, private_dir, extravars, cmdline=""):
    envvars = {k: v for k, v in ansible_env.items() if k.startswith(("ANSIBLE_", "HCLOUD_")) or k == "PATH"}
    envvars["HCLOUD_TOKEN"] = token
    private_dir.mkdir()
    return ansible_runner.run(private_data_dir=str(private_dir), playbook=str(ROOT / "playbooks" / playbook),
                              inventory=str(ROOT / "inventories" / "minimal"), extravars=extravars, cmdline=cmdline,
                              envvars=envvars, quiet=True, timeout=900)


def task_result(runner, task):
    return next(e["event_data"]["res"] for e in runner.events
                if e["event"] == "runner_on_ok" and e["event_data"].get("task") == task)


@pytest.mark.long
def test_provision_and_status_through_ansible_runner(localcloud, ansible_env, tmp_path):
    token = new_project(localcloud, "runner")
    extravars = {"admin_public_key": PUBLIC_KEY, "admin_sources": ["203.0.113.7/32"]}
    stack = scenario("minimal")

    # provision.yml for real, then status.yml reads it back: in sync, every declared resource in its rows
    provision = run("provision.yml", ansible_env, token, tmp_path / "provision", extravars)
    assert (provision.status, provision.rc) == ("successful", 0), provision.stdout.read()[-3000:]
    assert project_inventory(localcloud, token) == declared_names(stack)
    status = run("status.yml", ansible_env, token, tmp_path / "status",
                 dict(extravars, status_dir=str(tmp_path / "report")))
    assert (status.status, status.rc) == ("successful", 0), status.stdout.read()[-3000:]
    info = task_result(status, "Read the stack, its cost, drift and health (reads only)")
    assert info["in_sync"] and not any(info["drift"].values())
    assert sorted(r["name"] for r in info["resources"] if r["type"] == "server") == declared_names(stack)["servers"]
    assert (tmp_path / "report" / "status.md").is_file()
