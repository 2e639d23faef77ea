"""host_firewall, proven from outside: the tier isolation matrix over the private network, the
openings contract other roles use, the automatic rollback, tables it does not own, and a reboot."""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from lab import hardened, lab, skip_reason  # noqa: F401  (fixtures)

pytestmark = pytest.mark.skipif(skip_reason() is not None, reason=skip_reason() or "")
PLAYBOOKS = Path(__file__).resolve().parent / "playbooks"
STAMP = "sed -n 's/.*comment \"autoscale.hetzner.host_firewall \\([0-9a-f]*\\)\".*/\\1/p'"


def listen(lab, name, port):
    """A TCP service on every address of a lab host (a stand-in for the app and PostgreSQL)."""
    lab.ssh(name, f"systemctl is-active -q lab-listen-{port} || systemd-run --unit=lab-listen-{port} --collect "
                  f"python3 -m http.server {port} --directory /var/empty")
    for _ in range(50):
        if "open" == lab.tcp(name, "127.0.0.1", port):
            return
        time.sleep(0.1)
    raise AssertionError(f"nothing listens on {name}:{port}")


def stamps(lab, name):
    live = lab.ssh(name, f"nft list table inet host_firewall | {STAMP}").stdout.strip()
    committed = lab.ssh(name, f"{STAMP} /etc/host_firewall/ruleset.nft").stdout.strip()
    return live, committed


def test_tier_isolation_matrix(lab, hardened):
    web, app, db = "rolelab-web-1", "rolelab-app-1", "rolelab-db-1"
    listen(lab, app, 8080)
    listen(lab, db, 5432)
    private = {name: lab.hosts[name].private_ip for name in (web, app, db)}
    matrix = [  # (from, to, address, port, expected)
        (web, app, private[app], 8080, "open"),
        (web, db, private[db], 5432, "refused"),
        (app, db, private[db], 5432, "open"),
        (db, app, private[app], 8080, "refused"),
        (None, db, lab.ip(db), 5432, None),          # the public IP: the Cloud Firewall drops it
    ]
    lab.assert_tcp_matrix("tier isolation (private network, then the db's public IP)", matrix)


def test_other_roles_add_openings_through_the_contract(lab, hardened):
    web, mon, app = "rolelab-web-1", "rolelab-mon-1", "rolelab-app-1"
    address = lab.hosts[web].private_ip
    lab.playbook(PLAYBOOKS / "demo_exporter.yml", limit=web).assert_ok()
    assert lab.tcp(mon, address, 9109) == "open"
    assert lab.tcp(app, address, 9109) == "refused"
    # The opening is kept on the host: a later run of host_firewall alone keeps it and changes nothing.
    lab.playbook(PLAYBOOKS / "host_firewall.yml", limit=web).assert_unchanged()
    assert lab.tcp(mon, address, 9109) == "open"
    # A bad opening from a role is refused before anything changes, naming where it came from.
    bad = lab.playbook(PLAYBOOKS / "demo_exporter.yml", limit=web, extra_vars={"demo_exporter_port": 70000})
    assert bad.rc != 0 and "host_firewall_fragment_openings[0].port" in bad.output, bad.tail()
    assert lab.tcp(mon, address, 9109) == "open"
    # The role takes its openings back.
    lab.playbook(PLAYBOOKS / "demo_exporter.yml", limit=web, extra_vars={"demo_exporter_enabled": False}).assert_ok()
    assert lab.tcp(mon, address, 9109) != "open"
    lab.playbook(PLAYBOOKS / "host_firewall.yml", limit=web).assert_unchanged()


def test_a_ruleset_that_shuts_ansible_out_is_refused_or_rolled_back(lab, hardened):
    name = "rolelab-app-1"
    before = stamps(lab, name)
    assert before[0] and before[0] == before[1]
    locked_out = {"host_firewall_ssh_sources": ["10.99.0.0/16"]}
    # The preflight sees it coming: nothing is loaded.
    refused = lab.playbook(PLAYBOOKS / "host_firewall.yml", limit=name, extra_vars=locked_out)
    assert refused.rc != 0 and f"would lock out the Ansible connection, which comes from {lab.controller_ip}" in refused.output
    assert refused.recap[name]["changed"] == 0 and stamps(lab, name) == before
    # Without the preflight the ruleset is loaded, the new connection fails, and it rolls back by itself.
    t0 = time.monotonic()
    rolled = lab.playbook(PLAYBOOKS / "host_firewall.yml", limit=name,
                          extra_vars={**locked_out, "host_firewall_lockout_preflight": False, "host_firewall_confirm_timeout": 15})
    assert rolled.rc != 0 and "rolled back 15 s after loading" in rolled.output, rolled.tail()
    assert stamps(lab, name) == before, "the previous ruleset is not back"
    assert lab.ssh(name, "systemctl is-active host-firewall-rollback.timer", check=False).stdout.strip() != "active"
    print(f"\nlocked-out ruleset rolled back; the run took {time.monotonic() - t0:.1f} s")


def test_tables_it_does_not_own_survive_and_the_ruleset_survives_a_reboot(lab, hardened):
    name = "rolelab-web-2"
    lab.ssh(name, "nft add table inet foreign_test && nft add chain inet foreign_test probe "
                  "'{ type filter hook input priority 10; policy accept; }' && fail2ban-client set sshd banip 192.0.2.7")
    try:
        changed = lab.playbook(PLAYBOOKS / "host_firewall.yml", limit=name, extra_vars={
            "host_firewall_openings": [{"name": "extra", "port": 8443, "from_cidrs": ["192.0.2.0/24"]}]}).assert_ok()
        assert changed.recap[name]["changed"] > 0
        tables = lab.ssh(name, "nft list tables").stdout
        assert "inet foreign_test" in tables and "inet f2b-table" in tables, tables
        assert "192.0.2.7" in lab.ssh(name, "nft list table inet f2b-table").stdout
        assert 'comment "extra"' in lab.ssh(name, "nft list table inet host_firewall").stdout
        # After a reboot host-firewall.service loads the committed ruleset before the network is up.
        before = stamps(lab, name)
        server = lab.api().servers.get_by_name(name)
        server.reboot().wait_until_finished()
        lab.wait_for_ssh([name])
        assert stamps(lab, name) == before
        assert lab.ssh(name, "systemctl is-active host-firewall").stdout.strip() == "active"
    finally:
        lab.ssh(name, "nft delete table inet foreign_test; fail2ban-client set sshd unbanip 192.0.2.7", check=False)
        lab.playbook(PLAYBOOKS / "host_firewall.yml", limit=name).assert_ok()
