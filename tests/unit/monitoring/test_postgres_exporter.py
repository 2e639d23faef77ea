# Copyright (c) 2026, autoscale.hetzner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""postgres_exporter's replication lag, checked without a host.

Debian 12's prometheus-postgres-exporter (0.11.1) exports no replication lag: upstream's pg_replication
query was only an example queries.yaml that nothing loads. 0.13 moved it into the `replication`
collector (on by default; Debian 13 ships 0.17.1), which exports pg_replication_lag_seconds and
pg_replication_is_replica. The role gives older exporters that collector's query as a custom query
(--extend.query-path) and newer ones nothing extra (the same series twice would fail every scrape).
Checked here: which exporter version gets which, and that the custom query makes exactly the series
the PostgresReplicationLagging alert and the dashboard's lag panel read. That the exporters really
export them is shown on machines (tests/roles/test_monitoring.py)."""
from __future__ import annotations

import re
import shlex

import pytest
import yaml

from dashboards import load, queries
from rendering import ROLES, render, value

QUERY_FILE = ROLES / "postgres_exporter" / "files" / "replication-queries.yaml"
# The series of postgres_exporter's replication collector (0.13+, collector/pg_replication.go).
COLLECTOR_SERIES = {"pg_replication_lag_seconds", "pg_replication_is_replica"}


def exporter_args(version: str, **extra) -> list[str]:
    """The exporter's command line as Debian's unit gets it from /etc/default (ARGS, shell-quoted)."""
    text = render("postgres_exporter", "prometheus-postgres-exporter.default.j2", host="db-1",
                  __postgres_exporter_version=version, **extra)
    env = dict(line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#"))
    return shlex.split(shlex.split(env["ARGS"])[0])


def series_in(promql: str) -> set[str]:
    return set(re.findall(r"\bpg_[a-z_]+\b", promql))


@pytest.mark.parametrize("version", ["0.11.1", "0.12.1"])
def test_an_exporter_without_the_replication_collector_reads_the_roles_query(version):
    args = exporter_args(version, postgres_exporter_extra_args=["--log.level=warn"])
    path = value("postgres_exporter", "__postgres_exporter_queries_file")
    assert args == ["--web.listen-address=10.0.1.30:9187", f"--extend.query-path={path}", "--log.level=warn"]


@pytest.mark.parametrize("version", ["0.13.0", "0.17.1", "1.0.0"])
def test_an_exporter_with_the_replication_collector_gets_no_second_copy_of_its_query(version):
    assert exporter_args(version) == ["--web.listen-address=10.0.1.30:9187", "--collector.replication"]


def test_check_mode_without_the_package_assumes_the_version_of_the_releases_archive():
    versions = value("postgres_exporter", "__postgres_exporter_release_version")
    assert set(versions) == {"12", "13"} == set(value("postgres_exporter", "__postgres_exporter_supported")["Debian"])
    assert [value("postgres_exporter", "__postgres_exporter_replication_collector", __postgres_exporter_version=versions[r])
            for r in ("12", "13")] == [False, True]


def test_the_custom_query_makes_the_collectors_series():
    queries_file = yaml.safe_load(QUERY_FILE.read_text())
    made = {f"{namespace}_{column}" for namespace, query in queries_file.items()
            for metric in query["metrics"] for column, spec in metric.items() if spec["usage"] != "LABEL"}
    assert made == COLLECTOR_SERIES
    # Only on the database of the connection (the role's DSN), as the collector does.
    assert all(query["master"] is True for query in queries_file.values())


def test_the_lag_alert_and_the_dashboards_lag_panel_read_the_collectors_series():
    rules = yaml.safe_load(render("prometheus", "autoscale.rules.yml.j2"))
    lagging = [r["expr"] for g in rules["groups"] for r in g["rules"] if r.get("alert") == "PostgresReplicationLagging"]
    panel = [expr for title, expr in queries(load("postgresql")) if title.startswith("Replication lag")]
    assert len(lagging) == 1 and len(panel) == 1
    assert series_in(lagging[0]) == {"pg_replication_lag_seconds"}
    assert series_in(panel[0]) == COLLECTOR_SERIES
