#!/usr/bin/env python
# Copyright (c) 2026, autoscale.hetzner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark: the postgresql role's sizing against Debian's defaults, and replication lag under load.

On the role lab's two database servers (cx23, Debian 12, PostgreSQL 15, data on their Hetzner
Volumes), playbooks/postgresql.yml makes db-1 the primary and db-2 its streaming standby. Then, on
the SAME primary in the same run, pgbench (TPC-B-like, scale 10, 8 clients, 2 threads, 30 s):

* in interleaved rounds (2 by default: the host's load drifts, each configuration gets its share),
  (a) the anchor: Debian's defaults, i.e. the sized lines of the role's conf.d file commented out
  and PostgreSQL restarted (the role's other lines stay: listen addresses, WAL level, the standby's
  slot), then (b) the role's sizing, the file put back and PostgreSQL restarted;
* each run on a freshly initialised database (pgbench -i -s 10, then CHECKPOINT), so neither
  inherits the other's bloat; TPS and average latency as pgbench reports them;
* while (b) runs, pg_stat_replication on the primary about once a second: write_lag, replay_lag and the
  bytes the standby has not replayed yet (max and median over the samples).

The local cloud is torn down at the end, also on failure or SIGTERM. Root on Linux only;
otherwise it prints why it did not run. Prints a markdown section.

    .venv/bin/python tests/bench/bench_postgresql.py [--seconds 30] [--scale 10] [--clients 8]
"""
from __future__ import annotations

import argparse
import os
import platform
import re
import signal
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "roles"))

import yaml  # noqa: E402

import lab as rolelab  # noqa: E402  (after the path)

PRIMARY, STANDBY = "rolelab-db-1", "rolelab-db-2"
CONF = "/etc/postgresql/15/main/conf.d/50-autoscale-hetzner.conf"   # the role's settings file (Debian 12)
UNIT = "postgresql@15-main"
SHOWN = ("shared_buffers", "effective_cache_size", "work_mem", "max_wal_size", "checkpoint_completion_target",
         "random_page_cost")
# The sized block of the role's file runs from its "# --- sized for" header to the next "# ---" header.
DISABLE_SIZING = (f"cp {CONF} /root/sized.conf && "
                  f"sed -i '/^# --- sized for/,/^# --- /{{/^# ---/!s/^\\([a-z]\\)/# \\1/}}' {CONF}")
RESTORE_SIZING = f"cp /root/sized.conf {CONF}"
LAG_SAMPLE = ("select coalesce(extract(epoch from write_lag), 0), coalesce(extract(epoch from replay_lag), 0), "
              "pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn) from pg_stat_replication "
              "where application_name is not null limit 1")


def shq(text):
    return "'" + text.replace("'", "'\\''") + "'"


def psql(lab, query, database="postgres"):
    return lab.ssh(PRIMARY, f"cd /tmp && runuser -u postgres -- psql -XAtq -d {database} -c {shq(query)}").stdout.strip()


def restart(lab):
    lab.ssh(PRIMARY, f"systemctl restart {UNIT} && until runuser -u postgres -- pg_isready -q; do sleep 0.2; done",
            timeout=120)


def settings(lab):
    rows = psql(lab, "select name, current_setting(name) from pg_settings where name in ("
                + ", ".join(f"'{n}'" for n in SHOWN) + ")")
    return dict(line.split("|", 1) for line in rows.splitlines())


def pgbench(lab, args, during=None):
    """Initialise the bench database, then one timed pgbench run (during() runs beside it); TPS and
    average latency in ms."""
    bin_ = "$(ls /usr/lib/postgresql/*/bin/pgbench | tail -1)"
    lab.ssh(PRIMARY, f"cd /tmp && runuser -u postgres -- {bin_} -q -i -s {args.scale} bench >/dev/null 2>&1 "
                     f"&& runuser -u postgres -- psql -XAtq -c CHECKPOINT", timeout=600)
    beside = threading.Thread(target=during, daemon=True) if during else None
    if beside:
        beside.start()
    out = lab.ssh(PRIMARY, f"cd /tmp && runuser -u postgres -- {bin_} -n -c {args.clients} -j {args.threads} "
                           f"-T {args.seconds} bench", timeout=args.seconds + 300).stdout
    load = os.getloadavg()[0]   # the 1-minute load average covers the run
    if beside:
        beside.join(timeout=60)
    tps = float(re.search(r"^tps = ([\d.]+)", out, re.M).group(1))
    latency = float(re.search(r"^latency average = ([\d.]+) ms", out, re.M).group(1))
    return tps, latency, load


def sample_lag(lab, seconds, samples):
    """pg_stat_replication once a second for `seconds`, sampled on the primary itself (one SSH
    connection: a connection per sample would take longer than the second on a loaded host)."""
    out = lab.ssh(PRIMARY, f"cd /tmp && end=$((SECONDS + {seconds})); while [ $SECONDS -lt $end ]; do "
                           f"runuser -u postgres -- psql -XAtq -c {shq(LAG_SAMPLE)}; sleep 1; done",
                  timeout=seconds + 120).stdout
    for row in out.splitlines():
        write, replay, behind = row.split("|")
        samples.append((float(write), float(replay), float(behind)))


def measure(lab, args):
    (lab.inventory / "group_vars" / "db.yml").write_text(yaml.safe_dump({
        "postgresql_replication_password": "bench-Repl-Passw0rd"}))
    t0 = time.monotonic()
    lab.playbook(ROOT / "playbooks" / "postgresql.yml", limit="db").assert_ok()
    role_seconds = time.monotonic() - t0
    streaming = psql(lab, "select count(*) from pg_stat_replication where state = 'streaming'")
    assert streaming == "1", f"the standby is not streaming ({streaming} streaming)"
    psql(lab, "drop database if exists bench")
    psql(lab, "create database bench")
    runs = {"defaults": [], "sized": []}   # (tps, latency ms, host load average) per run
    shown, samples = {}, []
    # Interleaved rounds (defaults, sizing, defaults, sizing): the host's load drifts, and each
    # configuration gets its share of it.
    for _ in range(args.rounds):
        for config in ("defaults", "sized"):
            lab.ssh(PRIMARY, DISABLE_SIZING if config == "defaults" else RESTORE_SIZING)
            restart(lab)
            shown[config] = settings(lab)
            during = (lambda: sample_lag(lab, args.seconds, samples)) if config == "sized" else None
            runs[config].append(pgbench(lab, args, during))
    assert shown["sized"] != shown["defaults"], "the role's sizing did not change any setting"
    return {"role_seconds": role_seconds, "shown": shown, "runs": runs, "samples": samples,
            "memory": lab.ssh(PRIMARY, "free -m | awk '/Mem:/{print $2}'").stdout.strip(),
            "cpus": lab.ssh(PRIMARY, "nproc").stdout.strip()}


def report(args, r):
    print("## PostgreSQL: pgbench with Debian's defaults vs the role's sizing, replication lag\n")
    print(f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, host {platform.system()} {platform.release()}, "
          f"{os.cpu_count()} CPUs (shared with whatever else runs there). The primary is a cx23 local-cloud machine "
          f"(systemd-nspawn, {r['cpus']} CPUs and {r['memory']} MB as it sees them through lxcfs; Debian 12, "
          f"PostgreSQL 15, data on its volume, a loop device on this host) streaming to a standby of the same "
          f"kind; playbooks/postgresql.yml set both up in {r['role_seconds']:.0f} s. pgbench on the primary "
          f"(TPC-B-like, scale {args.scale}, {args.clients} clients, {args.threads} threads, {args.seconds} s, "
          f"on the socket), {args.rounds} interleaved rounds (defaults, sizing, ...), each run on a freshly "
          f"initialised database. The whole bench (cloud, machines, role, runs, teardown) took "
          f"{r['total_seconds'] / 60:.1f} min.\n")
    runs = r["runs"]

    def each(config, index, fmt):
        return " / ".join(fmt.format(run[index]) for run in runs[config])

    tps = {c: statistics.median(run[0] for run in runs[c]) for c in runs}
    print("| measure | Debian's defaults | the role's sizing |\n|---|---|---|")
    for name in SHOWN:
        print(f"| {name} | {r['shown']['defaults'].get(name, '?')} | {r['shown']['sized'].get(name, '?')} |")
    print(f"| TPS, each round | {each('defaults', 0, '{:.0f}')} | {each('sized', 0, '{:.0f}')} |")
    print(f"| **TPS, median** | **{tps['defaults']:.0f}** | **{tps['sized']:.0f}** "
          f"({(tps['sized'] / tps['defaults'] - 1) * 100:+.0f} %) |")
    print(f"| average latency, each round | {each('defaults', 1, '{:.1f}')} ms | {each('sized', 1, '{:.1f}')} ms |")
    print(f"| host load average (1 min) at the end of the run | {each('defaults', 2, '{:.1f}')} | "
          f"{each('sized', 2, '{:.1f}')} |")
    samples = r["samples"]
    if samples:
        write, replay, behind = zip(*samples)
        print(f"\nReplication under the sized runs ({len(samples)} samples of pg_stat_replication on the primary, "
              f"about one a second):\n")
        print("| standby lag | median | max |\n|---|---|---|")
        print(f"| write_lag | {statistics.median(write) * 1000:.1f} ms | {max(write) * 1000:.1f} ms |")
        print(f"| replay_lag | {statistics.median(replay) * 1000:.1f} ms | {max(replay) * 1000:.1f} ms |")
        print(f"| bytes not yet replayed | {statistics.median(behind) / 1024:.0f} KiB | {max(behind) / 1024:.0f} KiB |")
    else:
        print("\nNo pg_stat_replication sample during the sized run (the standby was not connected).")
    print()


def bench_stack() -> dict:
    """The role lab's db tier with its two data volumes (tests/integration/test_bench_stacks.py has the
    stack module plan it)."""
    stack = rolelab.load_stack()
    stack["tiers"] = [t for t in stack["tiers"] if t["name"] == "db"]
    stack["firewalls"] = [f for f in stack["firewalls"] if f["name"] in stack["tiers"][0]["firewalls"]]
    stack["volumes"] = [v for v in stack["volumes"] if v["name"] in ("rolelab-db-1-data", "rolelab-db-2-data")]
    stack["load_balancers"] = []     # the lab's load balancer targets the web tier, which is not here
    return stack


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--scale", type=int, default=10)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    reason = rolelab.skip_reason()
    if reason:
        print(f"## PostgreSQL: pgbench with Debian's defaults vs the role's sizing, replication lag\n\nNot run: {reason}.\n")
        return
    # SIGTERM (a killed make) ends like Ctrl-C: through the finally below, which tears the cloud down.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    stack = bench_stack()
    with tempfile.TemporaryDirectory(prefix="bench-postgresql-") as tmp:
        lab = rolelab.Lab(Path(tmp), stack=stack)
        t0 = time.monotonic()
        try:
            lab.start()
            result = measure(lab, args)
        finally:
            lab.close()
    result["total_seconds"] = time.monotonic() - t0
    report(args, result)


if __name__ == "__main__":
    main()
