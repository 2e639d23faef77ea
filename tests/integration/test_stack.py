# Copyright (c) 2026, autoscale.hetzner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""autoscale.hetzner.stack against the local cloud: the production scenario end to end, under
injected faults, and killed at random points."""

from __future__ import annotations

import copy
import json
import sys
import time
from collections import Counter
from pathlib import Path

import requests
import yaml

# --------------------------------------------------------------------------- helpers (test_inventory.py uses them too)

ROOT = Path(__file__).resolve().parents[2]
PUBLIC_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPxVf7L/6fLNm6rfdpaJnp0rD7mA4X61GgFWQSvbD24B test@autoscale"
STACK_LABEL = "managed-by=autoscale.hetzner.stack"
KIND_PATHS = ["ssh_keys", "networks", "firewalls", "placement_groups", "servers", "volumes", "load_balancers",
              "floating_ips"]


def admin_url(localcloud, path):
    return localcloud["endpoint"].rsplit("/v1", 1)[0] + path


def new_project(localcloud, name):
    """A project of its own (and its token) so tests do not see each other's resources."""
    answer = requests.post(admin_url(localcloud, "/_localcloud/projects"), json={"name": name}, timeout=10)
    answer.raise_for_status()
    return answer.json()["token"]


def set_faults(localcloud, config):
    answer = requests.put(admin_url(localcloud, "/_localcloud/faults"), json=config, timeout=10)
    answer.raise_for_status()
    return answer.json()


def clear_faults(localcloud):
    requests.delete(admin_url(localcloud, "/_localcloud/faults"), timeout=10).raise_for_status()


def server_stats(localcloud):
    return requests.get(admin_url(localcloud, "/_localcloud/stats"), timeout=10).json()


def list_all(localcloud, token, path):
    items, page = [], 1
    while page:
        answer = requests.get("%s/%s" % (localcloud["endpoint"], path), params={"page": page, "per_page": 50},
                              headers={"Authorization": "Bearer " + token}, timeout=10)
        answer.raise_for_status()
        data = answer.json()
        items.extend(data[path])
        page = data["meta"]["pagination"]["next_page"]
    return items


def project_inventory(localcloud, token):
    """{kind path: sorted names} of everything in the project."""
    return {path: sorted(str(o.get("name")) for o in list_all(localcloud, token, path)) for path in KIND_PATHS}


def scenario(name):
    """The hetzner_stack of inventories/<name>, as the playbook would see it (templates resolved)."""
    if str(ROOT / "tests") not in sys.path:
        sys.path.insert(0, str(ROOT / "tests"))
    from scenarios import scenario as rendered  # pylint: disable=import-outside-toplevel
    return rendered(name, admin_public_key=PUBLIC_KEY)


def declared_names(stack):
    names = {path: [] for path in KIND_PATHS}
    for key in ("ssh_keys", "networks", "firewalls", "placement_groups", "volumes", "load_balancers", "floating_ips"):
        names[key] = sorted(item["name"] for item in stack.get(key) or [])
    names["servers"] = sorted(s["name"] for tier in stack.get("tiers") or [] for s in tier["servers"])
    return names


def run_provision(run_playbook, token, inventory="production", stack=None, check=False, diff=False, prune=False,
                  extra=None, env=None):
    """Run playbooks/provision.yml; return (PlaybookResult, stack task result or None)."""
    extra_vars = {"admin_public_key": PUBLIC_KEY, "admin_sources": ["198.51.100.0/24"], "prune": prune}
    if stack is not None:
        extra_vars["hetzner_stack"] = stack
    extra_vars.update(extra or {})
    result = run_playbook(str(ROOT / "playbooks" / "provision.yml"), extra_vars=extra_vars, check=check, diff=diff,
                          args=["-i", str(ROOT / "inventories" / inventory / "hosts.ini")],
                          env=dict({"HCLOUD_TOKEN": token, "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json"}, **(env or {})))
    return result, stack_result(result)


def stack_result(result):
    try:
        data = json.loads(result.stdout)
    except ValueError:
        return None
    for play in data.get("plays") or []:
        for task in play.get("tasks") or []:
            if task["task"]["name"].startswith("Converge stack"):
                return task["hosts"].get("localhost")
    return None


def plan_keys(result):
    return sorted((e["action"], e["type"], e["name"]) for e in result["plan"])


# --------------------------------------------------------------------------- tests

def converge(run_playbook, token, attempts=6, **kwargs):
    """Run provision.yml until it succeeds (a failed run must leave a state the next one continues)."""
    outputs = []
    for _ in range(attempts):
        result, data = run_provision(run_playbook, token, **kwargs)
        if result.rc == 0:
            return data
        outputs.append(result.output[-3000:])
    raise AssertionError("did not converge in %d runs:\n%s" % (attempts, "\n-----\n".join(outputs)))


def assert_exactly_declared(localcloud, token, stack):
    """Every declared resource exists once, nothing else exists (no duplicates, no orphans)."""
    actual = project_inventory(localcloud, token)
    assert actual == declared_names(stack)
    for path in actual:
        for obj in list_all(localcloud, token, path):
            assert obj["labels"]["managed-by"] == "autoscale.hetzner.stack", (path, obj["name"])
            assert obj["labels"]["stack"] == stack["name"], (path, obj["name"])


def test_production_check_create_rerun_change_prune(localcloud, run_playbook):
    token = new_project(localcloud, "stack-production")
    stack = scenario("production")

    # check mode: the full plan, nothing created
    result, planned = run_provision(run_playbook, token, check=True, diff=True)
    assert result.rc == 0, result.output
    assert planned["changed"] is True
    # one create per declared resource (the scenario grows with the product: count from the declaration)
    declared = sum(len(names) for names in declared_names(stack).values())
    assert declared >= 16
    assert Counter(e["action"] for e in planned["plan"]) == {"create": declared}
    assert "+ server autoscale-prod-web-1" in planned["diff"]["prepared"]
    assert all(not names for names in project_inventory(localcloud, token).values())

    # the real run carries out exactly that plan
    result, created = run_provision(run_playbook, token)
    assert result.rc == 0, result.output
    assert plan_keys(created) == plan_keys(planned)
    assert_exactly_declared(localcloud, token, stack)
    servers = {s["name"]: s for s in list_all(localcloud, token, "servers")}
    assert servers["autoscale-prod-db-2"]["private_net"][0]["ip"] == "10.0.3.11"
    assert servers["autoscale-prod-web-1"]["labels"]["tier"] == "web"
    assert all(s["status"] == "running" for s in servers.values())
    lb = list_all(localcloud, token, "load_balancers")[0]
    assert lb["private_net"][0]["ip"] == "10.0.1.100"
    assert lb["services"][0]["health_check"]["http"]["path"] == "/healthz"
    volumes = {v["name"]: v for v in list_all(localcloud, token, "volumes")}
    assert volumes["autoscale-prod-db-1-data"]["server"] == servers["autoscale-prod-db-1"]["id"]

    # no-change rerun: nothing to do, one list per resource type and GET /pricing (counted by the module and by the cloud)
    before = server_stats(localcloud)["total"]
    result, rerun = run_provision(run_playbook, token)
    assert result.rc == 0, result.output
    assert rerun["changed"] is False and rerun["plan"] == []
    assert rerun["api_requests"] <= 9
    assert server_stats(localcloud)["total"] - before == rerun["api_requests"]

    # one attribute changes -> exactly that change, in check mode and for real
    stack["volumes"][0]["size"] = 120
    result, planned = run_provision(run_playbook, token, stack=stack, check=True)
    assert result.rc == 0, result.output
    assert planned["plan"] == [{"action": "update", "type": "volume", "name": "autoscale-prod-db-1-data",
                                "changes": {"size": {"before": 100, "after": 120}}, "requests": 1}]
    result, changed = run_provision(run_playbook, token, stack=stack)
    assert result.rc == 0, result.output
    assert changed["plan"] == planned["plan"]
    assert {v["name"]: v["size"] for v in list_all(localcloud, token, "volumes")}["autoscale-prod-db-1-data"] == 120

    # a tier leaves the declaration: reported, kept without prune, deleted with prune
    stack["tiers"] = [t for t in stack["tiers"] if t["name"] != "app"]
    stack["placement_groups"] = [g for g in stack["placement_groups"] if g["name"] != "autoscale-prod-app"]
    result, kept = run_provision(run_playbook, token, stack=stack)
    assert result.rc == 0, result.output
    assert kept["changed"] is False
    assert "autoscale-prod-app-1" in project_inventory(localcloud, token)["servers"]
    assert kept["undeclared"] == [{"type": "placement_group", "name": "autoscale-prod-app"},
                                  {"type": "server", "name": "autoscale-prod-app-1"},
                                  {"type": "server", "name": "autoscale-prod-app-2"}] or sorted(
        (u["type"], u["name"]) for u in kept["undeclared"]) == [
        ("placement_group", "autoscale-prod-app"), ("server", "autoscale-prod-app-1"), ("server", "autoscale-prod-app-2")]
    assert "! server autoscale-prod-app-1: no longer declared, kept" in kept["summary"]["text"]
    # emptying a tier needs its name in prune_tiers: refused (nothing deleted), then allowed
    result, refused = run_provision(run_playbook, token, stack=stack, prune=True)
    assert result.rc != 0 and refused["changed"] is False
    assert "tier 'app' would lose all its servers" in refused["msg"]
    assert "autoscale-prod-app-1" in project_inventory(localcloud, token)["servers"]
    result, pruned = run_provision(run_playbook, token, stack=stack, prune=True, extra={"prune_tiers": ["app"]})
    assert result.rc == 0, result.output
    assert plan_keys(pruned) == [("delete", "placement_group", "autoscale-prod-app"),
                                 ("delete", "server", "autoscale-prod-app-1"),
                                 ("delete", "server", "autoscale-prod-app-2")]
    assert_exactly_declared(localcloud, token, stack)


def test_minimal_scenario_converges_is_idempotent_and_powers_on_a_server_stopped_outside(localcloud, run_playbook):
    token = new_project(localcloud, "stack-minimal")
    stack = scenario("minimal")
    result, planned = run_provision(run_playbook, token, inventory="minimal", check=True)
    assert result.rc == 0, result.output
    assert Counter(e["type"] for e in planned["plan"]) == {
        "ssh_key": 1, "network": 1, "firewall": 2, "server": 4, "volume": 1}
    result, created = run_provision(run_playbook, token, inventory="minimal")
    assert result.rc == 0, result.output
    assert plan_keys(created) == plan_keys(planned)
    assert_exactly_declared(localcloud, token, stack)
    result, rerun = run_provision(run_playbook, token, inventory="minimal")
    assert result.rc == 0 and rerun["changed"] is False and rerun["api_requests"] < 15

    # convergence means running: a server powered off by someone else is powered on by the next run
    stopped = list_all(localcloud, token, "servers")[0]
    power_off(localcloud, token, stopped["id"])
    result, repaired = run_provision(run_playbook, token, inventory="minimal")
    assert result.rc == 0, result.output[-3000:]
    assert repaired["changed"] is True and plan_keys(repaired) == [("update", "server", stopped["name"])]
    assert all(s["status"] == "running" for s in list_all(localcloud, token, "servers"))
    result, rerun = run_provision(run_playbook, token, inventory="minimal")
    assert result.rc == 0 and rerun["changed"] is False


def power_off(localcloud, token, server_id):
    """POST poweroff as another client would, and wait until the server is off."""
    headers = {"Authorization": "Bearer " + token}
    answer = requests.post("%s/servers/%d/actions/poweroff" % (localcloud["endpoint"], server_id), headers=headers,
                           timeout=10)
    assert answer.status_code == 201, answer.text
    deadline = time.monotonic() + 60
    while requests.get("%s/servers/%d" % (localcloud["endpoint"], server_id), headers=headers,
                       timeout=10).json()["server"]["status"] != "off":
        assert time.monotonic() < deadline, "the server did not power off"
        time.sleep(0.2)


def test_expert_validation_fails_before_anything_is_created(localcloud, run_playbook):
    token = new_project(localcloud, "stack-validation")
    stack = scenario("production")
    stack["tiers"][0]["server_type"] = "cx22"            # withdrawn: not orderable since 2026-01-01
    stack["tiers"][1]["servers"][0]["ip"] = "10.0.9.10"  # outside every subnet
    stack["tiers"][2]["servers"][1]["ip"] = "10.0.3.10"  # the primary's address
    result, data = run_provision(run_playbook, token, stack=stack)
    assert result.rc != 0
    message = data["msg"]
    assert "nothing was changed" in message
    assert "cx22" in message and "cx23" in message
    assert "10.0.9.10" in message
    assert "10.0.3.10" in message
    assert all(not names for names in project_inventory(localcloud, token).values())


def test_foreign_resources_are_never_touched(localcloud, run_playbook):
    token = new_project(localcloud, "stack-foreign")
    stack = scenario("minimal")
    # somebody else's network with a declared name
    answer = requests.post(
        "%s/networks" % localcloud["endpoint"], json={"name": "autoscale-min-network", "ip_range": "10.5.0.0/16"},
        headers={"Authorization": "Bearer " + token}, timeout=10)
    assert answer.status_code == 201
    result, data = run_provision(run_playbook, token, inventory="minimal")
    assert result.rc != 0
    assert "not managed by stack" in data["msg"]
    assert project_inventory(localcloud, token)["servers"] == []
    assert stack["name"] == "autoscale-min"


def test_protected_resources_block_teardown(localcloud, run_playbook):
    token = new_project(localcloud, "stack-teardown")
    stack = scenario("production")
    converge(run_playbook, token, stack=stack)
    absent = ("- hosts: localhost\n  gather_facts: false\n"
              "  vars:\n    ansible_python_interpreter: \"{{ ansible_playbook_python }}\"\n  tasks:\n"
              "    - name: Converge stack teardown\n      autoscale.hetzner.stack:\n"
              "        name: autoscale-prod\n        state: absent\n")
    result = run_playbook(absent, env={"HCLOUD_TOKEN": token})
    assert result.rc != 0
    assert "delete-protected" in result.output
    assert project_inventory(localcloud, token)["servers"]  # nothing deleted
    for tier in stack["tiers"]:
        tier["delete_protection"] = False
    converge(run_playbook, token, stack=stack)
    result = run_playbook(absent, env={"HCLOUD_TOKEN": token})
    assert result.rc == 0, result.output
    assert all(not names for names in project_inventory(localcloud, token).values())
