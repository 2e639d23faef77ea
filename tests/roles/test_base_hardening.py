"""base_hardening, proven from outside on hardened lab hosts (Debian 12 and 13), each with a fresh
host of the same lab as the negative control: PAM refuses a weak password, a login shell creates
files others cannot read, a crashing process leaves no core, SSH clients see the legal banner
before they log in, unattended-upgrades would install security updates only, the reverse-path
filter is strict on every interface of the machine's network namespace, AIDE reports a file added
after its database was built, and no unit failed (process accounting is skipped in a container,
where the kernel refuses it)."""
from __future__ import annotations

import re
import secrets
import subprocess

import pytest

from lab import SSH_OPTS, fresh, hardened, lab, skip_reason  # noqa: F401  (fixtures)

pytestmark = pytest.mark.skipif(skip_reason() is not None, reason=skip_reason() or "")

TARGETS = ["rolelab-web-1", "rolelab-web-2"]   # Debian 12, Debian 13
TEST_USER = "bh-probe"


def strong_password() -> str:
    # four character classes, no dictionary word, 24 characters
    return "Aa1!" + secrets.token_urlsafe(15).replace("-", "x").replace("_", "y")


def set_password(lab, host: str, password: str):
    """chpasswd through PAM (common-password: pam_pwquality, then pam_unix), as root."""
    return lab.ssh(host, f"echo '{TEST_USER}:{password}' | chpasswd 2>&1; echo rc=$?", check=False)


@pytest.mark.parametrize("target", TARGETS)
def test_pam_refuses_a_weak_password_and_takes_a_strong_one(lab, hardened, fresh, target):
    control = fresh[0].name
    try:
        for host in (target, control):
            lab.ssh(host, f"id {TEST_USER} >/dev/null 2>&1 || useradd -m {TEST_USER}")
        weak = set_password(lab, target, "password1")
        assert "rc=0" not in weak.stdout and "BAD PASSWORD" in weak.stdout, weak.stdout
        strong = set_password(lab, target, strong_password())
        assert "rc=0" in strong.stdout, strong.stdout
        # Negative control: the same weak password on a host the role never touched.
        assert "rc=0" in set_password(lab, control, "password1").stdout
        print(f"\n{target}: 'password1' refused ({weak.stdout.splitlines()[0]}); a strong one accepted")
    finally:
        for host in (target, control):
            lab.ssh(host, f"userdel -r {TEST_USER} >/dev/null 2>&1; true", check=False)


# A file and a directory made by a login shell (what an admin does by hand), and the umask of a
# non-login command (what Ansible and scp run), which must stay 022.
UMASK_PROBE = ("d=$(mktemp -d /tmp/bh-umask.XXXXXX); "
               "bash -lc \"cd $d && touch file && mkdir dir && stat -c '%a' file dir\"; "
               "sh -c umask; rm -rf \"$d\"")


@pytest.mark.parametrize("target", TARGETS)
def test_a_login_shell_creates_files_others_cannot_read(lab, hardened, fresh, target):
    hardened_modes = lab.ssh(target, UMASK_PROBE).stdout.split()
    assert hardened_modes == ["640", "750", "0022"], hardened_modes
    assert lab.ssh(fresh[0].name, UMASK_PROBE).stdout.split() == ["644", "755", "0022"]


# Crash a process after trying to raise the soft core limit (the default soft limit is already 0,
# so without the attempt a fresh host would show nothing either).
CRASH_PROBE = ("d=$(mktemp -d /tmp/bh-core.XXXXXX); cd \"$d\"; "
               "ulimit -S -c unlimited 2>/dev/null; echo \"hard=$(ulimit -H -c) soft=$(ulimit -S -c)\"; "
               "python3 -c 'import os, signal; os.kill(os.getpid(), signal.SIGSEGV)'; "
               "echo \"cores=$(ls | grep -c '^core')\"; cd /; rm -rf \"$d\"; cat /proc/sys/kernel/core_pattern")


@pytest.mark.parametrize("target", TARGETS)
def test_a_crashing_process_leaves_no_core(lab, hardened, fresh, target):
    out = lab.ssh(target, CRASH_PROBE, check=False).stdout
    assert "hard=0 soft=0" in out and "cores=0" in out, out
    control = lab.ssh(fresh[0].name, CRASH_PROBE, check=False).stdout
    assert "hard=unlimited" in control, control
    # The core pattern is the host's kernel's: only a plain file name leaves a file beside the process.
    if not control.strip().splitlines()[-1].startswith("|"):
        assert "cores=1" in control, f"negative control: the crash on a fresh host left no core\n{control}"


def banner(ip: str, key) -> str:
    """What an SSH client shows before it logs in (LogLevel INFO shows the server's banner; the
    first value of an option counts, so it comes before SSH_OPTS' LogLevel=ERROR)."""
    proc = subprocess.run(["ssh", "-o", "LogLevel=INFO", *SSH_OPTS, "-i", str(key), f"root@{ip}", "true"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stderr


def test_ssh_clients_see_the_legal_banner_before_login(lab, hardened, fresh):
    for target in TARGETS:
        shown = banner(lab.ip(target), lab.key)
        assert "Authorized access only" in shown and "prosecution" in shown, shown
        assert "Debian" not in shown, f"{target}: the banner names the OS: {shown}"
    assert "Authorized access only" not in banner(fresh[0].ip, lab.key)


SECURITY = re.compile(r"^Inst (\S+) .*\(\S+ Debian-Security:", re.M)
INST = re.compile(r"^Inst (\S+) ", re.M)


@pytest.mark.parametrize("target", TARGETS)
def test_unattended_upgrades_would_install_security_updates_only(lab, hardened, target):
    # What apt would upgrade, and from which suite; then what unattended-upgrades would do.
    # The update is tried up to three times, as Ansible's apt module does: the local cloud's apt watchdog ends a
    # http method stuck on a connection the apt proxy closed, and apt-get then fails that update (aptwatch.py).
    sim = lab.ssh(target, "ok=; for try in 1 2 3; do apt-get update -qq && ok=1 && break; sleep 2; done; "
                          "[ -n \"$ok\" ] && apt-get -s -o Debug::NoLocking=1 upgrade", timeout=600).stdout
    security = {m.group(1) for m in SECURITY.finditer(sim)}
    others = {m.group(1) for m in INST.finditer(sim)} - security
    dry = lab.ssh(target, "unattended-upgrade --dry-run -d 2>&1", check=False, timeout=600).stdout
    origins = re.search(r"Allowed origins are: (.*)", dry)
    assert origins, dry[-3000:]
    # "origin=Debian,codename=bookworm-security,label=Debian-Security, origin=..." (patterns hold commas)
    allowed = [o.strip() for o in origins.group(1).strip().strip("[]").split(", ") if o.strip()]
    assert allowed and all("label=Debian-Security" in o for o in allowed), origins.group(1)
    planned = re.search(r"Packages that will be upgraded: (.*)", dry)
    picked = set(planned.group(1).split()) if planned else set()
    assert not picked & others, f"would install non-security updates: {sorted(picked & others)}"
    if security:
        assert picked, f"security updates are pending ({sorted(security)}) but none would be installed:\n{dry[-3000:]}"
    timers = lab.ssh(target, "systemctl is-enabled apt-daily.timer apt-daily-upgrade.timer").stdout.split()
    assert timers == ["enabled", "enabled"], timers
    print(f"\n{target}: security updates pending {len(security)}, unattended-upgrades would install "
          f"{len(picked)} ({' '.join(sorted(picked)[:8])}{' ...' if len(picked) > 8 else ''}); "
          f"{len(others)} other updates left for the admin")


# The value the kernel uses per interface: the higher of conf.all and the interface's own.
RP_FILTER = ("a=$(cat /proc/sys/net/ipv4/conf/all/rp_filter); "
             "for d in /proc/sys/net/ipv4/conf/*/; do i=$(basename $d); case $i in all|default) continue;; esac; "
             "v=$(cat $d/rp_filter); [ $v -gt $a ] && e=$v || e=$a; "
             "r=$(cat $d/accept_redirects); ra=$(cat /proc/sys/net/ipv4/conf/all/accept_redirects); "
             "echo \"$i rp_filter=$e redirects=$(( r | ra ))\"; done")


def test_reverse_path_filter_is_strict_in_each_machines_network_namespace(lab, hardened, fresh):
    for target in sorted(hardened.recap):
        lines = lab.ssh(target, RP_FILTER).stdout.split("\n")
        effective = dict(line.split(" ", 1) for line in lines if line)
        assert effective and all(v == "rp_filter=1 redirects=0" for v in effective.values()), (target, effective)
    control = dict(line.split(" ", 1) for line in lab.ssh(fresh[0].name, RP_FILTER).stdout.split("\n") if line)
    assert control["eth0"] != "rp_filter=1 redirects=0", control


def test_no_unit_failed_and_accounting_runs_where_the_kernel_allows_it(lab, hardened):
    for target in sorted(hardened.recap):
        failed = lab.ssh(target, "systemctl list-units --failed --no-legend --plain").stdout.strip()
        assert not failed, f"{target}: failed units:\n{failed}"
        acct = dict(line.split("=", 1) for line in lab.ssh(
            target, "systemctl show -p UnitFileState -p ConditionResult acct.service").stdout.split())
        collecting = lab.ssh(target, "systemctl is-active sysstat-collect.timer; ls /var/log/sysstat | wc -l").stdout.split()
        # acct enabled, and skipped by its condition in a container (no CAP_SYS_PACCT), not failed;
        # sar's collection runs and has written its first file.
        assert acct == {"UnitFileState": "enabled", "ConditionResult": "no"}, (target, acct)
        assert collecting[0] == "active" and int(collecting[1]) > 0, (target, collecting)


AIDE_PROBE = "/etc/bh-aide-probe"
AIDE_CHECK = f"aide --check --limit '^{AIDE_PROBE}' >/tmp/bh-aide.out 2>&1; echo rc=$?; grep -c '{AIDE_PROBE}' /tmp/bh-aide.out"


@pytest.mark.skip(reason="base_hardening_aide is off by default; the lab does not turn it on yet (aideinit's time on "
                         "six machines not measured)")
def test_aide_reports_a_file_added_after_its_database(lab, hardened):
    target = TARGETS[0]
    try:
        before = lab.ssh(target, f"rm -f {AIDE_PROBE}; {AIDE_CHECK}", check=False, timeout=300).stdout.split()
        assert before[0] == "rc=0", before
        after = lab.ssh(target, f"echo probe > {AIDE_PROBE}; {AIDE_CHECK}", check=False, timeout=300).stdout.split()
        # aide's exit code is a bit mask; 1 = new files
        assert after[0] != "rc=0" and int(after[0][3:]) & 1 and int(after[1]) > 0, after
    finally:
        lab.ssh(target, f"rm -f {AIDE_PROBE} /tmp/bh-aide.out", check=False)
