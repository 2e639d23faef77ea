#!/usr/bin/env python
# Copyright (c) 2026, autoscale.hetzner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark: PostgreSQL HA (postgresql_ha: patroni) — how long writes stop after a hard failure of
the primary and during a planned switchover, and how many acknowledged writes are lost.

On the HA lab of tests/ha (ha_lab.py: two database servers with their volumes, the monitoring server
as the third etcd member and the client; Patroni in synchronous mode, the role's timing defaults:
ttl 20 s, loop_wait 5 s, retry_timeout 5 s), playbooks/postgresql.yml once, then ROUNDS rounds of:

* a planned switchover (playbooks/db-switchover.yml -e confirm=yes) while the client writes: the
  longest time without an acknowledged write while the playbook ran;
* a hard failure: once Patroni names the replica its synchronous standby, the primary is powered off
  through the API (poweroff, no shutdown) while the client writes: the time from the power-off to the
  first write the other node acknowledges; then the old primary is powered on and the time until it
  streams again as a replica (Patroni rewinds it, no manual step) is noted.

The client (tests/ha/writer.py, on the witness) writes a numbered row every 50 ms through the libpq
multi-host connection string with target_session_attrs=read-write (connect_timeout 2 s,
tcp_user_timeout 5 s) and logs each number it got an acknowledgement for; every acknowledged number
is looked up on the new primary afterwards ("lost" = acknowledged but not there).

The local cloud is torn down at the end, also on failure or SIGTERM. Root on Linux only; otherwise
it prints why it did not run. Prints a markdown section.

    .venv/bin/python tests/bench/bench_ha.py [--rounds 5]
"""
from __future__ import annotations

import argparse
import os
import platform
import signal
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "ha"))

import ha_lab  # noqa: E402  (after the path)
from ha_lab import DB1, DB2, SWITCHOVER, Writer, longest_gap, primary, wait_streaming, wait_sync  # noqa: E402

TITLE = "## PostgreSQL HA (Patroni): writes after a failover and a switchover, acknowledged writes lost"


def other(host):
    return DB2 if host == DB1 else DB1


def switchover(lab, number):
    old = primary(lab)
    new = other(old)
    wait_sync(lab, new)
    with Writer(lab, f"bench_switchover_{number}") as writer:
        start = time.time()
        run = lab.playbook(SWITCHOVER, extra_vars={"confirm": "yes"}).assert_ok()
        end = time.time()
        writer.wait_acks(20, since=end, server=lab.hosts[new].private_ip)
    acks = writer.acks()
    lost = {a.n for a in acks} - writer.stored(new)
    wait_streaming(lab, old, timeout=120)
    return {"from": old, "to": new, "gap": longest_gap(acks, start, end), "playbook": run.seconds,
            "acks": len(acks), "lost": len(lost), "load": os.getloadavg()[0]}


def failover(lab, number):
    old = primary(lab)
    new = other(old)
    server = lab.api().servers.get_by_name(old)
    wait_sync(lab, new)
    with Writer(lab, f"bench_failover_{number}") as writer:
        writer.wait_acks(40)
        killed = time.time()
        lab.api().servers.power_off(server).wait_until_finished(max_retries=600)
        resumed = writer.wait_acks(1, since=killed, server=lab.hosts[new].private_ip, timeout=180)[0]
        writer.wait_acks(20, since=resumed.at)
    acks = writer.acks()
    lost = {a.n for a in acks} - writer.stored(new)
    load = os.getloadavg()[0]
    powered = time.monotonic()
    lab.api().servers.power_on(server).wait_until_finished(max_retries=600)
    rejoined = wait_streaming(lab, old, timeout=300) - powered
    return {"from": old, "to": new, "resume": resumed.at - killed, "rejoin": rejoined,
            "acks": len(acks), "lost": len(lost), "load": load}


def measure(lab, rounds):
    first = ha_lab.converge(lab)
    result = {"role_seconds": first.seconds, "switchovers": [], "failovers": []}
    # Interleaved (switchover, failover, ...): the host's load drifts, each kind gets its share of it.
    for number in range(1, rounds + 1):
        result["switchovers"].append(switchover(lab, number))
        print(f"switchover {number}: {result['switchovers'][-1]}", file=sys.stderr)
        result["failovers"].append(failover(lab, number))
        print(f"failover {number}: {result['failovers'][-1]}", file=sys.stderr)
    return result


def report(args, r):
    print(f"{TITLE}\n")
    switchovers, failovers = r["switchovers"], r["failovers"]
    print(f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, host {platform.system()} {platform.release()}, "
          f"{os.cpu_count()} CPUs (shared with whatever else runs there). The HA lab of tests/ha: two cx23 database "
          f"servers (Debian 12, PostgreSQL 15, data on their volumes) under Patroni in synchronous mode, etcd on them "
          f"and on the monitoring server (the witness, also the client), the role's timing defaults (ttl 20 s, "
          f"loop_wait 5 s, retry_timeout 5 s); playbooks/postgresql.yml set it up in {r['role_seconds']:.0f} s. "
          f"A client on the witness writes a numbered row every 50 ms through the multi-host connection string "
          f"(target_session_attrs=read-write, connect_timeout 2 s, tcp_user_timeout 5 s). {args.rounds} interleaved "
          f"rounds of a switchover (playbooks/db-switchover.yml) and a hard power-off of the primary through the API "
          f"(each once Patroni names the replica its synchronous standby); the whole bench (cloud, machines, role, "
          f"rounds, teardown) took {r['total_seconds'] / 60:.1f} min.\n")

    def each(runs, key, fmt="{:.1f}"):
        return " / ".join(fmt.format(run[key]) for run in runs)

    def median(runs, key):
        return statistics.median(run[key] for run in runs)

    print("| measure | median | each round |\n|---|---|---|")
    print(f"| **writes resume after a hard power-off of the primary** | **{median(failovers, 'resume'):.1f} s** | "
          f"{each(failovers, 'resume')} s |")
    print(f"| **longest write pause during a switchover** | **{median(switchovers, 'gap'):.2f} s** | "
          f"{each(switchovers, 'gap', '{:.2f}')} s |")
    print(f"| switchover playbook, wall time | {median(switchovers, 'playbook'):.1f} s | {each(switchovers, 'playbook')} s |")
    print(f"| old primary powered on until it streams as a replica (rejoin, pg_rewind) | {median(failovers, 'rejoin'):.0f} s | "
          f"{each(failovers, 'rejoin', '{:.0f}')} s |")
    print(f"| **acknowledged writes lost**, failovers | **{sum(f['lost'] for f in failovers)}** of "
          f"{sum(f['acks'] for f in failovers)} | {each(failovers, 'lost', '{}')} |")
    print(f"| **acknowledged writes lost**, switchovers | **{sum(s['lost'] for s in switchovers)}** of "
          f"{sum(s['acks'] for s in switchovers)} | {each(switchovers, 'lost', '{}')} |")
    print(f"| host load average (1 min) after each failover | | {each(failovers, 'load')} |")
    print()
    print("Where a failover's time goes: the dead primary's leader key in etcd expires after at most ttl (20 s) "
          "since its last renewal (every loop_wait, 5 s), then the synchronous standby's Patroni promotes it at its "
          "next loop; the client notices the dead server after tcp_user_timeout (5 s) at most and finds the new "
          "primary through the multi-host string. A smaller ttl shortens it (Patroni refuses below 20 s here: see "
          "postgresql_patroni_ttl); a switchover needs no expiry, only a clean shutdown and a promotion.")
    print()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    reason = ha_lab.ha_skip_reason()
    if reason:
        print(f"{TITLE}\n\nNot run: {reason}.\n")
        return
    # SIGTERM (a killed make) ends like Ctrl-C: through the finally below, which tears the cloud down.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with tempfile.TemporaryDirectory(prefix="bench-ha-") as tmp:
        lab = ha_lab.Lab(Path(tmp), stack=ha_lab.ha_stack())
        t0 = time.monotonic()
        try:
            lab.start()
            result = measure(lab, args.rounds)
        finally:
            lab.close()
    result["total_seconds"] = time.monotonic() - t0
    report(args, result)


if __name__ == "__main__":
    main()
