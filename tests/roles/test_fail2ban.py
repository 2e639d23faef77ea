"""fail2ban, proven from outside: a second machine that fails to log in 6 times is banned within
10 s (its new connections to port 22 are refused) while a third machine still logs in; the ban is
listed by fail2ban-client and lifted by unban. On Debian 12 (OpenSSH 9.2) and 13 (10.0, whose
sshd-session logs the failures)."""
from __future__ import annotations

import time

import pytest

from lab import fresh, hardened, lab, skip_reason  # noqa: F401  (fixtures)

pytestmark = pytest.mark.skipif(skip_reason() is not None, reason=skip_reason() or "")


@pytest.fixture(scope="module")
def witness_key(lab, fresh):
    """The witness (fresh[1]) gets a key of its own; the targets authorise it for the test."""
    witness = fresh[1].name
    lab.ssh(witness, "test -f /root/.ssh/witness || ssh-keygen -q -t ed25519 -N '' -f /root/.ssh/witness")
    return lab.ssh(witness, "cat /root/.ssh/witness.pub").stdout.strip()


@pytest.mark.parametrize("target", ["rolelab-web-1", "rolelab-web-2"])   # Debian 12, Debian 13
def test_six_failed_logins_get_a_machine_banned_while_another_still_logs_in(lab, hardened, fresh, witness_key, target):
    attacker, witness = fresh[0], fresh[1]
    ip = lab.ip(target)
    lab.ssh(target, f"grep -qxF '{witness_key}' /root/.ssh/authorized_keys || echo '{witness_key}' >> /root/.ssh/authorized_keys")
    try:
        # 6 failed logins: a user that does not exist, no usable key (what a scanner does). A login
        # that is under way when the ban lands hangs (fail2ban's ICMP reject of an open connection),
        # hence the timeout; once banned, new connections are refused at once.
        attempts = lab.ssh(attacker.name, "for i in 1 2 3 4 5 6; do "
                           "timeout 6 ssh -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null "
                           f"-o ConnectTimeout=3 nosuchuser@{ip} true 2>&1 | tail -1; echo \"try $i rc=${{PIPESTATUS[0]}}\"; done",
                           check=False, timeout=120).stdout
        t_last = time.monotonic()
        banned_after = None
        while time.monotonic() - t_last < 15:
            if lab.tcp(attacker.name, ip, 22, timeout=2) != "open":
                banned_after = time.monotonic() - t_last
                break
            time.sleep(0.5)
        status = lab.ssh(target, "fail2ban-client status sshd").stdout
        assert banned_after is not None and banned_after <= 10, f"not banned within 10 s\n{attempts}\n{status}"
        assert lab.tcp(attacker.name, ip, 22) == "refused"
        assert attacker.ip in status, status
        # A third machine still logs in.
        witness_login = lab.ssh(witness.name, "ssh -i /root/.ssh/witness -o BatchMode=yes -o StrictHostKeyChecking=no "
                                f"-o UserKnownHostsFile=/dev/null -o LogLevel=ERROR root@{ip} hostname", check=False)
        assert witness_login.returncode == 0 and witness_login.stdout.strip() == target, witness_login.stderr
        # Unban lifts it.
        lab.ssh(target, f"fail2ban-client set sshd unbanip {attacker.ip}")
        assert lab.tcp(attacker.name, ip, 22) == "open"
        print(f"\n{target} ({lab.hosts[target].image}): banned {banned_after:.1f} s after the 6th failed login; "
              f"witness logged in; unbanned")
    finally:
        lab.ssh(target, f"fail2ban-client set sshd unbanip {attacker.ip} >/dev/null 2>&1; "
                        f"sed -i '\\#{witness_key.split()[1]}#d' /root/.ssh/authorized_keys", check=False)
