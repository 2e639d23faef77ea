# Copyright (c) 2026, autoscale.hetzner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The health of each service from Prometheus's HTTP API (module_utils/status.py prometheus_health) and its table
in the status report: the answers are shaped as Prometheus 2.x returns them (/api/v1/targets?state=active and
/api/v1/alerts, as the minimal stack's Prometheus answers them on its db server)."""

from __future__ import annotations

import copy

from ansible_collections.autoscale.hetzner.plugins.filter.status import status_report
from ansible_collections.autoscale.hetzner.plugins.module_utils.status import prometheus_health

URL = "http://10.0.1.20:9090"


def target(job, instance, address, port, health="up", error="", tier=None, path="/metrics"):
    labels = {"instance": instance, "job": job}
    if tier:
        labels["tier"] = tier
    return {
        "discoveredLabels": {"__address__": "%s:%d" % (address, port), "__metrics_path__": path, "__scheme__": "http",
                             "__scrape_interval__": "30s", "__scrape_timeout__": "10s", "instance": instance,
                             "job": job},
        "labels": labels, "scrapePool": job, "scrapeUrl": "http://%s:%d%s" % (address, port, path),
        "globalUrl": "http://%s:%d%s" % (address, port, path), "lastError": error,
        "lastScrape": "2026-12-03T05:31:02.123456789Z", "lastScrapeDuration": 0.004512,
        "health": health, "scrapeInterval": "30s", "scrapeTimeout": "10s"}


TARGETS = {"status": "success", "data": {"activeTargets": [
    target("node", "autoscale-min-web-1", "10.0.1.11", 9100, tier="web"),
    target("node", "autoscale-min-db-1", "10.0.1.20", 9100, tier="db"),
    target("postgres", "autoscale-min-db-1", "10.0.1.20", 9187, health="down", tier="db",
           error='Get "http://10.0.1.20:9187/metrics": dial tcp 10.0.1.20:9187: connect: connection refused'),
    target("nginx", "autoscale-min-web-1", "10.0.1.11", 9113, tier="web"),
    target("prometheus", "autoscale-min-db-1", "10.0.1.20", 9090),
    target("blackbox", "http://198.18.0.9/", "127.0.0.1", 9115, path="/probe"),
], "droppedTargets": [], "droppedTargetCounts": {"node": 0, "postgres": 0}}}

ALERTS = {"status": "success", "data": {"alerts": [
    {"labels": {"alertname": "DiskFillingUp", "instance": "autoscale-min-db-1", "job": "node", "severity": "warning"},
     "annotations": {"summary": "autoscale-min-db-1: / fills up within 6h"}, "state": "pending",
     "activeAt": "2026-12-03T05:20:00Z", "value": "1e+00"},
    {"labels": {"alertname": "PostgresDown", "instance": "autoscale-min-db-1", "job": "postgres",
                "severity": "critical"},
     "annotations": {"description": "postgres_exporter cannot reach PostgreSQL on autoscale-min-db-1"},
     "state": "firing", "activeAt": "2026-12-03T05:25:30.5Z", "value": "0e+00"},
]}}


def asked(targets=TARGETS, alerts=ALERTS, problem=None):
    return {"host": "autoscale-min-db-1", "url": URL, "targets": targets, "alerts": alerts, "problem": problem}


def status_with(prometheus):
    health = prometheus_health(prometheus)
    return {"stack": "s", "resources": [], "errors": [], "cost": None, "cost_problem": "no prices", "in_sync": True,
            "drift": {key: [] for key in ("missing", "changed", "undeclared", "outside")},
            "health": {"servers": [], "targets": [], "prometheus": health, "healthy": health["healthy"],
                       "run_in_progress": False}}


def test_one_row_per_server_and_service_with_health_and_last_error():
    health = prometheus_health(asked())
    assert health["available"] is True and health["problem"] is None
    assert [(s["server"], s["service"], s["up"]) for s in health["services"]] == [
        ("autoscale-min-db-1", "node", True), ("autoscale-min-db-1", "postgres", False),
        ("autoscale-min-db-1", "prometheus", True), ("autoscale-min-web-1", "nginx", True),
        ("autoscale-min-web-1", "node", True), ("http://198.18.0.9/", "blackbox", True)]
    postgres = health["services"][1]
    assert postgres == {"server": "autoscale-min-db-1", "service": "postgres", "health": "down", "up": False,
                        "last_error": 'Get "http://10.0.1.20:9187/metrics": dial tcp 10.0.1.20:9187: connect: '
                                      'connection refused',
                        "last_scrape": "2026-12-03T05:31:02.123456789Z", "scrape_url": "http://10.0.1.20:9187/metrics",
                        "tier": "db"}
    assert health["down"] == ["postgres/autoscale-min-db-1"] and health["healthy"] is False
    # alerts: firing first, the summary or else the description
    assert [(a["name"], a["state"], a["severity"]) for a in health["alerts"]] == [
        ("PostgresDown", "firing", "critical"), ("DiskFillingUp", "pending", "warning")]
    assert health["alerts"][0]["summary"] == "postgres_exporter cannot reach PostgreSQL on autoscale-min-db-1"
    assert health["firing"] == 1


def test_every_service_up_is_healthy_and_alerts_alone_do_not_make_it_unhealthy():
    answer = copy.deepcopy(TARGETS)
    for item in answer["data"]["activeTargets"]:
        item.update(health="up", lastError="")
    health = prometheus_health(asked(targets=answer))
    assert health["healthy"] is True and health["down"] == [] and health["firing"] == 1
    # a target Prometheus has not scraped yet is "unknown": not up
    answer["data"]["activeTargets"][0]["health"] = "unknown"
    health = prometheus_health(asked(targets=answer))
    assert health["down"] == ["node/autoscale-min-web-1"] and not health["healthy"]


def test_without_an_answer_it_says_why_and_does_not_count_as_unhealthy():
    assert prometheus_health(None) == {"available": False, "host": None, "url": None, "problem": "not asked",
                                       "services": [], "alerts": [], "down": [], "firing": 0, "healthy": True}
    problem = "the monitoring host autoscale-min-db-1 is unreachable: Failed to connect to the host via ssh"
    health = prometheus_health(asked(targets=None, alerts=None, problem=problem))
    assert health["available"] is False and health["problem"] == problem and health["healthy"] is True


def test_an_answer_that_is_not_prometheus_api_is_named():
    health = prometheus_health(asked(targets={"status": "error", "errorType": "bad_data", "error": "invalid state"}))
    assert not health["available"]
    assert health["problem"] == ("Prometheus at %s answered what is not its HTTP API: /api/v1/targets: status error: "
                                 "invalid state" % URL)
    health = prometheus_health(asked(targets=None))
    assert health["problem"].endswith("/api/v1/targets: no JSON object in the answer")
    health = prometheus_health(asked(alerts={"status": "success", "data": {}}))
    assert health["problem"].endswith("/api/v1/alerts: no alerts in the answer")
    # no alerts asked (their answer is missing): the targets alone
    assert prometheus_health(asked(alerts=None))["available"] is True


def test_the_report_has_a_table_per_server_and_service_and_the_alerts():
    tables = status_report(status_with(asked()), output="tables")
    assert "Health: PROBLEMS." in tables
    assert "Prometheus (%s on autoscale-min-db-1): 5 of 6 services up, 1 alert firing." % URL in tables
    section = tables.split("## Services (Prometheus)", 1)[1]
    assert "| server | service | health | last scrape | last error |" in section
    assert ("| autoscale-min-db-1 | postgres | down: PROBLEM | 2026-12-03T05:31:02.123456789Z | "
            'Get "http://10.0.1.20:9187/metrics": dial tcp 10.0.1.20:9187: connect: connection refused |') in section
    assert "| autoscale-min-web-1 | node | up | 2026-12-03T05:31:02.123456789Z |  |" in section
    alerts = section.split("### Alerts", 1)[1]
    assert alerts.index("| PostgresDown | firing | critical | autoscale-min-db-1 |") < alerts.index("| DiskFillingUp | pending")


def test_the_report_says_plainly_when_there_is_no_prometheus():
    problem = "no monitoring host: the inventory's group monitoring is empty"
    tables = status_report(status_with(asked(targets=None, alerts=None, problem=problem)), output="tables")
    assert "Prometheus: no service health (%s)." % problem in tables
    assert "No service health from Prometheus: %s." % problem in tables
    assert "| server | service |" not in tables
    # a status from before Prometheus was asked (no health.prometheus) still renders
    old = status_with(None)
    del old["health"]["prometheus"]
    assert "Prometheus: no service health (not asked)." in status_report(old, output="tables")
