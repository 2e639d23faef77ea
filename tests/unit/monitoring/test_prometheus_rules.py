# Copyright (c) 2026, autoscale.hetzner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The prometheus role's alert and recording rules and its configuration, checked by Prometheus's
own promtool (unpacked into the venv by `make venv`) without any machine:
- every alert and recording rule fires/computes as its `promtool test rules` case says (rules/*.test.yml),
  with the role's production defaults;
- no rule is without a case (a new rule must come with its test);
- the configuration of both discoveries (file_sd from the inventory, hetzner_sd_configs) passes
  `promtool check config`, the role's own validation."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from rendering import render, value

HERE = Path(__file__).resolve().parent
PROMTOOL = Path(sys.executable).parent / "promtool"
pytestmark = pytest.mark.skipif(not PROMTOOL.exists(), reason="promtool is not in the venv: run make venv")


def promtool(*args, cwd=None):
    return subprocess.run([str(PROMTOOL), *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture(scope="module")
def rules_dir(tmp_path_factory):
    """The rules as the role renders them with its defaults, beside the test cases."""
    path = tmp_path_factory.mktemp("rules")
    (path / "autoscale.rules.yml").write_text(render("prometheus", "autoscale.rules.yml.j2"))
    for case in (HERE / "rules").glob("*.test.yml"):
        shutil.copy(case, path)
    return path


def test_the_rules_pass_promtool_check(rules_dir):
    proc = promtool("check", "rules", "autoscale.rules.yml", cwd=rules_dir)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_rule_behaves_as_its_promtool_test_says(rules_dir):
    cases = sorted(p.name for p in rules_dir.glob("*.test.yml"))
    proc = promtool("test", "rules", *cases, cwd=rules_dir)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("SUCCESS") == len(cases), proc.stdout


def test_every_alert_and_recording_rule_has_a_test_case(rules_dir):
    rules = [r for g in yaml.safe_load((rules_dir / "autoscale.rules.yml").read_text())["groups"] for r in g["rules"]]
    alerts = {r["alert"] for r in rules if "alert" in r}
    records = {r["record"] for r in rules if "record" in r}
    tested_alerts, tested_exprs = set(), []
    for case in (HERE / "rules").glob("*.test.yml"):
        for test in yaml.safe_load(case.read_text())["tests"]:
            tested_alerts |= {t["alertname"] for t in test.get("alert_rule_test", [])
                              if any(t.get("exp_alerts") or []) or t["alertname"] in alerts}
            tested_exprs += [t["expr"] for t in test.get("promql_expr_test", [])]
    # An alert counts as tested only when some case expects it to fire.
    firing = set()
    for case in (HERE / "rules").glob("*.test.yml"):
        for test in yaml.safe_load(case.read_text())["tests"]:
            firing |= {t["alertname"] for t in test.get("alert_rule_test", []) if t.get("exp_alerts")}
    assert alerts - firing == set(), f"alerts without a case where they fire: {sorted(alerts - firing)}"
    untested = {r for r in records if not any(r in expr for expr in tested_exprs)}
    assert untested == set(), f"recording rules without a promql_expr_test: {sorted(untested)}"
    assert len(alerts) >= 14 and tested_alerts >= alerts


def test_durations_and_thresholds_come_from_the_variables():
    rules = yaml.safe_load(render("prometheus", "autoscale.rules.yml.j2", prometheus_alert_host_down_for="10s",
                                  prometheus_alert_disk_used_percent=50, prometheus_alert_backup_max_age="2d",
                                  prometheus_alert_over_budget_for="1h", prometheus_alert_stack_cost_max_age="3h"))
    by_name = {r.get("alert"): r for g in rules["groups"] for r in g["rules"]}
    assert by_name["HostDown"]["for"] == "10s"
    assert "> 50" in by_name["HostDiskAlmostFull"]["expr"]
    assert "> 172800" in by_name["PostgresBackupTooOld"]["expr"]
    assert by_name["StackOverBudget"]["for"] == "1h"
    assert "> 10800" in by_name["StackCostStale"]["expr"]


def _config_dir(tmp_path, **variables):
    """prometheus.yml rendered for mon-1 with the role's paths moved into tmp_path, plus the files it names."""
    paths = {"__prometheus_rules_dir": str(tmp_path / "rules"), "__prometheus_file_sd_dir": str(tmp_path / "file_sd"),
             "__prometheus_token_file": str(tmp_path / "hcloud-token")}
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "autoscale.rules.yml").write_text(render("prometheus", "autoscale.rules.yml.j2"))
    (tmp_path / "file_sd").mkdir()
    for job in ("node", "postgres", "alertmanager"):
        targets = value("prometheus", f"__prometheus_targets.{job}", **paths, **variables)
        (tmp_path / "file_sd" / f"{job}.yml").write_text(yaml.safe_dump(targets))
    (tmp_path / "hcloud-token").write_text("read-only-token\n")
    (tmp_path / "prometheus.yml").write_text(render("prometheus", "prometheus.yml.j2", **paths, **variables))
    return tmp_path


@pytest.mark.parametrize("discovery", ["file_sd", "hetzner"])
def test_the_configuration_passes_promtool_check_config(tmp_path, discovery):
    conf = _config_dir(tmp_path, prometheus_discovery=discovery, prometheus_hetzner_sd_network="prod-net",
                       prometheus_hetzner_sd_labels={"stack": "production"},
                       prometheus_blackbox_targets=["http://198.51.100.7/healthz"])
    proc = promtool("check", "config", str(conf / "prometheus.yml"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    config = yaml.safe_load((conf / "prometheus.yml").read_text())
    jobs = {j["job_name"]: j for j in config["scrape_configs"]}
    assert set(jobs) == {"prometheus", "node", "postgres", "alertmanager", "blackbox"}
    if discovery == "hetzner":
        sd = jobs["postgres"]["hetzner_sd_configs"][0]
        assert sd["authorization"] == {"credentials_file": str(conf / "hcloud-token")} and "credentials" not in sd["authorization"]
        keeps = {(tuple(r["source_labels"]), r.get("regex")) for r in jobs["postgres"]["relabel_configs"] if r.get("action") == "keep"}
        assert (("__meta_hetzner_hcloud_label_tier",), "db") in keeps
        assert (("__meta_hetzner_hcloud_label_stack",), "production") in keeps
        assert (("__meta_hetzner_hcloud_private_ipv4_prod_net",), ".+") in keeps
    else:
        assert jobs["node"]["file_sd_configs"] == [{"files": [str(conf / "file_sd" / "node.yml")]}]
    assert jobs["blackbox"]["params"] == {"module": ["http_2xx"]}


def test_targets_come_from_the_inventory_by_private_ip():
    node = value("prometheus", "__prometheus_targets.node")
    assert {"targets": ["10.0.1.31:9100"], "labels": {"instance": "db-2", "tier": "db", "role": "standby"}} in node
    assert len(node) == 6
    postgres = value("prometheus", "__prometheus_targets.postgres")
    assert [t["targets"] for t in postgres] == [["10.0.1.30:9187"], ["10.0.1.31:9187"]]
    # A host's own exporter port wins over the default.
    inventory = {**__import__("rendering").INVENTORY}
    inventory["web-1"] = {**inventory["web-1"], "node_exporter_port": 9101}
    node = value("prometheus", "__prometheus_targets.node", inventory=inventory)
    assert [g["labels"]["instance"] for g in node] == sorted(inventory)     # sorted: a stable file
    assert next(g for g in node if g["labels"]["instance"] == "web-1")["targets"] == ["10.0.1.10:9101"]
