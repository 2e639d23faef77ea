# Copyright (c) 2026, autoscale.hetzner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The node_exporter role's stack cost collector (roles/node_exporter/files/textfile-stack_cost) against
the local cloud, run as its unit runs it on the monitoring host: Debian's python3 with pricing.py beside
the script, a read-only token in a file, no PYTHON* environment.

Its metric equals the sum this test adds up from the raw /pricing answer and the declaration (test_cost's
expected_cost, without the collection's code); a price changed in the local cloud's catalogue changes it;
resources outside the stack do not count; the output passes `promtool check metrics`; the token never
appears in any output; a refused token, an unknown stack or an unreachable API fail with the reason
and print no metrics (the unit then keeps the last file)."""
from __future__ import annotations

import copy
import shutil
import socket
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
import requests

from test_cost import expected_cost, get_pricing
from test_stack import admin_url, run_provision, scenario

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "roles" / "node_exporter" / "files" / "textfile-stack_cost"
PRICING = ROOT / "plugins" / "module_utils" / "pricing.py"
PROMTOOL = Path(sys.executable).parent / "promtool"
# Debian's interpreter, as on the hosts (the collector may use nothing but the standard library).
HOST_PYTHON = "/usr/bin/python3"


@pytest.fixture(scope="module")
def collector(tmp_path_factory):
    """The collector installed as the role installs it: the script with pricing.py beside it."""
    directory = tmp_path_factory.mktemp("libexec")
    shutil.copy(SCRIPT, directory / SCRIPT.name)
    shutil.copy(PRICING, directory / "pricing.py")
    return directory / SCRIPT.name


def new_project_tokens(localcloud, name):
    """(read & write token, read-only token) of a project of its own."""
    answer = requests.post(admin_url(localcloud, "/_localcloud/projects"), json={"name": name}, timeout=10)
    answer.raise_for_status()
    return answer.json()["token"], answer.json()["readonly_token"]


def run_collector(collector, tmp_path, endpoint, token, *args):
    token_file = tmp_path / "token"
    token_file.write_text(token + "\n")
    token_file.chmod(0o600)
    # -E -s: no PYTHON* variables, no user site (the unit's environment); the script's directory is on sys.path.
    return subprocess.run([HOST_PYTHON, "-E", "-s", str(collector), "--endpoint", endpoint,
                           "--token-file", str(token_file), *args],
                          capture_output=True, text=True, timeout=120, check=False, env={"PATH": "/usr/bin:/bin"})


def samples(text):
    """{(metric name, frozenset of label pairs): value} of Prometheus's text format."""
    found = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        series, value = line.rsplit(" ", 1)
        name, _, labels = series.partition("{")
        pairs = frozenset(tuple(p.split("=", 1)) for p in labels.rstrip("}").split(",") if p) if labels else frozenset()
        found[(name, frozenset((k, v.strip('"')) for k, v in pairs))] = Decimal(value)
    return found


def value(found, name, **labels):
    matches = [v for (n, pairs), v in found.items() if n == name and set(labels.items()) <= set(pairs)]
    assert len(matches) == 1, (name, labels, sorted(found))
    return matches[0]


@pytest.fixture(scope="module")
def priced_stack(localcloud, run_playbook):
    """The production scenario, with backups on the app tier and a floating IP, provisioned in a project of its
    own; plus a server outside any stack and one of another stack, which must not count."""
    token, readonly = new_project_tokens(localcloud, "stack-cost")
    stack = scenario("production")
    for tier in stack["tiers"]:
        if tier["name"] == "app":
            tier["backups"] = True
    stack["floating_ips"] = [{"name": "autoscale-prod-ip", "type": "ipv4", "server": "autoscale-prod-web-1"}]
    result, data = run_provision(run_playbook, token, stack=stack)
    assert result.rc == 0 and data is not None, result.output[-3000:]
    headers = {"Authorization": "Bearer " + token}
    for name, labels in (("hand-made", {}), ("other-stack-1", {"managed-by": "autoscale.hetzner.stack", "stack": "other"})):
        answer = requests.post(localcloud["endpoint"] + "/servers", headers=headers, timeout=10, json={
            "name": name, "server_type": "cx23", "image": "debian-12", "location": "fsn1", "labels": labels})
        assert answer.status_code == 201, answer.text
    return {"stack": stack, "token": token, "readonly": readonly}


def test_the_metric_is_the_sum_of_the_apis_prices_and_follows_a_price_change(localcloud, priced_stack, collector,
                                                                             tmp_path):
    stack, readonly = priced_stack["stack"], priced_stack["readonly"]
    run = run_collector(collector, tmp_path, localcloud["endpoint"], readonly, "--stack", stack["name"], "--budget", "100")
    assert run.returncode == 0, run.stderr
    assert run.stderr == ""
    pricing = get_pricing(localcloud, readonly)
    gross, net = expected_cost(pricing, stack)
    found = samples(run.stdout)
    base = {"stack": stack["name"], "currency": pricing["currency"]}
    assert value(found, "autoscale_stack_monthly_cost", price="gross", **base) == gross
    assert value(found, "autoscale_stack_monthly_cost", price="net", **base) == net
    assert value(found, "autoscale_stack_monthly_budget", **base) == 100
    # Per resource type: adds up to the total, and every type this stack has is there.
    by_type = {dict(pairs)["type"]: v for (n, pairs), v in found.items()
               if n == "autoscale_stack_monthly_cost_by_type" and ("price", "gross") in pairs}
    assert sum(by_type.values()) == gross
    for kind in ("server", "backup", "primary_ipv4", "volume", "load_balancer", "floating_ip"):
        assert by_type[kind] > 0, (kind, by_type)
    assert by_type["volume"] == 200 * Decimal(pricing["volume"]["price_per_gb_month"]["gross"])
    assert value(found, "autoscale_stack_cost_last_success_timestamp_seconds", stack=stack["name"]) > 1.7e9
    assert priced_stack["token"] not in run.stdout and readonly not in run.stdout
    if PROMTOOL.exists():
        lint = subprocess.run([str(PROMTOOL), "check", "metrics"], input=run.stdout, capture_output=True, text=True,
                              timeout=60, check=False)
        assert lint.returncode == 0, lint.stdout + lint.stderr

    # Hetzner raises the price of the web tier's server type where it runs: the metric follows.
    web = next(t for t in stack["tiers"] if t["name"] == "web")
    location = web["servers"][0].get("location") or web.get("location") or stack["location"]
    count = sum(1 for s in web["servers"] if (s.get("location") or web.get("location") or stack["location"]) == location)
    changed = copy.deepcopy(pricing)
    entry = next(p for t in changed["server_types"] if t["name"] == web["server_type"] for p in t["prices"]
                 if p["location"] == location)
    entry["price_monthly"] = {key: str(Decimal(entry["price_monthly"][key]) + 10) for key in ("net", "gross")}
    answer = requests.put(admin_url(localcloud, "/_localcloud/pricing"), json=changed, timeout=10)
    assert answer.status_code == 200, answer.text
    try:
        again = run_collector(collector, tmp_path, localcloud["endpoint"], readonly, "--stack", stack["name"])
    finally:
        requests.delete(admin_url(localcloud, "/_localcloud/pricing"), timeout=10).raise_for_status()
    assert again.returncode == 0, again.stderr
    after = samples(again.stdout)
    assert value(after, "autoscale_stack_monthly_cost", price="gross", **base) == gross + 10 * count
    assert value(after, "autoscale_stack_monthly_cost", price="gross", **base) == expected_cost(changed, stack)[0]
    # Without a budget there is no budget metric (and no StackOverBudget).
    assert not any(name == "autoscale_stack_monthly_budget" for name, _ in after)


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("case", ["refused token", "unknown stack", "unreachable API", "bad budget"])
def test_a_failure_says_why_prints_no_metrics_and_never_the_token(localcloud, priced_stack, collector, tmp_path, case):
    endpoint, token, stack = localcloud["endpoint"], priced_stack["readonly"], priced_stack["stack"]["name"]
    args = ["--stack", stack]
    expected = {
        "refused token": "401 unauthorized",
        "unknown stack": "no server, volume, load balancer or floating IP has the labels "
                         "managed-by=autoscale.hetzner.stack,stack=autoscale-typo",
        "unreachable API": "cannot reach the API",
        "bad budget": "--budget: -5 is not a positive monthly amount",
    }[case]
    if case == "refused token":
        token = "f" * 64
    elif case == "unknown stack":
        args = ["--stack", "autoscale-typo"]
    elif case == "unreachable API":
        endpoint = "http://127.0.0.1:%d/v1" % free_port()
    else:
        args += ["--budget", "-5"]
    run = run_collector(collector, tmp_path, endpoint, token, *args)
    assert run.returncode != 0
    assert expected in run.stderr, run.stderr
    assert run.stdout == ""
    for secret in (token, priced_stack["token"], priced_stack["readonly"]):
        assert secret not in run.stderr
