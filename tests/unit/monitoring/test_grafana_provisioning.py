# Copyright (c) 2026, autoscale.hetzner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The grafana role's provisioning and dashboards, checked without Grafana (its APT repository is
out of reach here, so the role's install tasks do not run in the tests): the datasource has the
fixed uid every dashboard panel and variable refers to; every panel query is valid PromQL with its
variables filled in (promtool parses it as a recording rule); grafana.ini binds to loopback and
keeps the password quoted. tests/roles/test_monitoring.py asks the lab's Prometheus every query."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dashboards import fill, label_of, load, multi_value, names, panels, queries, variables
from rendering import render

PROMTOOL = Path(sys.executable).parent / "promtool"


def datasource():
    return yaml.safe_load(render("grafana", "datasources.yml.j2", prometheus_port=9090))["datasources"][0]


def test_the_datasource_is_the_stacks_prometheus_with_a_fixed_uid():
    ds = datasource()
    assert ds == {**ds, "uid": "autoscale-prometheus", "type": "prometheus", "isDefault": True,
                  "url": "http://10.0.1.40:9090"}


def test_the_collection_ships_three_dashboards():
    assert names() == ["availability", "hosts", "postgresql"]


@pytest.mark.parametrize("name", ["availability", "hosts", "postgresql"])
def test_every_panel_and_variable_uses_the_provisioned_datasource(name):
    dashboard = load(name)
    uid = datasource()["uid"]
    assert dashboard["uid"] == f"autoscale-{name}" and dashboard["title"]
    for panel in panels(dashboard):
        assert panel["datasource"] == {"type": "prometheus", "uid": uid}, panel["title"]
        assert all(t["datasource"]["uid"] == uid for t in panel["targets"]), panel["title"]
    for var in variables(dashboard):
        if var["type"] == "query":
            assert var["datasource"]["uid"] == uid
            label_of(var["query"]["query"])      # a label_values() query the lab test can answer


@pytest.mark.skipif(not PROMTOOL.exists(), reason="promtool is not in the venv: run make venv")
@pytest.mark.parametrize("name", ["availability", "hosts", "postgresql"])
def test_every_panel_query_is_valid_promql_with_its_variables_filled_in(tmp_path, name):
    dashboard = load(name)
    # Values as the lab's: instances with dots and slashes (the blackbox probe's URL), hyphens.
    chosen = multi_value(["http://198.18.1.6/", "rolelab-db-1", "10.77.1.30:9100"])
    values = {v["name"]: "0.999" if v["type"] == "constant" else chosen for v in variables(dashboard)}
    rules = {"groups": [{"name": name, "rules": [
        {"record": f"panel:{i}", "expr": fill(expr, values)} for i, (_title, expr) in enumerate(queries(dashboard))]}]}
    (tmp_path / "panels.yml").write_text(yaml.safe_dump(rules))
    proc = subprocess.run([str(PROMTOOL), "check", "rules", str(tmp_path / "panels.yml")], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert len(queries(dashboard)) >= 7


def test_grafana_ini_binds_to_loopback_and_quotes_the_password():
    ini = render("grafana", "grafana.ini.j2", grafana_admin_password="s3cret;#pass",
                 grafana_ini_extra={"server": {"root_url": "https://grafana.example.com/"}, "smtp": {"enabled": True}})
    assert "http_addr = 127.0.0.1" in ini and "http_port = 3000" in ini
    assert 'admin_password = """s3cret;#pass"""' in ini
    assert "root_url = https://grafana.example.com/" in ini and "[smtp]\nenabled = true" in ini
    assert "reporting_enabled = false" in ini and "allow_sign_up = false" in ini


def test_the_dashboard_provider_reads_the_roles_directory():
    provider = yaml.safe_load(render("grafana", "dashboards.yml.j2"))["providers"][0]
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards/autoscale" and provider["type"] == "file"
