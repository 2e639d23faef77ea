# Copyright (c) 2026, autoscale.hetzner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""autoscale.hetzner.stack when things go wrong: injected faults of every kind, failing actions,
kill -9 of the playbook and of the local cloud, two runs at once, and typos with prune=true.

"Exact" means: every declared resource exists once and nothing else (no duplicates, no orphans, no
lock left behind), every server runs and is attached with its declared private IP, every volume is
attached to its server, the load balancer has its target, and a rerun has nothing to do.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest
import requests

from localcloud.testing import start_cloud

from test_stack import (  # noqa: E402  pylint: disable=wrong-import-position
    PUBLIC_KEY, ROOT, admin_url, assert_exactly_declared, clear_faults, list_all, new_project, project_inventory,
    run_provision, scenario, server_stats, set_faults,
)
from test_invalid_declarations import writes  # noqa: E402  pylint: disable=wrong-import-position


def assert_converged(localcloud, token, stack):
    """Exactly the declaration, running and attached, and a rerun has nothing to do."""
    assert_exactly_declared(localcloud, token, stack)
    servers = {s["name"]: s for s in list_all(localcloud, token, "servers")}
    networks = {n["id"]: n["name"] for n in list_all(localcloud, token, "networks")}
    for tier in stack["tiers"]:
        for declared in tier["servers"]:
            server = servers[declared["name"]]
            assert server["status"] == "running", (server["name"], server["status"])
            attached = {networks[p["network"]]: p["ip"] for p in server["private_net"]}
            assert attached == {tier["network"]: declared["ip"]}, (server["name"], attached)
    for volume in list_all(localcloud, token, "volumes"):
        declared = next(v for v in stack["volumes"] if v["name"] == volume["name"])
        assert volume["server"] == servers[declared["server"]]["id"], volume["name"]
    for lb in list_all(localcloud, token, "load_balancers"):
        assert [t["type"] for t in lb["targets"]] == ["label_selector"], lb["targets"]
        assert lb["private_net"] and lb["private_net"][0]["ip"] == "10.0.1.100"


def rerun_changes_nothing(run_playbook, token, stack):
    result, rerun = run_provision(run_playbook, token, stack=stack)
    assert result.rc == 0, result.output[-3000:]
    assert rerun["changed"] is False, rerun["plan"]


def faults_injected(localcloud):
    return requests.get(admin_url(localcloud, "/_localcloud/faults"), timeout=10).json()["injected"]


FAULTS = {
    "429": {"rates": {"429": 0.15}},
    "502-lost-answers": {"rates": {"502": 0.15}, "phase": "mixed"},
    "503-lost-answers": {"rates": {"503": 0.15}, "phase": "mixed"},
    "504-lost-answers": {"rates": {"504": 0.15}, "phase": "mixed"},
    "409": {"rates": {"409": 0.15}},
    "slow": {"slow": {"rate": 0.2, "seconds": 2.0}},
}


@pytest.mark.parametrize("kind", sorted(FAULTS))
def test_one_run_converges_exactly_under_each_kind_of_fault(localcloud, run_playbook, kind):
    token = new_project(localcloud, "faults-" + kind)
    stack = scenario("production")
    set_faults(localcloud, dict(FAULTS[kind], seed=17))
    try:
        result, created = run_provision(run_playbook, token, stack=stack)
        injected = faults_injected(localcloud)
    finally:
        clear_faults(localcloud)
    assert injected["requests"] > 0, injected
    assert result.rc == 0, result.output[-4000:]
    assert created["changed"] is True
    assert_converged(localcloud, token, stack)
    rerun_changes_nothing(run_playbook, token, stack)


def test_failing_actions_converge_within_three_runs_and_the_run_says_what_it_repaired(localcloud, run_playbook):
    token = new_project(localcloud, "failing-actions")
    stack = scenario("production")
    set_faults(localcloud, {"seed": 5, "fail_actions": {"rate": 0.1}})
    outcomes = []
    try:
        for _ in range(3):
            result, data = run_provision(run_playbook, token, stack=stack)
            outcomes.append((result, data))
            if result.rc == 0:
                break
        injected = faults_injected(localcloud)
    finally:
        clear_faults(localcloud)
    result, last = outcomes[-1]
    assert result.rc == 0, "\n-----\n".join(r.output[-3000:] for r, _d in outcomes)
    assert injected["actions"] > 0
    reported = [failure for _r, data in outcomes for failure in (data or {}).get("failures") or []]
    assert reported, "the failed actions were not reported"
    assert any("failed: " in failure and "action_failed" in failure for failure in reported), reported
    # the run that converged says what it repaired: failures of this run repaired by its re-plan, or
    # (after a failed run) the repairs in its plan
    assert last["repaired"] or any(e["action"] == "update" for e in last["plan"]) or len(outcomes) == 1 and \
        not last["failures"], last
    if last["failures"]:
        assert last["repaired"], last
    assert_converged(localcloud, token, stack)
    rerun_changes_nothing(run_playbook, token, stack)


def provision_command(stack, inventory="production"):
    extra = json.dumps({"admin_public_key": PUBLIC_KEY, "admin_sources": ["198.51.100.0/24"], "hetzner_stack": stack})
    return [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i",
            str(ROOT / "inventories" / inventory / "hosts.ini"), str(ROOT / "playbooks" / "provision.yml"), "-e", extra]


@pytest.mark.long
def test_killed_at_ten_random_moments_the_first_rerun_converges(localcloud, run_playbook, ansible_env):
    stack = scenario("production")
    rng = random.Random(11)
    partial = 0
    with slower_actions(localcloud, {"create_server": 3, "attach_to_network": 1, "create_load_balancer": 1}):
        for attempt in range(10):
            partial += kill_and_rerun(localcloud, run_playbook, ansible_env, stack, rng, attempt)
    assert partial >= 3, "the kills did not land in the middle of runs often enough to mean anything"


@contextlib.contextmanager
def slower_actions(localcloud, action_times):
    """Actions that take a few seconds, so that a run lasts long enough to be interrupted anywhere."""
    url = admin_url(localcloud, "/_localcloud/config")
    saved = requests.get(url, timeout=10).json()["action_times"]
    requests.put(url, json={"action_times": action_times}, timeout=10).raise_for_status()
    try:
        yield
    finally:
        requests.put(url, json={"action_times": saved}, timeout=10).raise_for_status()


def descendants(pid):
    """Every process below ``pid`` (ansible-core runs each worker in a session of its own, so killing the
    playbook's process group leaves the worker and the module running)."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open("/proc/%s/stat" % entry) as handle:
                    parent = int(handle.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def kill_tree(proc):
    """kill -9 of the playbook and of every process it started, as a crash would. The tree is frozen
    first (SIGSTOP: no new process can appear), then every process group in it is killed: a module
    started by a worker just now is in the worker's group even when the worker is gone already."""
    own = os.getpgrp()
    frozen = set()
    for _ in range(3):
        for pid in [proc.pid] + descendants(proc.pid):
            if pid not in frozen:
                try:
                    os.kill(pid, signal.SIGSTOP)
                    frozen.add(pid)
                except ProcessLookupError:
                    pass
    groups = set()
    for pid in frozen:
        try:
            groups.add(os.getpgid(pid))
        except ProcessLookupError:
            pass
    for group in groups - {own}:
        try:
            os.killpg(group, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for pid in frozen:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait()


def kill_and_rerun(localcloud, run_playbook, ansible_env, stack, rng, attempt):
    """Kill a first run at a random moment of its apply; the first rerun must converge. 1 if the kill
    landed in the middle (something was there, something was missing), else 0."""
    token = new_project(localcloud, "kill-%d" % attempt)
    env = dict(ansible_env, HCLOUD_TOKEN=token)
    proc = subprocess.Popen(provision_command(stack), env=env, cwd=str(ROOT), stdout=subprocess.DEVNULL,  # pylint: disable=consider-using-with
                            stderr=subprocess.DEVNULL, start_new_session=True)
    # the first write of a run is its lock: from then on, kill at a random moment of the apply
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None and not list_all(localcloud, token,
                                                                              "placement_groups"):
        time.sleep(0.05)
    time.sleep(rng.uniform(0.0, 8.0))
    kill_tree(proc)
    left = project_inventory(localcloud, token)
    result, rerun = run_provision(run_playbook, token, stack=stack)
    assert result.rc == 0, "attempt %d, first rerun failed:\n%s" % (attempt, result.output[-4000:])
    assert_converged(localcloud, token, stack)
    return 1 if any(left.values()) and rerun["changed"] else 0


def test_local_cloud_killed_mid_run_then_restarted_the_rerun_is_exact(tmp_path, run_playbook, ansible_env):
    state = tmp_path / "cloud"
    cloud = start_cloud(state, "--action-time", "0.2", "--rate-limit", "0")
    port = int(cloud.endpoint.rsplit(":", 1)[1].split("/")[0])
    token = cloud.token
    stack = scenario("production")
    env = {"HCLOUD_ENDPOINT": cloud.endpoint, "HCLOUD_TOKEN": token}
    fake_localcloud = {"endpoint": cloud.endpoint}
    try:
        proc = subprocess.Popen(provision_command(stack), env=dict(ansible_env, **env),  # pylint: disable=consider-using-with
                                cwd=str(ROOT), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not list_all(fake_localcloud, token, "servers"):
            time.sleep(0.2)
        assert list_all(fake_localcloud, token, "servers"), "the run never got to the servers"
        cloud.stop(signal.SIGKILL)
        time.sleep(1)
        cloud = start_cloud(state, "--action-time", "0.2", "--rate-limit", "0", port=port)
        proc.wait(timeout=600)
        result, rerun = run_provision(run_playbook, token, stack=stack, env=env)
        assert result.rc == 0, result.output[-4000:]
        assert_converged(fake_localcloud, token, stack)
        rerun_changes_nothing_at(run_playbook, token, stack, env)
    finally:
        cloud.stop()


def rerun_changes_nothing_at(run_playbook, token, stack, env):
    result, rerun = run_provision(run_playbook, token, stack=stack, env=env)
    assert result.rc == 0, result.output[-3000:]
    assert rerun["changed"] is False, rerun["plan"]


@pytest.mark.long
def test_two_runs_at_once_serialize_and_a_run_that_may_not_wait_fails_cleanly(localcloud, run_playbook,
                                                                               ansible_env):
    token = new_project(localcloud, "concurrent")
    stack = scenario("production")
    env = dict(ansible_env, HCLOUD_TOKEN=token)
    first = subprocess.Popen(provision_command(stack), env=env, cwd=str(ROOT), stdout=subprocess.PIPE,  # pylint: disable=consider-using-with
                             stderr=subprocess.STDOUT, text=True)
    second = subprocess.Popen(provision_command(stack), env=env, cwd=str(ROOT), stdout=subprocess.PIPE,  # pylint: disable=consider-using-with
                              stderr=subprocess.STDOUT, text=True)
    outputs = [first.communicate(timeout=900)[0], second.communicate(timeout=900)[0]]
    assert first.returncode == 0 and second.returncode == 0, "\n-----\n".join(o[-3000:] for o in outputs)
    assert_converged(localcloud, token, stack)

    # a third run while a fourth holds the lock, not allowed to wait: refused before any change
    token = new_project(localcloud, "concurrent-refused")
    env = dict(ansible_env, HCLOUD_TOKEN=token)
    config = requests.get(admin_url(localcloud, "/_localcloud/config"), timeout=10).json()
    # server creates of 90 s keep the holder busy while the impatient run starts: an ansible-playbook
    # start takes > 20 s on a loaded 2-core host (xdist workers side by side), and then the holder
    # had already released the lock and the impatient run converged instead of being refused
    requests.put(admin_url(localcloud, "/_localcloud/config"), json={"action_times": {"create_server": 90}},
                 timeout=10).raise_for_status()
    holder = subprocess.Popen(provision_command(stack), env=env, cwd=str(ROOT), stdout=subprocess.DEVNULL,  # pylint: disable=consider-using-with
                              stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not any(
                g["name"].startswith("autoscale-stack-lock.") for g in list_all(localcloud, token, "placement_groups")):
            time.sleep(0.1)
        impatient = ("- hosts: localhost\n  gather_facts: false\n"
                     "  vars:\n    ansible_python_interpreter: \"{{ ansible_playbook_python }}\"\n  tasks:\n"
                     "    - name: Converge stack impatient\n      autoscale.hetzner.stack:\n"
                     "        declaration: \"{{ hetzner_stack }}\"\n        lock_timeout: 0\n")
        extra_vars = {"admin_public_key": PUBLIC_KEY, "admin_sources": ["198.51.100.0/24"], "hetzner_stack": stack}
        before = server_stats(localcloud)
        result = run_playbook(impatient, extra_vars=extra_vars, env={"HCLOUD_TOKEN": token})
        during = writes(before, server_stats(localcloud))
        holder_was_running = holder.poll() is None
    finally:
        holder.wait(timeout=900)
        requests.put(admin_url(localcloud, "/_localcloud/config"), json={"action_times": config["action_times"]},
                     timeout=10).raise_for_status()
    assert holder_was_running, "the holder finished before the impatient run: the test proved nothing"
    assert result.rc != 0
    assert "another run is in progress on stack autoscale-prod" in result.output, result.output[-3000:]
    assert "Nothing was changed" in result.output
    assert holder.returncode == 0
    assert_converged(localcloud, token, stack)
    assert during  # the holder was writing meanwhile; the impatient run only tried to take the lock


def test_typos_with_prune_delete_nothing(localcloud, run_playbook):
    token = new_project(localcloud, "typo-prune")
    stack = scenario("production")
    result, _created = run_provision(run_playbook, token, stack=stack)
    assert result.rc == 0, result.output[-3000:]
    before_inventory = project_inventory(localcloud, token)

    typo_key = copy.deepcopy(stack)
    typo_key["tier"] = typo_key.pop("tiers")                 # the whole tier list under a misspelt key
    typo_servers = copy.deepcopy(stack)
    typo_servers["tiers"][1]["server"] = typo_servers["tiers"][1].pop("servers")
    typo_tier_name = copy.deepcopy(stack)
    typo_tier_name["tiers"][0]["name"] = "wbe"                # the load balancer still targets tier web
    forgotten_tier = copy.deepcopy(stack)
    forgotten_tier["tiers"] = [t for t in forgotten_tier["tiers"] if t["name"] != "app"]
    renamed = copy.deepcopy(stack)                          # a search-and-replace gone wrong: 6 deletions
    for tier in renamed["tiers"][:2]:
        for server in tier["servers"]:
            server["name"] = server["name"].replace("autoscale-prod", "autoscale-prd")
            del server["ip"]
    for volume in renamed["volumes"]:
        volume["name"] = volume["name"].replace("autoscale-prod", "autoscale-prd")
    expected = {
        "typo_key": (typo_key, "tier: unknown key; did you mean tiers?"),
        "typo_servers": (typo_servers, "tiers[1].server: unknown key; did you mean servers?"),
        "typo_tier_name": (typo_tier_name, "load_balancers[0].targets[0].tier: this stack has no tier 'web'"),
        "forgotten_tier": (forgotten_tier, "tier 'app' would lose all its servers"),
        "renamed": (renamed, "more than prune_max (5)"),
    }
    for name, (declaration, message) in expected.items():
        before = server_stats(localcloud)
        result, data = run_provision(run_playbook, token, stack=declaration, prune=True)
        assert result.rc != 0, name
        assert data["changed"] is False, name
        assert message in data["msg"], (name, data["msg"])
        assert writes(before, server_stats(localcloud)) == {}, name
        assert project_inventory(localcloud, token) == before_inventory, name
    assert "- server autoscale-prod-web-1" in renamed_plan(run_playbook, token, renamed)


def renamed_plan(run_playbook, token, declaration):
    """The check-mode plan of a prune that deletes: it lists every deletion."""
    result, data = run_provision(run_playbook, token, stack=declaration, prune=True, check=True, diff=True,
                                 extra={"prune_max": 20})
    assert result.rc == 0, result.output[-3000:]
    return data["summary"]["text"]


def test_no_change_run_is_the_eight_lists_and_the_prices_and_takes_no_lock(localcloud, run_playbook):
    token = new_project(localcloud, "no-change")
    stack = scenario("production")
    result, _created = run_provision(run_playbook, token, stack=stack)
    assert result.rc == 0, result.output[-3000:]
    before = server_stats(localcloud)
    result, rerun = run_provision(run_playbook, token, stack=stack)
    after = server_stats(localcloud)
    assert result.rc == 0 and rerun["changed"] is False
    assert after["total"] - before["total"] == rerun["api_requests"] <= 9  # 8 lists + GET /pricing
    assert after["by_route"]["GET /v1/pricing"] - before["by_route"].get("GET /v1/pricing", 0) == 1
    assert writes(before, after) == {}
