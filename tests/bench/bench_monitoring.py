#!/usr/bin/env python
# Copyright (c) 2026, autoscale.hetzner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark: Prometheus's memory and scrape durations for the production scenario's targets.

The production scenario's servers (3 web, 2 app, 2 db, 1 monitoring; all cx23 here) on local-cloud
machines, a load balancer in front of the web tier, playbooks/monitoring.yml with the roles'
production defaults (30 s scrapes, 35 d retention). Measured on the monitoring host after a few
minutes of scraping:
* Prometheus's resident memory, Go heap in use and head series;
* scrape duration per job (mean and max over the window) and samples per scrape.

The anchor, in the same run on the same machine: Debian's prometheus package as installed, with its
own default configuration (itself and a local node_exporter), measured the same way before the role.

Uses the role lab of tests/roles. Root on Linux only; otherwise it prints why it did not run.

    .venv/bin/python tests/bench/bench_monitoring.py        # BENCH_MONITORING_MINUTES=3 by default
"""
from __future__ import annotations

import json
import os
import platform
import shlex
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "roles"))

import lab as rolelab  # noqa: E402  (after the path)
from monitoring_lab import load_balancer_url, serve_http_on_the_web_tier  # noqa: E402

MON = "rolelab-mon-1"
MINUTES = float(os.environ.get("BENCH_MONITORING_MINUTES", "3"))


def production_stack() -> dict:
    """The lab topology with the production scenario's server counts (cx23 everywhere)."""
    stack = rolelab.load_stack()
    counts = {"web": 3, "app": 2, "db": 2, "monitoring": 1}
    for tier in stack["tiers"]:
        base = 10 + 10 * ["web", "app", "db", "monitoring"].index(tier["name"])
        tier["server_type"] = "cx23"
        tier["servers"] = [{"name": f"rolelab-{tier['name'] if tier['name'] != 'monitoring' else 'mon'}-{i + 1}",
                            "ip": f"10.77.1.{base + i}", "image": "debian-12"} for i in range(counts[tier["name"]])]
    stack["volumes"] = []
    return stack


def debian_postgresql(lab, host):
    """Debian's postgresql package with the cluster it creates: what postgres_exporter scrapes here. The
    bench's db hosts have no volumes, which the postgresql role requires for its data (its own test,
    tests/roles/test_postgresql.py, runs it on the role lab)."""
    install = "DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null"
    lab.ssh(host, f"{install} || {{ apt-get update -qq && {install}; }}", timeout=900)


def prom(lab, address, promql):
    out = lab.ssh(MON, f"curl -sfG --max-time 20 --data-urlencode {shlex.quote('query=' + promql)} "
                       f"http://{address}/api/v1/query").stdout
    return {tuple(sorted(r["metric"].items())): float(r["value"][1]) for r in json.loads(out)["data"]["result"]}


def measure(lab, address, window, selector=""):
    """selector: label matchers that keep this configuration's series (the role's Prometheus kept the
    anchor's data; its series stay visible for 5 minutes after the switch)."""
    one = lambda q: next(iter(prom(lab, address, q).values()), float("nan"))  # noqa: E731
    by_job = lambda q: {dict(k).get("job", "?"): v for k, v in prom(lab, address, q).items()}  # noqa: E731
    sel = f", {selector}" if selector else ""
    return {
        "rss": one(f'process_resident_memory_bytes{{job="prometheus"{sel}}}') / 2**20,
        "heap": one(f'go_memstats_heap_inuse_bytes{{job="prometheus"{sel}}}') / 2**20,
        "series": one(f'prometheus_tsdb_head_series{{job="prometheus"{sel}}}'),
        "targets": one(f'count(up{{job=~".+"{sel}}})'),
        "mean": by_job(f'avg by (job) (avg_over_time(scrape_duration_seconds{{job=~".+"{sel}}}[{window}]))'),
        "max": by_job(f'max by (job) (max_over_time(scrape_duration_seconds{{job=~".+"{sel}}}[{window}]))'),
        "samples": by_job(f'sum by (job) (scrape_samples_scraped{{job=~".+"{sel}}})'),
    }


def main():
    reason = rolelab.skip_reason()
    if reason:
        print(f"## Monitoring (Prometheus memory and scrape duration)\n\nNot run: {reason}.\n")
        return
    window = f"{int(MINUTES * 60)}s"
    with tempfile.TemporaryDirectory(prefix="bench-monitoring-") as tmp:
        lab = rolelab.Lab(Path(tmp), stack=production_stack())
        try:
            lab.start()
            hosts = len(lab.hosts)
            # The anchor: Debian's package with its own configuration.
            lab.ssh(MON, "DEBIAN_FRONTEND=noninteractive apt-get update -qq && "
                         "DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null", timeout=900)
            time.sleep(MINUTES * 60)
            anchor = measure(lab, "127.0.0.1:9090", window)
            serve_http_on_the_web_tier(lab, [h for h in lab.hosts if "-web-" in h])
            # Debian's postgresql on each db host (see debian_postgresql).
            with ThreadPoolExecutor() as pool:
                list(pool.map(lambda h: debian_postgresql(lab, h), [h for h in lab.hosts if "-db-" in h]))
            run = lab.playbook(ROOT / "playbooks" / "monitoring.yml", extra_vars={
                "prometheus_blackbox_targets": [load_balancer_url(lab)],
                "grafana_when_unreachable": "skip", "grafana_admin_password": "bench-Passw0rd"}).assert_ok()
            # The package's Prometheus kept its data; restart the clock for the role's configuration.
            time.sleep(MINUTES * 60)
            role = measure(lab, f"{lab.hosts[MON].private_ip}:9090", window, 'instance!~"localhost:.*"')
        finally:
            lab.close()
    load = os.getloadavg()[0]
    print("## Monitoring (Prometheus memory and scrape duration)\n")
    print(f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {platform.system()} {platform.release()}, "
          f"{os.cpu_count()} CPUs, load average at the end {load:.1f}. The production scenario's {hosts} servers "
          f"(3 web, 2 app, 2 db, 1 monitoring; Debian 12, cx23) on local-cloud machines and a load balancer; "
          f"playbooks/monitoring.yml with the production defaults (scrape and evaluation every 30 s); measured on the "
          f"monitoring host after {MINUTES:g} minutes of scraping. Anchor: Debian's prometheus package with its own "
          f"configuration (itself and a local node_exporter) on the same machine, before the role. "
          f"The db hosts run Debian's postgresql package as installed (the bench's db hosts have no volumes, which the PostgreSQL role needs); "
          f"monitoring.yml took {run.seconds:.0f} s.\n")
    print("| measure | Debian's default config (anchor) | the role, production targets |\n|---|---|---|")
    print(f"| targets | {anchor['targets']:.0f} | {role['targets']:.0f} |")
    print(f"| head series | {anchor['series']:.0f} | {role['series']:.0f} |")
    print(f"| resident memory | {anchor['rss']:.0f} MiB | {role['rss']:.0f} MiB |")
    print(f"| Go heap in use | {anchor['heap']:.0f} MiB | {role['heap']:.0f} MiB |")
    for job in sorted(set(role["mean"]) | set(anchor["mean"])):
        a = (f"{anchor['mean'][job] * 1000:.1f} / {anchor['max'][job] * 1000:.1f} ms, {anchor['samples'].get(job, 0):.0f} samples"
             if job in anchor["mean"] else "—")
        r = (f"{role['mean'][job] * 1000:.1f} / {role['max'][job] * 1000:.1f} ms, {role['samples'].get(job, 0):.0f} samples"
             if job in role["mean"] else "—")
        print(f"| scrape duration mean / max, job {job} | {a} | {r} |")
    print()


if __name__ == "__main__":
    main()
