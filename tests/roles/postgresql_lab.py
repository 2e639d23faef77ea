# Copyright (c) 2026, autoscale.hetzner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""PostgreSQL on the role lab's db-1 (primary) and db-2 (streaming standby), shared by the
postgresql tests and the monitoring tests (postgres_exporter scrapes it, the replication alert
watches its slot): `postgres` is the first run of playbooks/postgresql.yml and the second one,
made once per session (lab.once) whichever module asks first."""
from __future__ import annotations

import pytest
import yaml

from lab import ROOT

PLAYBOOK = ROOT / "playbooks" / "postgresql.yml"
RESTORE = ROOT / "playbooks" / "db-restore.yml"
PRIMARY, STANDBY, APP, WEB = "rolelab-db-1", "rolelab-db-2", "rolelab-app-1", "rolelab-web-1"
DATA = "/var/lib/postgresql/15/main"           # Debian 12: PostgreSQL 15, Debian's layout
UNIT = "postgresql@15-main"
APP_PASSWORD = "lab-App-Passw0rd"
DB_VARS = {   # what a user puts in group_vars/db.yml (passwords from the vault there)
    "postgresql_users": [{"name": "app", "password": APP_PASSWORD}],
    "postgresql_databases": [{"name": "app", "owner": "app"}],
    "postgresql_hba_entries": [{"database": "app", "user": "app", "from_groups": ["app"]}],
    "postgresql_replication_password": "lab-Repl-Passw0rd",
}


def sql(lab, host, query, database="postgres", port=5432):
    """One value (or rows joined by |) from psql as postgres on the host's socket."""
    out = lab.ssh(host, f"cd /tmp && runuser -u postgres -- psql -XAtq -p {port} -d {database} -c {shq(query)}").stdout
    return out.strip()


def shq(text):
    return "'" + text.replace("'", "'\\''") + "'"


def started(lab, host=PRIMARY):
    return sql(lab, host, "select pg_postmaster_start_time()")


def run_role(lab, limit="db", **kwargs):
    return lab.playbook(PLAYBOOK, limit=limit, **kwargs)


@pytest.fixture(scope="session")
def postgres(lab, hardened):
    """The first run of playbooks/postgresql.yml on db-1 + db-2, then the second one (no change)."""
    def converge():
        backup = next(v for v in lab.api().volumes.get_all() if v.name == "rolelab-db-1-backup")
        (lab.inventory / "group_vars" / "db.yml").write_text(yaml.safe_dump(DB_VARS, sort_keys=False))
        (lab.inventory / "host_vars").mkdir(exist_ok=True)
        # The primary backs up to its second volume; which one is data is said by id (both are attached).
        (lab.inventory / "host_vars" / f"{PRIMARY}.yml").write_text(yaml.safe_dump({
            "postgresql_backup_repo_type": "volume", "postgresql_backup_repo_volume": backup.id}))
        # test_host_firewall's stand-in for PostgreSQL (an HTTP server on 5432) makes way for the real one.
        lab.ssh(PRIMARY, "systemctl stop lab-listen-5432 2>/dev/null || true")
        first = run_role(lab).assert_ok()
        marker = lab.ssh(STANDBY, f"date +%s%N | tee {DATA}/lab-not-rebuilt").stdout.strip()
        before = {h: (started(lab, h), sql(lab, h, "select system_identifier from pg_control_system()"))
                  for h in (PRIMARY, STANDBY)}
        second = run_role(lab)
        return {"first": first, "second": second, "marker": marker, "before": before}
    return lab.once("postgresql", converge)
