#!/usr/bin/env python
# Copyright (c) 2026, autoscale.hetzner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark: site.yml end to end through `make demo` (scripts/demo.py) on the local cloud.

* `make demo` cold (no local cloud, no servers: cloud start, provisioning, every role) and warm
  (everything converged: the no-change run, which skips the configuration plays), for the minimal
  and the production scenario; the goal for the production no-change run is <= 60 s;
* the same no-change run with every role (`-e site_full_run=true`): what a run costs when something
  changed somewhere (every role runs, and finds little to do);
* the time per role in the cold run and in the run with every role (ansible.posix.profile_roles: the
  sum of the role's task times over its hosts' batches, wall time per task).

Root on Linux only (machines); otherwise it prints why it did not run. The base images are cached
in /var/cache/localcloud/images (a new machine builds them once: + 2-3 min on the first cold run).
Prints a markdown section. BENCH_SCENARIOS="minimal" limits the scenarios.

    .venv/bin/python tests/bench/bench_site.py
"""
from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

from harness import PlaybookRun, machines_skip_reason  # noqa: E402  (after the path)

ROLE_LINE = re.compile(r"^(?:autoscale\.hetzner\.)?([a-z0-9_]+) -+ ([\d.]+)s\s*$", re.M)


def demo(env: dict, command: str, scenario: str, args: str = "") -> PlaybookRun:
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "demo.py"), command, "--scenario", scenario],
                          env=dict(env, DEMO_ARGS=args),
                          cwd=ROOT, capture_output=True, text=True, timeout=5400, check=False)
    return PlaybookRun.parse(["demo.py", command, scenario], proc.returncode, proc.stdout + proc.stderr,
                             time.monotonic() - t0)


def seconds(run: PlaybookRun | None) -> str:
    if run is None:
        return "-"
    return f"{run.seconds:.0f} s" if run.rc == 0 else f"failed (rc {run.rc})"


def role_times(run: PlaybookRun) -> dict[str, float]:
    times = {}
    for m in ROLE_LINE.finditer(run.output):
        if m.group(1) != "total":
            times[m.group(1)] = times.get(m.group(1), 0.0) + float(m.group(2))
    return times


def main():
    reason = machines_skip_reason("site.yml benchmarks")
    print("## site.yml end to end (make demo)\n")
    if reason:
        print(f"Not run: {reason}.\n")
        return
    scenarios = os.environ.get("BENCH_SCENARIOS", "minimal production").split()
    work = Path(tempfile.mkdtemp(prefix="bench-site-"))
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(work / "key")], check=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "HCLOUD_", "DEMO_"))}
    env.update(DEMO_DIR=str(work / "demo"), DEMO_SSH_KEY=str(work / "key"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_CALLBACKS_ENABLED="ansible.posix.profile_roles")
    results = {}
    try:
        for scenario in scenarios:
            cold = demo(env, "up", scenario)
            warm = demo(env, "up", scenario) if cold.rc == 0 else None
            full = demo(env, "up", scenario, "-e site_full_run=true") if cold.rc == 0 else None
            results[scenario] = (cold, warm, full)
    finally:
        demo(env, "down", "minimal")
    load = os.getloadavg()[0]
    print(f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {platform.system()} {platform.release()}, "
          f"{os.cpu_count()} CPUs, load {load:.1f} at the end (other engineers' runs share the machine). "
          "Each scenario in a local cloud of its own (a free slot), base images cached, action times 0.5 s.\n")
    print("| scenario | servers | make demo cold | make demo warm (no-change run) | the same with every role (site_full_run=true) "
          "| hosts changed on the warm runs |")
    print("|---|---:|---:|---:|---:|---|")
    for scenario, (cold, warm, full) in results.items():
        servers = len([h for h in cold.recap if h != "localhost"])
        if cold.rc != 0:
            print(f"| {scenario} | {servers} | failed (rc {cold.rc}) | - | - | - |")
            continue
        changed = sorted({h for run in (warm, full) if run for h, c in run.recap.items() if c["changed"]})
        skipped = "Nothing changed since the last complete run" in warm.output
        goal = " (goal <= 60 s)" if scenario == "production" else ""
        print(f"| {scenario} | {servers} | {cold.seconds:.0f} s | {seconds(warm)}{goal}, "
              f"{'configuration plays skipped' if skipped else 'every role ran'} | {seconds(full)} | "
              f"{', '.join(changed) or 'none (changed=0 on every host)'} |")
    for scenario, (cold, warm, full) in results.items():
        if cold.rc != 0 or warm is None:
            print(f"\n{scenario}: the cold run failed:\n```\n{cold.tail(30)}\n```")
            continue
        for run in (warm, full):
            if run.rc != 0:
                print(f"\n{scenario}: {' '.join(run.args)} failed:\n```\n{run.tail(30)}\n```")
        first, every = role_times(cold), role_times(full)
        print(f"\nTime per role, {scenario} (profile_roles: task times summed per role; hosts of a task run in parallel):\n")
        print("| role | cold | every role, nothing to change (site_full_run=true) |")
        print("|---|---:|---:|")
        for role in sorted(first, key=lambda r: -first[r]):
            print(f"| {role} | {first[role]:.1f} s | {every.get(role, 0.0):.1f} s |")
    print()


if __name__ == "__main__":
    main()
