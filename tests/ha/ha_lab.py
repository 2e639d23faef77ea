# Copyright (c) 2026, autoscale.hetzner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The HA lab: the role lab's Lab (tests/roles/lab.py) with a small topology of its own, three
machines in one network: two database servers with their data volumes (rolelab-db-1 labelled
role=primary, rolelab-db-2 role=standby) and a witness (rolelab-mon-1, the monitoring tier: the third
etcd member and the test's client). playbooks/postgresql.yml runs with postgresql_ha: patroni and
synchronous mode, once and a second time (fixture `cluster`).

A session of its own (`make test-ha`): the role lab and this one cannot run in the same pytest
session (one local cloud with machines per host; both stacks are named rolelab, as the lab's
inventory selects)."""
from __future__ import annotations

import json
import os
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT / "tests" / "roles"))

from lab import Lab, skip_reason  # noqa: E402  pylint: disable=wrong-import-position

PLAYBOOK = ROOT / "playbooks" / "postgresql.yml"
SWITCHOVER = ROOT / "playbooks" / "db-switchover.yml"
DB1, DB2, WITNESS = "rolelab-db-1", "rolelab-db-2", "rolelab-mon-1"
DBS = (DB1, DB2)
APP_PASSWORD = "lab-App-Passw0rd"
HA_VARS = {   # what a user puts in group_vars/db.yml (the passwords from the vault there)
    "postgresql_ha": "patroni",
    "postgresql_synchronous_replication": True,
    "postgresql_users": [{"name": "app", "password": APP_PASSWORD}],
    "postgresql_databases": [{"name": "app", "owner": "app"}],
    # The witness is the test's client (as an app server would be).
    "postgresql_hba_entries": [{"database": "app", "user": "app", "from_groups": ["monitoring"]}],
    "postgresql_replication_password": "lab-Repl-Passw0rd",
    "postgresql_etcd_root_password": "lab-Etcd-Root-Passw0rd",
    "postgresql_etcd_patroni_password": "lab-Etcd-Patroni-Passw0rd",
    "postgresql_patroni_rest_password": "lab-Rest-Passw0rd",
    "postgresql_patroni_rewind_password": "lab-Rewind-Passw0rd",
}
WRITER = "/root/ha-writer.py"


def ha_stack() -> dict:
    """The HA topology: the role lab's database tier and one monitoring server, nothing else."""
    stack = yaml.safe_load((ROOT / "tests" / "roles" / "lab_stack.yml").read_text())
    stack["tiers"] = [t for t in stack["tiers"] if t["name"] in ("db", "monitoring")]
    stack["firewalls"] = [f for f in stack["firewalls"] if f["name"] == "rolelab-admin-only"]
    stack["volumes"] = [v for v in stack["volumes"] if v["name"] in ("rolelab-db-1-data", "rolelab-db-2-data")]
    stack.pop("load_balancers", None)
    return stack


def ha_skip_reason() -> str | None:
    """Why the HA lab cannot run here (not root, no Linux...), or None. In CI (CI=true, .ci/run) the
    tests fail instead of skipping: a skipped HA lab would leave `make test` green without any failover."""
    return skip_reason()


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture(scope="session")
def ha(request, tmp_path_factory):
    reason = ha_skip_reason()
    if reason:
        if in_ci():
            pytest.fail(f"the HA lab cannot run in CI: {reason}")
        pytest.skip(reason)
    lab = Lab(tmp_path_factory.mktemp("halab"), stack=ha_stack())
    request.session.config.add_cleanup(lab.close)
    lab.start()
    return lab


def sql(lab, host, query, database="postgres", check=True):
    """One value (rows joined by |) from psql as postgres on the host's socket."""
    proc = lab.ssh(host, f"cd /tmp && runuser -u postgres -- psql -XAtq -d {database} -c {shlex.quote(query)}", check=check, timeout=30)
    return proc.stdout.strip() if proc.returncode == 0 else None


def roles(lab):
    """{host: 'primary' | 'replica' | None (no answer)} from pg_is_in_recovery() on each database server."""
    out = {}
    for host in DBS:
        value = sql(lab, host, "select pg_is_in_recovery()", check=False)
        out[host] = {"f": "primary", "t": "replica"}.get(value)
    return out


def primary(lab):
    found = [h for h, r in roles(lab).items() if r == "primary"]
    assert len(found) == 1, f"not exactly one primary: {roles(lab)}"
    return found[0]


def started(lab, host):
    return sql(lab, host, "select pg_postmaster_start_time()")


def wait_streaming(lab, host, timeout=240):
    """Until host is a replica whose WAL receiver streams (Patroni brought it back by itself)."""
    deadline = time.monotonic() + timeout
    while True:
        state = sql(lab, host, "select pg_is_in_recovery()::text || ' ' || coalesce((select status from pg_stat_wal_receiver), 'none')",
                    check=False)
        if state == "true streaming":
            return time.monotonic()
        assert time.monotonic() < deadline, f"{host} is not a streaming replica after {timeout} s: {state}"
        time.sleep(1)


def wait_sync(lab, replica, timeout=90):
    """Until Patroni's synchronous state in etcd names replica (only then may it take over in synchronous mode)."""
    deadline = time.monotonic() + timeout
    while True:
        proc = lab.ssh(replica, f"curl -sf http://{lab.hosts[replica].private_ip}:8008/cluster", check=False)
        try:
            members = {m["name"]: m["role"] for m in json.loads(proc.stdout)["members"]}
        except (ValueError, KeyError):
            members = {}
        if members.get(replica) == "sync_standby":
            return
        assert time.monotonic() < deadline, f"{replica} is not Patroni's synchronous standby after {timeout} s: {members}"
        time.sleep(1)


def patroni_log(lab, hosts):
    """The end of Patroni's journal on each reachable host (for a failure message)."""
    out = []
    for host in hosts:
        proc = lab.ssh(host, "journalctl -u patroni@15-main -n 40 --no-pager -o cat", check=False, timeout=20)
        out.append(f"--- {host}\n{proc.stdout[-4000:]}")
    return "\n".join(out)


def converge(lab, extra_vars: dict | None = None):
    """The Patroni cluster on the lab (HA_VARS, plus extra_vars): host_firewall on the three machines,
    the client's psycopg2 on the witness, then the first run of playbooks/postgresql.yml. Returns that run."""
    (lab.inventory / "group_vars" / "db.yml").write_text(yaml.safe_dump({**HA_VARS, **(extra_vars or {})}, sort_keys=False))
    t0 = time.monotonic()
    lab.playbook(ROOT / "tests" / "roles" / "playbooks" / "host_firewall.yml").assert_ok()
    # The test's client on the witness (Debian's psycopg2), after host_firewall's run (its apt cache
    # update; a fresh machine has no package lists) and before the role's apt runs there.
    lab.ssh(WITNESS, "DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-psycopg2 >/dev/null", timeout=600)
    lab.timings["host_firewall + client"] = time.monotonic() - t0
    first = lab.playbook(PLAYBOOK).assert_ok()
    lab.timings["postgresql.yml, first run"] = first.seconds
    return first


@pytest.fixture(scope="session")
def cluster(ha):
    """The cluster (converge), then playbooks/postgresql.yml (HA) a second time."""
    first = converge(ha)
    before = {h: started(ha, h) for h in DBS}
    second = ha.playbook(PLAYBOOK)
    ha.timings["postgresql.yml, second run"] = second.seconds
    print("\nHA lab: " + ", ".join(f"{k} {v:.0f} s" for k, v in ha.timings.items()))
    return {"first": first, "second": second, "before": before}


@dataclass
class Ack:
    n: int
    sent: float
    at: float
    server: str


class Writer:
    """The client on the witness (writer.py): one table per test, started and stopped over SSH."""

    def __init__(self, lab, table, through: str | None = None):
        """through: host:port of a router (the app role's HAProxy) instead of the database servers."""
        self.lab, self.table = lab, table
        self.log, self.stop_file = f"/root/{table}.log", f"/root/{table}.stop"
        self.unit = f"ha-writer-{table.replace('_', '-')}"
        addresses = ",".join(lab.hosts[h].private_ip for h in DBS)
        # The multi-host connection string the app role builds (roles/app), with the client's timeouts.
        where = (f"host={through.split(':')[0]} port={through.split(':')[1]}" if through else
                 f"host={addresses} port=5432 target_session_attrs=read-write")
        self.dsn = (f"{where} dbname=app user=app password={APP_PASSWORD} "
                    "connect_timeout=2 tcp_user_timeout=5000 keepalives=1 keepalives_idle=2 keepalives_interval=1 keepalives_count=2")

    def __enter__(self):
        script = (HERE / "writer.py").read_text()
        self.lab.ssh(WITNESS, f"cat > {WRITER} <<'EOF'\n{script}\nEOF\nrm -f {self.log} {self.stop_file}\n"
                              f"systemctl stop {self.unit} 2>/dev/null; systemctl reset-failed {self.unit} 2>/dev/null; true")
        # A transient unit, not `nohup ... &` over SSH: its life does not depend on the SSH session
        # that started it, and its output stays in the journal for the failure message.
        self.lab.ssh(WITNESS, f"systemd-run --quiet --collect --unit={self.unit} "
                              f"python3 {WRITER} {shlex.quote(self.dsn)} {self.table} {self.log} {self.stop_file}")
        # The client opens its log after importing psycopg2, which takes a while on a loaded host:
        # until then there is nothing to read (in a fresh-clone run of 2026-12-03, `cat` came first).
        deadline = time.monotonic() + 60
        while self.lab.ssh(WITNESS, f"test -e {self.log}", check=False, timeout=30).returncode != 0:
            assert time.monotonic() < deadline, f"{self.table}: the client never opened {self.log}:\n{self.journal()}"
            time.sleep(0.5)
        self.wait_acks(20)
        return self

    def __exit__(self, *exc):
        self.lab.ssh(WITNESS, f"touch {self.stop_file}", check=False)
        time.sleep(0.5)

    def lines(self):
        proc = self.lab.ssh(WITNESS, f"cat {self.log}", check=False, timeout=30)
        assert proc.returncode == 0, f"{self.table}: cannot read {self.log}: {proc.stderr.strip()}\n{self.journal()}"
        return proc.stdout.splitlines()

    def journal(self):
        """The client's unit state and last output lines, for failure messages."""
        return self.lab.ssh(WITNESS, f"systemctl status --no-pager --lines=0 {self.unit}; journalctl --no-pager -n 20 -u {self.unit}",
                            check=False, timeout=30).stdout

    def acks(self):
        out = []
        for line in self.lines():
            parts = line.split()
            if parts and parts[0] == "ack":
                out.append(Ack(int(parts[1]), float(parts[2]), float(parts[3]), parts[4]))
        return out

    def errors(self):
        return [line for line in self.lines() if line.startswith("err ")]

    def wait_acks(self, count, since=0.0, server=None, timeout=90):
        """Until count acknowledged writes after `since` (epoch), from `server` if given; returns them."""
        deadline = time.monotonic() + timeout
        while True:
            got = [a for a in self.acks() if a.at > since and (server is None or a.server == server)]
            if len(got) >= count:
                return got
            assert time.monotonic() < deadline, (f"{self.table}: {len(got)} acknowledged writes after {since} in {timeout} s; "
                                                 f"last lines: {self.lines()[-5:]}")
            time.sleep(0.5)

    def stored(self, host):
        """The numbers the table holds on host."""
        out = sql(self.lab, host, f"select n from {self.table}", database="app")
        return {int(x) for x in out.split()} if out else set()


def longest_gap(acks, start, end):
    """The longest time without an acknowledged write between start and end (epochs): the write unavailability."""
    times = [start] + sorted(a.at for a in acks if start < a.at < end) + [end]
    return max(b - a for a, b in zip(times, times[1:]))
