# Copyright (c) 2026, autoscale.hetzner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The monitoring stack, proven from outside on the role lab: Prometheus scrapes every exporter
(its API says `up`), a server powered off through the API fires HostDown in Alertmanager, which
posts it to a webhook on the controller in time and posts the resolution after power-on; the
exporter ports are refused from the other tiers and closed to the internet; the stack's cost, read
on the monitoring host with a read-only token, fires StackOverBudget in Alertmanager once the budget
is below it; a second run changes nothing; a check run on a fresh host completes; bad input is
refused before any change."""
from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from lab import fresh, hardened, lab, skip_reason, web_app  # noqa: F401  (fixtures; monitored needs web_app)
from lab import HERE, ROOT
from monitoring_lab import MON, monitored  # noqa: F401  (fixture)
from monitoring_lab import (DISK_FOR, EVALUATION, HIGH_BUDGET, HOST_DOWN_FOR, LAG_FOR, LAG_SECONDS, OVER_BUDGET_FOR,
                            REPLICATION_FOR, SCRAPE)
from postgresql_lab import PRIMARY, STANDBY, postgres, sql  # noqa: F401  (fixture)
# The slot's activity as Debian 12's postgres_exporter (0.11) and newer ones (Debian 13) name it.
SLOT_ACTIVE = "pg_replication_slots_active|pg_replication_slot_slot_is_active"

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit" / "monitoring"))   # dashboards.py
pytestmark = pytest.mark.skipif(skip_reason() is not None, reason=skip_reason() or "")
# Every role of playbooks/monitoring.yml on one host (a fresh server: check mode, bad input).
ON_ONE_HOST = {"monitoring_exporter_hosts": "all", "monitoring_group": "all",
               "grafana_when_unreachable": "skip", "grafana_admin_password": "lab-grafana-Passw0rd"}
DATABASES = [PRIMARY, STANDBY]     # the postgresql role's primary + streaming standby (postgresql_lab)
CONVERGED = ["rolelab-web-1", "rolelab-web-2", "rolelab-app-1", *DATABASES, MON]


def seconds(duration: str) -> int:
    return int(duration[:-1]) * {"s": 1, "m": 60, "h": 3600}[duration[-1]]


def wait_until_all_up(monitored, expected: set[tuple[str, str]], timeout: float = 90):
    deadline = time.monotonic() + timeout
    while True:
        targets = monitored.targets()
        seen = {(t["labels"]["job"], t["labels"]["instance"]): t for t in targets}
        down = {k: (t["health"], t.get("lastError")) for k, t in seen.items() if t["health"] != "up"}
        if expected <= set(seen) and not down:
            return seen
        if time.monotonic() > deadline:
            raise AssertionError(f"missing: {sorted(expected - set(seen))}; not up: {down}")
        time.sleep(2)


def test_prometheus_reports_every_target_up(lab, monitored):
    lb_url = monitored.vars["prometheus_blackbox_targets"][0]
    expected = ({("node", h) for h in CONVERGED} | {("prometheus", MON), ("alertmanager", MON)}
                | {("postgres", h) for h in DATABASES} | {("blackbox", lb_url)})
    seen = wait_until_all_up(monitored, expected)
    assert set(seen) == expected, f"unexpected targets: {sorted(set(seen) - expected)}"
    # The blackbox probe of the load balancer's public URL succeeds (through the LB to the web tier).
    deadline = time.monotonic() + 60
    while (probe := monitored.query(f'probe_success{{instance="{lb_url}"}}')) and probe[0]["value"][1] != "1":
        assert time.monotonic() < deadline, f"the probe of {lb_url} fails: {probe}"
        time.sleep(2)
    assert probe and probe[0]["value"][1] == "1", probe
    # Scraped over the private network, as the inventory says.
    for (job, host), target in seen.items():
        if job == "blackbox":
            continue
        assert target["labels"].get("tier") or job == "prometheus"
        assert target["scrapeUrl"].split("//")[1].startswith(lab.hosts[host].private_ip + ":"), target["scrapeUrl"]
    # The textfile collectors report: fail2ban bans per jail on every host, updates by origin.
    jails = {(r["metric"]["instance"], r["metric"]["jail"]) for r in monitored.query("fail2ban_jail_banned_current")}
    assert {(h, "sshd") for h in CONVERGED} <= jails, jails
    apt = {r["metric"]["instance"] for r in monitored.query("apt_upgrades_pending")}
    assert apt == set(CONVERGED), apt
    print(f"\n{len(seen)} targets up: " + ", ".join(f"{j}/{h}" for j, h in sorted(seen)))


def test_a_second_run_changes_nothing(monitored):
    monitored.second.assert_unchanged()
    # Grafana's repository is out of the lab's reach: the role said so and skipped (grafana_when_unreachable: skip).
    assert f"Grafana skipped on {MON}" in monitored.first.output
    print(f"\nmonitoring.yml on {len(CONVERGED)} hosts: first run {monitored.first.seconds:.0f} s, "
          f"second (no change) {monitored.second.seconds:.0f} s")


def test_exporter_ports_refused_from_other_tiers_and_closed_to_the_internet(lab, monitored, fresh):
    web, app, db = "rolelab-web-1", "rolelab-app-1", PRIMARY
    private = {h: lab.hosts[h].private_ip for h in CONVERGED}
    matrix = [  # (from, to, address, port, expected)
        (MON, db, private[db], 9100, "open"),            # the monitoring host scrapes
        (MON, web, private[web], 9100, "open"),
        (MON, db, private[db], 9187, "open"),            # postgres_exporter
        (MON, STANDBY, private[STANDBY], 9187, "open"),
        (db, STANDBY, private[STANDBY], 9187, "refused"),   # a PostgreSQL peer is not the monitoring host
        (web, db, private[db], 9100, "refused"),
        (web, app, private[app], 9100, "refused"),
        (app, db, private[db], 9100, "refused"),
        (web, db, private[db], 9187, "refused"),
        (app, db, private[db], 9187, "refused"),
        (app, MON, private[MON], 9093, "refused"),       # Alertmanager
        (web, MON, private[MON], 9090, "refused"),       # Prometheus
        (None, db, lab.ip(db), 9100, None),              # the controller, a public address
        (None, db, lab.ip(db), 9187, None),
        (None, MON, lab.ip(MON), 9090, None),
        (fresh[0].name, web, lab.ip(web), 9100, None),   # another server's public IP
        (fresh[0].name, web, private[web], 9100, "refused"),   # a server of no tier, in the network
    ]
    lab.assert_tcp_matrix("exporter ports", matrix)


def test_powering_a_server_off_fires_host_down_at_the_webhook_and_power_on_resolves_it(lab, monitored):
    target = "rolelab-app-1"
    wait_until_all_up(monitored, {("node", target)})
    server = lab.api().servers.get_by_name(target)
    budget = seconds(HOST_DOWN_FOR) + seconds(SCRAPE) + 30     # the rule's for + a scrape interval + 30 s
    t0 = time.monotonic()
    lab.api().servers.power_off(server).wait_until_finished(max_retries=600)
    try:
        fired = monitored.webhook.wait_for("firing", t0, budget + 30, alertname="HostDown", instance=target)
        assert fired is not None, f"HostDown for {target} not posted within {budget + 30} s: {monitored.webhook.alerts(t0)}"
        fired_after = fired[0] - t0
        assert fired_after <= budget, f"HostDown posted after {fired_after:.0f} s (budget {budget} s)"
        assert fired[1]["labels"]["severity"] == "critical" and fired[1]["labels"]["tier"] == "app"
    finally:
        t1 = time.monotonic()
        lab.api().servers.power_on(server).wait_until_finished(max_retries=600)
        lab.wait_for_ssh([target])
    resolved = monitored.webhook.wait_for("resolved", t1, 180, alertname="HostDown", instance=target)
    assert resolved is not None, f"HostDown for {target} not resolved within 180 s of power-on"
    # Nothing else of that host reached the receiver while it was down (HostDown inhibits it).
    others = {a["labels"]["alertname"] for t, a in monitored.webhook.alerts(t0)
              if a["labels"].get("instance") == target and a["labels"]["alertname"] != "HostDown"}
    assert not others, others
    print(f"\nHostDown for {target}: posted {fired_after:.1f} s after power-off (budget: for {HOST_DOWN_FOR} + scrape "
          f"{SCRAPE} + 30 s = {budget} s; evaluation every {EVALUATION}); resolved {resolved[0] - t1:.1f} s after power-on")


def test_a_budget_below_the_stacks_cost_fires_the_cost_alert_in_alertmanager(lab, monitored):
    # monitoring.yml set up the stack cost collector on the monitoring host (the lab stack, the default
    # project's read-only token, a budget far above the cost) and ran it once: its cost is in Prometheus.
    cost_query = 'autoscale_stack_monthly_cost{stack="rolelab", price="gross"}'
    deadline = time.monotonic() + 60
    while not (found := monitored.query(cost_query)):
        assert time.monotonic() < deadline, "Prometheus has no autoscale_stack_monthly_cost of the lab stack"
        time.sleep(2)
    cost = float(found[0]["value"][1])
    assert cost > 0 and found[0]["metric"]["instance"] == MON, found
    assert monitored.alertmanager_alerts("StackOverBudget") == []
    # The token: in a file only the collector's user reads, and in no output of the runs.
    mode = lab.ssh(MON, "stat -c '%a %U' /etc/autoscale-stack-cost/token").stdout.split()
    assert mode == ["600", "autoscale-stack-cost"], mode
    token = lab.cloud.readonly_token
    assert token and token not in monitored.first.output and token not in monitored.second.output

    def node_exporter_with_budget(budget):
        run = lab.playbook(HERE / "playbooks" / "node_exporter.yml", limit=MON,
                           extra_vars={**monitored.vars, "node_exporter_stack_cost_budget": budget}).assert_ok()
        assert token not in run.output
        return run

    budget = f"{cost / 2:.2f}"
    limit = seconds(OVER_BUDGET_FOR) + seconds(SCRAPE) + seconds(EVALUATION) + 30
    t0 = time.monotonic()
    try:
        node_exporter_with_budget(budget)      # the collector runs at once: the new budget is exported
        deadline = time.monotonic() + limit + 30
        while not (active := [a for a in monitored.alertmanager_alerts("StackOverBudget")
                              if a["status"]["state"] == "active" and a["labels"].get("stack") == "rolelab"]):
            assert time.monotonic() < deadline, (
                f"StackOverBudget not active in Alertmanager within {limit + 30} s of the budget {budget} "
                f"(cost {cost}): {monitored.query('autoscale_stack_monthly_budget')}")
            time.sleep(2)
        fired_after = time.monotonic() - t0
        alert = active[0]
        assert alert["labels"]["instance"] == MON and alert["labels"]["severity"] == "warning", alert
        # The cost now, not the one read first: the fresh hosts other tests create carry the lab stack's
        # labels, so they count (seen: 33.43 first, 41.73 when the alert fired).
        now = float(monitored.query(cost_query)[0]["value"][1])
        assert f"costs {now:.2f} EUR/month" in alert["annotations"]["summary"] and now > float(budget), (
            now, alert["annotations"])
        assert f"The budget is {float(budget):.2f}" in alert["annotations"]["description"], alert["annotations"]
    finally:
        t1 = time.monotonic()
        node_exporter_with_budget(HIGH_BUDGET)
    resolved = monitored.webhook.wait_for("resolved", t1, 120, alertname="StackOverBudget", instance=MON)
    assert resolved is not None, "StackOverBudget not resolved within 120 s of raising the budget again"
    print(f"\nStackOverBudget (cost {cost:.2f}/month, budget {budget}): active in Alertmanager {fired_after:.1f} s "
          f"after the node_exporter run began (for {OVER_BUDGET_FOR}); resolved {resolved[0] - t1:.1f} s after the "
          f"budget was raised")


def test_check_mode_on_a_fresh_host_completes_and_reports_changes(lab, fresh):
    run = lab.playbook(ROOT / "playbooks" / "monitoring.yml", limit=fresh[0].name, check=True,
                       extra_vars=ON_ONE_HOST).assert_ok()
    assert run.recap[fresh[0].name]["changed"] > 0
    installed = lab.ssh(fresh[0].name, "dpkg-query -W -f='${Status}' prometheus prometheus-node-exporter 2>&1 || true").stdout
    assert "install ok installed" not in installed, installed


def test_bad_input_is_refused_before_anything_changes(lab, fresh):
    host = fresh[1].name
    run = lab.playbook(ROOT / "playbooks" / "monitoring.yml", limit=host, extra_vars={**ON_ONE_HOST,
        "prometheus_alert_host_down_for": "two minutes", "prometheus_availability_slo": 99.9,
        "prometheus_blackbox_targets": ["lb.example.com"], "alertmanager_route": {"receiver": "pager"},
        "node_exporter_listen_ip": "192.0.2.1", "grafana_when_unreachable": "fail",
        "node_exporter_stack_cost_token": "0" * 64, "node_exporter_stack_cost_budget": -5,
        "node_exporter_stack_cost_endpoint": "api.hetzner.cloud"})
    assert run.rc != 0
    for needle in ("prometheus_alert_host_down_for", "prometheus_availability_slo: 99.9", "prometheus_blackbox_targets",
                   "alertmanager_route", "node_exporter_listen_ip: 192.0.2.1 is not an address of this host",
                   "node_exporter_stack_cost_budget: '-5' is not a positive monthly amount",
                   "node_exporter_stack_cost_endpoint: 'api.hetzner.cloud' is not an http:// or https:// URL",
                   "Grafana's APT repository is not reachable", "grafana_when_unreachable: skip"):
        assert needle in run.output, f"{needle!r} not in the output:\n{run.tail(40)}"
    assert run.recap[host]["changed"] == 0
    assert lab.ssh(host, "test -e /etc/prometheus", check=False).returncode != 0


def test_filling_a_volume_above_the_threshold_fires_the_disk_alert(lab, monitored):
    volume = lab.api().volumes.get_by_name("rolelab-mon-vol")
    mount = lab.ssh(MON, f"findmnt -n -o TARGET -S /dev/disk/by-id/scsi-0HC_Volume_{volume.id} || "
                         f"findmnt -n -o TARGET /mnt/HC_Volume_{volume.id}", check=False).stdout.strip()
    assert mount, f"the volume {volume.id} is not mounted on {MON}"
    series = f'node_filesystem_avail_bytes{{instance="{MON}", mountpoint="{mount}"}}'
    deadline = time.monotonic() + 60
    while not monitored.query(series):
        assert time.monotonic() < deadline, f"node_exporter does not report {mount}"
        time.sleep(2)
    # Allocated, not written: the loop device's sparse file on the host stays small.
    fill = f"{mount}/lab-fill"
    t0 = time.monotonic()
    lab.ssh(MON, f"size=$(df -B1 --output=size {mount} | tail -1); avail=$(df -B1 --output=avail {mount} | tail -1); "
                 f"fallocate -l $(( avail - size / 20 )) {fill}; df -h {mount}")
    try:
        budget = seconds(DISK_FOR) + seconds(SCRAPE) + 30
        fired = monitored.webhook.wait_for("firing", t0, budget + 30, alertname="HostDiskAlmostFull", instance=MON,
                                           mountpoint=mount)
        assert fired is not None, f"HostDiskAlmostFull not posted within {budget + 30} s: {monitored.webhook.alerts(t0)}"
        fired_after = fired[0] - t0
    finally:
        t1 = time.monotonic()
        lab.ssh(MON, f"rm -f {fill}")
    resolved = monitored.webhook.wait_for("resolved", t1, 120, alertname="HostDiskAlmostFull", instance=MON)
    assert resolved is not None, "HostDiskAlmostFull not resolved within 120 s of freeing the space"
    assert fired_after <= budget, f"posted after {fired_after:.0f} s (budget {budget} s)"
    print(f"\nHostDiskAlmostFull for {mount} (95 % used): posted {fired_after:.1f} s after the fill, "
          f"resolved {resolved[0] - t1:.1f} s after freeing it")


def fired_and_resolved(monitored, alertname: str, labels: dict, budget: int, cause, undo, state) -> tuple[float, float]:
    """cause() makes the alert's condition, undo() ends it (also after a failure). The alert must be
    posted to the webhook within budget seconds of cause() and its resolution within 120 s of undo();
    state() says what Prometheus sees when it is not. Seconds until each post."""
    t0 = time.monotonic()
    try:
        cause()
        fired = monitored.webhook.wait_for("firing", t0, budget + 30, alertname=alertname, **labels)
        assert fired is not None, f"{alertname} not posted within {budget + 30} s: {monitored.webhook.alerts(t0)}; {state()}"
    finally:
        t1 = time.monotonic()
        undo()
    resolved = monitored.webhook.wait_for("resolved", t1, 120, alertname=alertname, **labels)
    assert resolved is not None, f"{alertname} not resolved within 120 s of the undo; {state()}"
    assert fired[0] - t0 <= budget, f"{alertname} posted after {fired[0] - t0:.0f} s (budget {budget} s)"
    return fired[0] - t0, resolved[0] - t1


def test_stopping_replication_fires_the_replication_alert_and_restarting_it_resolves_it(lab, monitored):
    # The postgresql role's standby streams through its slot on the primary. Replication stops as it
    # does when the standby loses its primary: its WAL receiver ends (primary_conninfo emptied with
    # ALTER SYSTEM and a reload: no restart, so test_postgresql's restart checks still hold), and the
    # primary's slot goes inactive. RESET and a reload restore the role's primary_conninfo.
    slot = sql(lab, PRIMARY, "select slot_name from pg_replication_slots where slot_type = 'physical'")
    assert slot and "|" not in slot and "\n" not in slot, f"one physical slot expected on {PRIMARY}: {slot!r}"

    def slot_active():
        return {r["metric"].get("slot_name"): r["value"][1]
                for r in monitored.query(f'{{__name__=~"{SLOT_ACTIVE}", instance="{PRIMARY}"}}')}

    def primary_conninfo(setting):
        sql(lab, STANDBY, f"alter system {setting}")
        sql(lab, STANDBY, "select pg_reload_conf()")
    deadline = time.monotonic() + 60
    while slot_active().get(slot) != "1":
        assert time.monotonic() < deadline, f"the slot {slot} is not reported active: {slot_active()}"
        time.sleep(2)
    budget = seconds(REPLICATION_FOR) + seconds(SCRAPE) + 30
    fired_after, resolved_after = fired_and_resolved(
        monitored, "PostgresReplicationBroken", {"instance": PRIMARY, "slot_name": slot}, budget,
        cause=lambda: primary_conninfo("set primary_conninfo = ''"), undo=lambda: primary_conninfo("reset primary_conninfo"),
        state=lambda: f"slots: {slot_active()}")
    assert sql(lab, PRIMARY, f"select active from pg_replication_slots where slot_name = '{slot}'") == "t"
    print(f"\nPostgresReplicationBroken for the slot {slot}: posted {fired_after:.1f} s after replication "
          f"stopped (budget {budget} s), resolved {resolved_after:.1f} s after it restarted")


def test_pausing_replay_on_the_standby_fires_the_lag_alert_and_resuming_resolves_it(lab, monitored):
    # The lag postgres_exporter measures on the standby (pg_replication_lag_seconds: Debian 13's
    # replication collector, or the postgres_exporter role's query on Debian 12's exporter, which has
    # none). Replay is paused while the primary commits: the standby receives WAL it does not apply,
    # as under a replay conflict or a slow disk. Caught up, the lag is 0 even while the primary is idle.
    def lag():
        found = monitored.query(f'pg_replication_lag_seconds{{instance="{STANDBY}"}}')
        return float(found[0]["value"][1]) if found else None

    def pause_replay_and_commit_on_the_primary():
        sql(lab, STANDBY, "select pg_wal_replay_pause()")
        sql(lab, PRIMARY, "create table if not exists lab_lag (at timestamptz); insert into lab_lag values (now())")
    deadline = time.monotonic() + 60
    while lag() != 0:
        assert time.monotonic() < deadline, f"{STANDBY}: pg_replication_lag_seconds is {lag()}, not 0 while caught up"
        time.sleep(2)
    budget = LAG_SECONDS + seconds(LAG_FOR) + seconds(SCRAPE) + seconds(EVALUATION) + 30
    fired_after, resolved_after = fired_and_resolved(
        monitored, "PostgresReplicationLagging", {"instance": STANDBY}, budget,
        cause=pause_replay_and_commit_on_the_primary, undo=lambda: sql(lab, STANDBY, "select pg_wal_replay_resume()"),
        state=lambda: f"lag: {lag()}")
    sql(lab, PRIMARY, "drop table lab_lag")
    print(f"\nPostgresReplicationLagging for {STANDBY}: posted {fired_after:.1f} s after replay paused "
          f"(budget {budget} s), resolved {resolved_after:.1f} s after it resumed")


def test_every_dashboard_panel_returns_data_from_prometheus(monitored):
    from dashboards import fill, label_of, load, multi_value, names, queries, variables   # tests/unit/monitoring
    empty, asked = [], 0
    for name in names():
        dashboard = load(name)
        values = {}
        for var in variables(dashboard):
            if var["type"] == "constant":
                values[var["name"]] = var["query"]
                continue
            selector, label = label_of(var["query"]["query"])
            found = sorted({s[label] for s in monitored.api("/api/v1/series", **{"match[]": selector})["data"] if label in s})
            assert found, f"{name}: the variable {var['name']} has no values ({selector})"
            values[var["name"]] = multi_value(found)     # "All", as Grafana sends it
        for title, expr in queries(dashboard):
            asked += 1
            if not monitored.query(fill(expr, values)):
                empty.append(f"{name} / {title}: {fill(expr, values)}")
    assert not empty, "panels without data:\n" + "\n".join(empty)
    print(f"\n{asked} panel queries of {len(names())} dashboards, each with data")
