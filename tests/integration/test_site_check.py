# Copyright (c) 2026, autoscale.hetzner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""`ansible-playbook playbooks/site.yml --check` on an EMPTY project (no machines needed): it shows the stack's
plan (what a run creates, its cost from the API's /pricing), says that the configuration plays need the servers,
ends cleanly (rc 0) and writes nothing. Before, it failed at "Check the stack has servers"."""

from __future__ import annotations

import json
from decimal import Decimal

import requests

from conftest import ROOT
from test_stack import PUBLIC_KEY, admin_url, declared_names, new_project, project_inventory, scenario, server_stats

CHECK_MESSAGE_TASK = "Say what a run without --check does (check mode, the stack has no servers yet)"


def tasks_by_play(output: str) -> dict[str, dict[str, dict]]:
    """play name -> task name -> localhost's result, from the ansible.posix.json callback."""
    data = json.loads(output)
    return {play["play"]["name"]: {t["task"]["name"]: t["hosts"].get("localhost", {}) for t in play["tasks"]}
            for play in data["plays"]}


def test_site_check_on_an_empty_project_shows_the_plan_and_its_cost_and_ends_cleanly(localcloud, run_playbook):
    token = new_project(localcloud, "site-check-empty")
    requests.delete(admin_url(localcloud, "/_localcloud/stats"), timeout=10).raise_for_status()
    result = run_playbook(str(ROOT / "playbooks" / "site.yml"), check=True,
                          extra_vars={"admin_public_key": PUBLIC_KEY, "admin_sources": ["203.0.113.7/32"]},
                          args=["-i", str(ROOT / "inventories" / "minimal")],
                          env={"HCLOUD_TOKEN": token, "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json"})
    assert result.rc == 0, result.output[-4000:]
    plays = tasks_by_play(result.stdout)

    # The plan: every resource of the minimal scenario to create, with the cost from /pricing.
    stack = plays["Provision the Hetzner Cloud stack"]["Converge stack autoscale-min"]
    created = sorted((e["type"], e["name"]) for e in stack["plan"] if e["action"] == "create")
    declared = declared_names(scenario("minimal"))
    assert [name for kind, name in created if kind == "server"] == declared["servers"]
    assert len(created) == sum(len(names) for names in declared.values()) == stack["summary"]["create"]
    monthly = Decimal(stack["cost"]["monthly"]["gross"])
    assert monthly > 0 and Decimal(stack["cost"]["change"]["monthly"]["gross"]) == monthly
    assert "Cost (prices from GET /pricing" in stack["summary"]["text"]

    # The run says why it stops, with the plan's counts and cost, then ends: no configuration play runs.
    wait = plays["Wait for the servers"]
    message = " ".join(wait[CHECK_MESSAGE_TASK]["msg"])
    assert f"({len(created)} to create, 0 to update, 0 to delete), {monthly:.2f} EUR/month" in message, message
    assert "need the servers to exist" in message and "without --check" in message, message
    assert "Check the stack has servers" not in wait, "the play must end before the assertion"
    for play in ("Wait until every server answers SSH and cloud-init is done", "Security baseline on every host",
                 "PostgreSQL on the database servers", "Web tier, in batches", "Scrape, alert and probe on the monitoring host"):
        assert plays[play] == {}, (play, plays[play])
    # verify.yml's summary (service health, URLs, cost of the servers that exist) is not shown for a plan.
    assert list(plays["Ask the stack's URLs from the controller, as a client does"]) == [
        "End here when site.yml only planned (check mode, no servers yet)"]
    stats = json.loads(result.stdout)["stats"]
    assert stats["localhost"]["failures"] == 0 and set(stats) == {"localhost"}, stats

    # Nothing was written: the project is still empty and the API saw only reads.
    assert all(not names for names in project_inventory(localcloud, token).values())
    routes = server_stats(localcloud)["by_route"]
    assert routes and all(route.startswith("GET ") for route in routes), routes
