#!/usr/bin/env python
# Copyright (c) 2026, autoscale.hetzner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark: the security roles of playbooks/harden.yml (base_hardening, ssh_hardening, fail2ban,
host_firewall) on local-cloud machines.

* lynis hardening index of a web host before and after the whole of playbooks/harden.yml (the
  anchor: the same Debian 12 machine before the roles, in the same run), and the lynis findings that
  remain, with the ones a container cannot fix marked;
* wall time of harden.yml on 4 hosts (Debian 12 and 13, web/app/db), first run and no-change run,
  and the time per role (ansible.posix.profile_roles).

Uses the role lab of tests/roles (one local cloud with machines, the stack module, the inventory
plugin). Root on Linux only; otherwise it prints why it did not run. Prints a markdown section.

    .venv/bin/python tests/bench/bench_security_roles.py
"""
from __future__ import annotations

import copy
import os
import platform
import re
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "roles"))

import lab as rolelab  # noqa: E402  (after the path)

BENCH_HOSTS = ["rolelab-web-1", "rolelab-web-2", "rolelab-app-1", "rolelab-db-1"]
LYNIS_HOST = "rolelab-web-1"
# Findings that depend on the host, not on what a role inside a systemd-nspawn machine may change.
CONTAINER_BOUND = {
    "KRNL-5788": "no kernel image in the machine (/vmlinuz)",
    "KRNL-6000": "kernel.* sysctls are read-only (they are the host's)",
    "ACCT-9628": "auditd cannot run (no audit netlink in a container)",
    "FILE-6310": "/home, /tmp, /var as separate filesystems: one overlay layer",
    "USB-1000": "USB drivers: the host's kernel",
    "STRG-1846": "firewire drivers: the host's kernel",
    "NETW-3200": "protocol modules (dccp, sctp, rds, tipc): the host's kernel",
    "TIME-3104": "time synchronisation: chrony needs CAP_SYS_TIME (the host's clock)",
    "MACF-6208": "AppArmor/SELinux: not in the host kernel",
    # Not HRDN-7222 (compilers): binutils' /usr/bin/as is in the machine and world-executable; a
    # role could restrict it to root, a container does not stop it.
}


def lynis(lab, name):
    out = lab.ssh(name, "command -v lynis >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq lynis >/dev/null; "
                        "lynis audit system --quick --no-colors >/dev/null 2>&1; "
                        "grep -E '^(hardening_index|suggestion\\[\\]|warning\\[\\])=' /var/log/lynis-report.dat",
                  timeout=600).stdout
    index = int(re.search(r"^hardening_index=(\d+)", out, re.M).group(1))
    findings = sorted({m.group(1) for m in re.finditer(r"^(?:suggestion|warning)\[\]=([A-Z]+-\d+)\|", out, re.M)})
    ssh = sorted({m.group(1) for m in re.finditer(r"^suggestion\[\]=SSH-7408\|[^|]*\|([^|]*)\|", out, re.M)})
    return index, findings, ssh


def bench_stack() -> dict:
    """The role lab's stack with only the measured hosts: the lab's other servers (db-2, the monitoring
    server) and their volumes would only add load to the host while the roles are timed.
    tests/integration/test_bench_stacks.py has the stack module plan it."""
    stack = rolelab.load_stack()
    stack["tiers"] = [dict(t, servers=[s for s in t["servers"] if s["name"] in BENCH_HOSTS]) for t in stack["tiers"]]
    stack["tiers"] = [t for t in stack["tiers"] if t["servers"]]
    stack["volumes"] = [v for v in stack.get("volumes", []) if v.get("server") in BENCH_HOSTS]
    return stack


def main():
    reason = rolelab.skip_reason()
    if reason:
        print(f"## Security roles\n\nNot run: {reason}.\n")
        return
    stack = bench_stack()
    with tempfile.TemporaryDirectory(prefix="bench-security-") as tmp:
        lab = rolelab.Lab(Path(tmp), stack=copy.deepcopy(stack))
        try:
            lab.start()
            lab.ssh(LYNIS_HOST, "apt-get update -qq", timeout=300)
            before, _, _ = lynis(lab, LYNIS_HOST)
            os.environ["ANSIBLE_CALLBACKS_ENABLED"] = "ansible.posix.profile_roles"
            first = lab.harden(limit=",".join(BENCH_HOSTS)).assert_ok()
            second = lab.harden(limit=",".join(BENCH_HOSTS)).assert_unchanged()
            after, remaining, ssh_items = lynis(lab, LYNIS_HOST)
        finally:
            lab.close()
    roles = {}
    for run, column in ((first, 0), (second, 1)):
        for m in re.finditer(r"^(?:autoscale\.hetzner\.)?(base_hardening|ssh_hardening|fail2ban|host_firewall) -+ ([\d.]+)s\s*$", run.output, re.M):
            roles.setdefault(m.group(1), [None, None])[column] = float(m.group(2))
    load = os.getloadavg()[0]
    print("## Security roles (base_hardening, ssh_hardening, fail2ban, host_firewall)\n")
    print(f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {platform.system()} {platform.release()}, "
          f"{os.cpu_count()} CPUs, load average at the end {load:.1f}. playbooks/harden.yml (preflight of the four "
          f"roles on every host, then the roles) on {len(BENCH_HOSTS)} local-cloud machines (web-1 and db-1 Debian 12, "
          f"web-2 and app-1 Debian 13), 20 forks, pipelining, ControlPersist.\n")
    print("| measure | result |\n|---|---|")
    print(f"| lynis hardening index of {LYNIS_HOST} (Debian 12) before the roles | {before} |")
    print(f"| lynis hardening index of {LYNIS_HOST} after harden.yml (the four roles) | {after} (goal ≥ 80) |")
    print(f"| harden.yml, first run, 4 hosts | {first.seconds:.1f} s |")
    print(f"| harden.yml, no-change run, 4 hosts (changed=0) | {second.seconds:.1f} s |")
    for role, (t1, t2) in roles.items():
        print(f"| {role}: first / no-change run (sum over hosts' tasks, profile_roles) | {t1:.1f} s / {t2:.1f} s |")
    bound = [f for f in remaining if f in CONTAINER_BOUND]
    other = [f for f in remaining if f not in CONTAINER_BOUND]
    print(f"\nlynis findings left after the roles ({len(remaining)}). A container cannot fix: "
          + "; ".join(f"{f} ({CONTAINER_BOUND[f]})" for f in bound) + ".")
    print(f"Left by the roles on purpose or outside their scope: {', '.join(other) or 'none'}.")
    print(f"SSH-7408 items lynis still suggests (kept on purpose, see roles/ssh_hardening/README.md): {'; '.join(ssh_items)}.\n")


if __name__ == "__main__":
    main()
