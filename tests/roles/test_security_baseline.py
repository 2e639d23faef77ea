"""playbooks/harden.yml (base_hardening, ssh_hardening, fail2ban, host_firewall) on the lab: check
mode on fresh hosts, a second run that changes nothing, and bad input that stops in preflight
before any change. The effects of each role are proven from outside in test_base_hardening.py,
test_ssh_hardening.py, test_fail2ban.py and test_host_firewall.py."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from lab import fresh, hardened, lab, skip_reason  # noqa: F401  (fixtures)

pytestmark = pytest.mark.skipif(skip_reason() is not None, reason=skip_reason() or "")

# What a role run may change on a host, as seen from a shell: packages, login.defs, PAM, banners,
# limits, sysctls, apt's and cron's files, sshd, nftables, fail2ban.
SNAPSHOT = ("dpkg-query -W -f='${db:Status-Abbrev} ${Package}\\n' fail2ban nftables python3-systemd libpam-pwquality "
            "unattended-upgrades sysstat acct needrestart debsums cron aide 2>&1; "
            "sha256sum /etc/login.defs /etc/issue /etc/issue.net /etc/pam.d/common-password /etc/ssh/sshd_config "
            "/etc/ssh/moduli /etc/ssh/ssh_host_*_key.pub 2>&1; "
            "ls /etc/ssh/sshd_config.d /etc/fail2ban /etc/host_firewall /etc/security/limits.d /etc/sysctl.d "
            "/etc/profile.d /etc/apt/apt.conf.d /etc/systemd/system /etc/modprobe.d /var/lib/aide 2>&1; stat -c '%n %a' /etc/cron* 2>&1; "
            "sysctl net.ipv4.conf.all.rp_filter net.ipv4.conf.eth0.rp_filter net.ipv4.conf.all.accept_redirects 2>&1; "
            "debconf-show sysstat 2>&1; "
            "nft list ruleset 2>&1; systemctl is-active fail2ban host-firewall 2>&1")


def snapshot(lab, name):
    return lab.ssh(name, SNAPSHOT, check=False).stdout


def test_check_mode_on_fresh_hosts_completes_reports_changes_and_changes_nothing(lab, fresh):
    names = [h.name for h in fresh]
    before = {n: snapshot(lab, n) for n in names}
    run = lab.harden(limit=",".join(names), check=True)
    run.assert_ok()
    for name in names:
        assert run.recap[name]["changed"] > 0, f"{name}: a check run on a fresh host reports no change"
        assert snapshot(lab, name) == before[name], f"{name}: the check run changed the host"
    print(f"\ncheck mode on fresh Debian 12 + 13: {run.seconds:.1f} s, would change "
          + ", ".join(f"{n}={run.recap[n]['changed']}" for n in names))


def test_second_run_changes_nothing(lab, hardened):
    again = lab.once("harden-second", lab.harden).assert_unchanged()
    print(f"\nharden.yml on {len(hardened.recap)} hosts: first run {hardened.seconds:.1f} s, "
          f"second run {again.seconds:.1f} s (changed=0 on every host)")


# One bad input per case; each must stop in preflight, name the variable, and change nothing.
BAD_INPUT = [
    ("a variable of the wrong type", {"ssh_hardening_port": "twenty-two"}, "ssh_hardening_port"),
    ("a variable of the wrong type (base_hardening)", {"base_hardening_pwquality_minlen": "long"},
     "base_hardening_pwquality_minlen"),
    ("a umask that is not octal", {"base_hardening_umask": "0999"}, "base_hardening_umask"),
    ("AllowUsers without the connecting user", {"ssh_hardening_allow_users": ["deploy"]}, "ssh_hardening_allow_users"),
    ("an admin source that is not a CIDR (host firewall)", {"host_firewall_ssh_sources": ["198.18.0.300/32"]},
     "host_firewall_ssh_sources"),
    ("an admin source that is not a CIDR (fail2ban)", {"fail2ban_admin_sources": ["admins.example.com"]},
     "fail2ban_admin_sources"),
    ("a firewall opening nft would not parse",
     {"host_firewall_openings": [{"name": "metrics", "port": "9100-abc", "from_cidrs": ["10.77.0.0/16"]}]},
     "host_firewall_openings[0].port"),
    ("a firewall opening with a source nft would not parse",
     {"host_firewall_openings": [{"name": "metrics", "port": 9100, "from_cidrs": ["10.77.0.0/33"]}]},
     "host_firewall_openings[0].from_cidrs"),
]


def test_bad_input_fails_in_preflight_before_any_change(lab, fresh):
    host = fresh[0].name
    before = snapshot(lab, host)
    with ThreadPoolExecutor(max_workers=3) as pool:
        runs = list(pool.map(lambda case: lab.harden(limit=host, extra_vars=case[1]), BAD_INPUT))
    for (what, _, variable), run in zip(BAD_INPUT, runs):
        assert run.rc != 0, f"{what}: the run did not fail\n{run.tail()}"
        assert run.recap[host]["failed"] == 1 and run.recap[host]["changed"] == 0, f"{what}: {run.recap}"
        assert variable in run.output, f"{what}: the message does not name {variable}\n{run.tail()}"
        failed_task = [line for line in run.output.splitlines() if line.startswith("TASK [")][-1]
        assert "Check the input" in failed_task or "Validating arguments" in failed_task, f"{what}: {failed_task}"
    assert snapshot(lab, host) == before, "a failed preflight changed the host"
