# Copyright (c) 2026, autoscale.hetzner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""playbooks/status.yml on the local cloud (no machines): tables with state and cost, drift (a server created
outside the stack, a missing, a changed and an undeclared resource), health, and the report with a diagram of
every resource (Markdown + Mermaid, Graphviz DOT and SVG)."""

from __future__ import annotations

import copy
import html
import json
import re
import shutil
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest
import requests

from conftest import ROOT, free_port
from test_cost import expected_cost, get_pricing
from test_destroy import create_foreign_server
from test_stack import PUBLIC_KEY, admin_url, converge, list_all, new_project, power_off, server_stats

KIND_PATHS = ["servers", "networks", "volumes", "load_balancers", "firewalls", "floating_ips", "placement_groups",
              "ssh_keys"]


def minimal_with_load_balancer():
    import sys  # pylint: disable=import-outside-toplevel
    if str(ROOT / "tests") not in sys.path:
        sys.path.insert(0, str(ROOT / "tests"))
    from scenarios import scenario  # pylint: disable=import-outside-toplevel
    return scenario("minimal", admin_public_key=PUBLIC_KEY, web_load_balancer=True)


def status(run_playbook, token, stack, report_dir, *extra, args=()):
    """status.yml with the JSON callback: (PlaybookResult, stack_info result, the report's files)."""
    extra_vars = {"admin_public_key": PUBLIC_KEY, "hetzner_stack": stack, "status_dir": str(report_dir)}
    for item in extra:
        extra_vars.update(item)
    result = run_playbook(str(ROOT / "playbooks" / "status.yml"), extra_vars=extra_vars,
                          args=["-i", str(ROOT / "inventories" / "minimal" / "hosts.ini"), *args],
                          env={"HCLOUD_TOKEN": token, "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json"})
    data = json.loads(result.stdout)
    tasks = {t["task"]["name"]: t["hosts"]["localhost"] for play in data["plays"] for t in play["tasks"]}
    return result, tasks.get("Read the stack, its cost, drift and health (reads only)"), tasks


def names_in_project(localcloud, token):
    return {path: [o["name"] for o in list_all(localcloud, token, path)] for path in KIND_PATHS}


@pytest.mark.long
def test_status_tables_cost_drift_health_and_diagram(localcloud, run_playbook, tmp_path):
    token = new_project(localcloud, "status")
    stack = minimal_with_load_balancer()
    converge(run_playbook, token, inventory="minimal", stack=stack)
    create_foreign_server(localcloud, token, "made-by-hand")

    # in sync apart from the server made by hand: every resource in the tables and the diagram, the cost from /pricing
    requests.delete(admin_url(localcloud, "/_localcloud/stats"), timeout=10).raise_for_status()
    run, info, tasks = status(run_playbook, token, stack, tmp_path / "first")
    assert run.rc == 0, run.output[-3000:]
    assert all(route.startswith("GET ") for route in server_stats(localcloud)["by_route"])   # reads only
    assert info["in_sync"] is True
    assert info["drift"]["outside"] == [{"type": "server", "name": "made-by-hand"}]
    assert not info["drift"]["missing"] and not info["drift"]["changed"] and not info["drift"]["undeclared"]
    gross, net = expected_cost(get_pricing(localcloud, token), stack)
    assert Decimal(info["cost"]["monthly"]["gross"]) == gross and Decimal(info["cost"]["monthly"]["net"]) == net
    assert Decimal(info["cost"]["declared"]["gross"]) == gross
    hand = next(r for r in info["resources"] if r["name"] == "made-by-hand")
    cx23 = expected_cost(get_pricing(localcloud, token),
                         {"location": "nbg1", "tiers": [{"server_type": "cx23", "servers": [{"name": "x"}]}]})[0]
    assert Decimal(hand["monthly"]["gross"]) == cx23 == Decimal(info["cost"]["outside"]["gross"])
    assert info["health"]["healthy"] and len(info["health"]["servers"]) == 4
    assert {t["target"] for t in info["health"]["targets"]} == {"autoscale-min-web-1", "autoscale-min-web-2",
                                                                 "autoscale-min-web-3"}
    shown = "\n".join(tasks["Show the status"]["msg"])
    assert "## Servers" in shown and "## Load balancers" in shown and "## Drift" in shown and "## Health" in shown
    assert re.search(r"\| made-by-hand \| \d+ \| running \| cx23 in nbg1.* \| outside \|", shown), shown
    assert "Monthly cost now: \u20ac%s" % gross.quantize(Decimal("0.01")) in shown
    # no monitoring host in this inventory (the servers are not in it): no Prometheus, said plainly
    prometheus = info["health"]["prometheus"]
    assert prometheus["available"] is False and prometheus["services"] == []
    assert prometheus["problem"] == "no monitoring host: the inventory's group monitoring is empty"
    assert "No service health from Prometheus: no monitoring host: the inventory's group monitoring is empty." in shown

    report = (tmp_path / "first" / "status.md").read_text()
    dot = (tmp_path / "first" / "status.dot").read_text()
    assert shutil.which("dot"), "Graphviz: scripts/bootstrap.sh installs it"
    svg = html.unescape((tmp_path / "first" / "status.svg").read_text())   # Graphviz writes - as &#45;
    mermaid = report.split("```mermaid", 1)[1]
    for path, names in names_in_project(localcloud, token).items():
        for name in names:
            for text, where in ((mermaid, "mermaid"), (dot, "dot"), (svg, "svg"), (report.split("## Diagram")[0], "tables")):
                assert name in text, (path, name, where)
    assert re.search(r'"server__autoscale_min_web_1" -> "network__autoscale_min_network"', dot)
    assert re.search(r'"load_balancer__autoscale_min_web_lb" -> "server__autoscale_min_web_2"', dot)
    assert 'subgraph "cluster_tier_web"' in dot and "subgraph tier_db" in mermaid

    # drift against a changed declaration: a server declared but missing, a changed server type, a volume no
    # longer declared; a server switched off is unhealthy
    changed = copy.deepcopy(stack)
    web = next(t for t in changed["tiers"] if t["name"] == "web")
    web["servers"].append({"name": "autoscale-min-web-4", "ip": "10.0.1.14"})
    db = next(t for t in changed["tiers"] if t["name"] == "db")
    db["server_type"] = "ccx33"
    volume = changed.pop("volumes")[0]["name"]
    off = next(s for s in list_all(localcloud, token, "servers") if s["name"] == "autoscale-min-web-2")
    power_off(localcloud, token, off["id"])
    # a monitoring host that cannot be reached over SSH (nothing listens on its port): a line of the report
    ssh_port, prometheus_port = free_port(), free_port()
    monitoring = tmp_path / "monitoring.ini"
    monitoring.write_text(
        "[monitoring]\n"
        "unreachable-monitor ansible_connection=ssh ansible_host=127.0.0.1 ansible_port=%d prometheus_listen_ip=10.0.1.20\n"
        % ssh_port)
    run, info, tasks = status(run_playbook, token, changed, tmp_path / "second", {"status_fail_on_drift": True},
                              args=["-i", str(monitoring)])
    assert run.rc != 0
    prometheus = info["health"]["prometheus"]
    assert prometheus["available"] is False and prometheus["host"] == "unreachable-monitor"
    assert prometheus["url"] == "http://10.0.1.20:9090"
    assert prometheus["problem"].startswith("the monitoring host unreachable-monitor is unreachable: "), prometheus
    assert info["in_sync"] is False
    assert info["drift"]["missing"] == [{"type": "server", "name": "autoscale-min-web-4"}]
    assert info["drift"]["changed"] == [   # servers are declared running: one switched off is drift too
        {"type": "server", "name": "autoscale-min-db-1", "changes": {"server_type": {"before": "ccx23", "after": "ccx33"}}},
        {"type": "server", "name": "autoscale-min-web-2", "changes": {"status": {"before": "off", "after": "running"}}}]
    assert info["drift"]["undeclared"] == [{"type": "volume", "name": volume}]
    assert info["drift"]["outside"] == [{"type": "server", "name": "made-by-hand"}]
    assert Decimal(info["cost"]["declared"]["gross"]) > Decimal(info["cost"]["monthly"]["gross"]) == gross
    assert info["health"]["healthy"] is False
    assert {"name": "autoscale-min-web-2", "status": "off", "healthy": False, "tier": "web"} in info["health"]["servers"]
    failed = tasks["Fail on drift or bad health (status_fail_on_drift=true)"]
    assert "drift: missing, changed, undeclared, outside" in failed["msg"] and "unhealthy" in failed["msg"]
    report = (tmp_path / "second" / "status.md").read_text()   # written before failing
    assert "autoscale-min-web-4" in report and "server_type ccx23 -> ccx33" in report
    assert "| autoscale-min-web-2 |" in report and "| off | PROBLEM |" in report

    # a monitoring host where Prometheus does not answer (nothing on its port), in check mode: the GET is still
    # sent on that host (a read), the playbook succeeds and says why there is no service health
    monitoring.write_text(
        "[monitoring]\n"
        "quiet-monitor ansible_connection=local ansible_python_interpreter=%s prometheus_listen_ip=127.0.0.1 "
        "prometheus_port=%d\n" % (sys.executable, prometheus_port))
    run, info, tasks = status(run_playbook, token, stack, tmp_path / "third", args=["-i", str(monitoring), "--check"])
    assert run.rc == 0, run.output[-3000:]
    prometheus = info["health"]["prometheus"]
    assert prometheus["problem"].startswith(
        "Prometheus at http://127.0.0.1:%d did not answer on quiet-monitor: " % prometheus_port), prometheus
    assert "Connection refused" in prometheus["problem"], prometheus
    assert prometheus["available"] is False
    assert tasks["Ask Prometheus for its alerts on the monitoring host (reads only)"].get("skipped") is True
    shown = "\n".join(tasks["Show the status"]["msg"])
    assert "Prometheus: no service health (Prometheus at http://127.0.0.1:%d did not answer" % prometheus_port in shown


PROMETHEUS = Path(sys.executable).parent / "prometheus-server"   # Debian's, unpacked by scripts/bootstrap.sh


@pytest.fixture
def prometheus(tmp_path):
    """A real Prometheus (Debian's, the version the monitoring role installs) on a loopback port: it scrapes itself
    as monitor-1 and a postgres exporter of db-1 where nothing listens (down, connection refused), and an alert
    rule fires on the latter. Yields its port once both were scraped and the alert fires."""
    if not PROMETHEUS.exists():
        pytest.skip("%s missing: make venv unpacks it" % PROMETHEUS)
    port, closed = free_port(), free_port()
    (tmp_path / "rules.yml").write_text(
        "groups:\n- name: status\n  rules:\n  - alert: PostgresDown\n    expr: up{job=\"postgres\"} == 0\n"
        "    labels: {severity: critical}\n    annotations: {summary: \"{{ $labels.instance }}: postgres_exporter down\"}\n")
    (tmp_path / "prometheus.yml").write_text(
        "global: {scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s}\n"
        "rule_files: [%s]\n"
        "scrape_configs:\n"
        "- job_name: prometheus\n  static_configs: [{targets: ['127.0.0.1:%d'], labels: {instance: monitor-1}}]\n"
        "- job_name: postgres\n  static_configs: [{targets: ['127.0.0.1:%d'], labels: {instance: db-1, tier: db}}]\n"
        % (tmp_path / "rules.yml", port, closed))
    log = open(tmp_path / "prometheus.log", "wb")  # pylint: disable=consider-using-with
    proc = subprocess.Popen(  # pylint: disable=consider-using-with
        [str(PROMETHEUS), "--config.file=%s" % (tmp_path / "prometheus.yml"), "--storage.tsdb.path=%s" % (tmp_path / "data"),
         "--web.listen-address=127.0.0.1:%d" % port], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                targets = requests.get("http://127.0.0.1:%d/api/v1/targets" % port, timeout=5).json()
                alerts = requests.get("http://127.0.0.1:%d/api/v1/alerts" % port, timeout=5).json()
                if all(t["health"] != "unknown" for t in targets["data"]["activeTargets"]) and \
                        any(a["state"] == "firing" for a in alerts["data"]["alerts"]):
                    break
            except requests.RequestException:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "prometheus.log").read_text()[-3000:]
            time.sleep(0.5)
        yield {"port": port, "closed": closed}
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def test_status_asks_prometheus_on_the_monitoring_host(localcloud, run_playbook, prometheus, tmp_path):
    """status.yml asks a real Prometheus on the monitoring host (the inventory's group monitoring; here a host run
    locally, where Prometheus listens on loopback): one row per server and service, the firing alert, a service down
    is unhealthy; the GETs change nothing."""
    token = new_project(localcloud, "status-prometheus")   # empty: every declared resource is missing, that is fine
    inventory = tmp_path / "monitoring.ini"
    inventory.write_text(
        "[monitoring]\nmonitor-1 ansible_connection=local ansible_python_interpreter=%s prometheus_listen_ip=127.0.0.1 "
        "prometheus_port=%d\n" % (sys.executable, prometheus["port"]))
    run, info, tasks = status(run_playbook, token, minimal_with_load_balancer(), tmp_path / "report",
                              args=["-i", str(inventory)])
    assert run.rc == 0, run.output[-3000:]
    health = info["health"]["prometheus"]
    url = "http://127.0.0.1:%d" % prometheus["port"]
    assert (health["available"], health["host"], health["url"], health["problem"]) == (True, "monitor-1", url, None)
    assert [(s["server"], s["service"], s["health"]) for s in health["services"]] == [
        ("db-1", "postgres", "down"), ("monitor-1", "prometheus", "up")]
    postgres = health["services"][0]
    assert postgres["tier"] == "db" and postgres["scrape_url"] == "http://127.0.0.1:%d/metrics" % prometheus["closed"]
    assert "connection refused" in postgres["last_error"], postgres
    assert health["down"] == ["postgres/db-1"] and health["healthy"] is False and info["health"]["healthy"] is False
    assert [(a["name"], a["state"], a["severity"], a["instance"], a["summary"]) for a in health["alerts"]] == [
        ("PostgresDown", "firing", "critical", "db-1", "db-1: postgres_exporter down")]
    assert health["firing"] == 1
    for name in ("Ask Prometheus for its targets on the monitoring host (reads only)",
                 "Ask Prometheus for its alerts on the monitoring host (reads only)"):
        assert tasks[name]["changed"] is False and tasks[name]["status"] == 200, tasks[name]
    shown = "\n".join(tasks["Show the status"]["msg"])
    assert "Prometheus (%s on monitor-1): 1 of 2 services up, 1 alert firing." % url in shown
    report = (tmp_path / "report" / "status.md").read_text()
    assert re.search(r"\| db-1 \| postgres \| down: PROBLEM \| \S+ \| .*connection refused \|", report), report
    assert re.search(r"\| monitor-1 \| prometheus \| up \| \S+ \|  \|", report), report
    assert "| PostgresDown | firing | critical | db-1 |" in report
