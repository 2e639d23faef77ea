"""postgresql, proven from outside on the lab's db-1 (primary) and db-2 (streaming standby): data on
the Hetzner Volume, access from the app tier only, reload vs restart, replication, a volume of
someone else refused, bad input refused in preflight, and a backup that restores to a point in time.

The role runs ONCE per session on both database servers (one run: the standby is copied from the
primary in the same run), then a second time, which must change nothing."""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from lab import fresh, hardened, lab, skip_reason  # noqa: F401  (fixtures)
from postgresql_lab import postgres  # noqa: F401  (fixture)
from postgresql_lab import APP, APP_PASSWORD, DATA, DB_VARS, PRIMARY, RESTORE, STANDBY, UNIT, WEB, run_role, sql, started

pytestmark = pytest.mark.skipif(skip_reason() is not None, reason=skip_reason() or "")


def test_data_is_on_the_volume_and_a_second_run_changes_nothing(lab, postgres):
    print(f"\nfirst run {postgres['first'].seconds:.0f} s, second run {postgres['second'].seconds:.0f} s")
    postgres["second"].assert_unchanged()
    for host, volume in ((PRIMARY, "rolelab-db-1-data"), (STANDBY, "rolelab-db-2-data")):
        vid = next(v.id for v in lab.api().volumes.get_all() if v.name == volume)
        device = lab.ssh(host, f"readlink -f /dev/disk/by-id/scsi-0HC_Volume_{vid}").stdout.strip()
        source = lab.ssh(host, f"findmnt -n -o SOURCE --target {DATA}").stdout.strip()
        assert source == device, f"{host}: {DATA} is on {source}, not on the volume {volume} ({device})"
        # PostgreSQL itself writes there: its data_directory is the one on the volume.
        assert sql(lab, host, "show data_directory") == DATA
        # Mounted by UUID (fstab), not by a device name that can change.
        assert lab.ssh(host, "findmnt -n -s -o SOURCE /var/lib/postgresql").stdout.strip().startswith("UUID=")
    # The second run restarted nothing.
    for host in (PRIMARY, STANDBY):
        assert started(lab, host) == postgres["before"][host][0], f"{host} was restarted by a run that changed nothing"


def test_app_host_reaches_the_app_database_web_host_and_public_ip_do_not(lab, postgres):
    address = lab.hosts[PRIMARY].private_ip
    for host in (APP, WEB):
        lab.ssh(host, "command -v psql >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-client >/dev/null",
                timeout=300)
    connect = f"PGPASSWORD={APP_PASSWORD} PGCONNECT_TIMEOUT=3 psql -XAtq -h {address} -U app -d app -c 'select current_user'"
    ok = lab.ssh(APP, connect, check=False)
    assert ok.returncode == 0 and ok.stdout.strip() == "app", ok.stderr
    # The web tier: dropped by the host firewall (refused) before PostgreSQL sees it.
    assert lab.tcp(WEB, address, 5432) == "refused"
    assert lab.ssh(WEB, connect, check=False).returncode != 0
    # A host the firewall lets in (the standby, a db peer) but pg_hba does not, for the app database.
    hba = lab.ssh(STANDBY, connect, check=False)
    assert hba.returncode != 0 and "no pg_hba.conf entry" in hba.stderr, hba.stderr
    # The public IP: nothing listens there (from the server itself, no Cloud Firewall in the way),
    # and from outside the Cloud Firewall does not let 5432 through either.
    assert lab.tcp(PRIMARY, lab.ip(PRIMARY), 5432) == "refused"
    assert lab.tcp(None, lab.ip(PRIMARY), 5432) != "open"


def test_standby_streams_through_its_slot_and_a_rerun_keeps_it(lab, postgres):
    sql(lab, PRIMARY, "create table if not exists lab_lag (note text primary key, at timestamptz)", "app")
    token = f"row-{time.time_ns()}"
    # The lag is measured on the machines, not through SSH: a poller on the standby (started before
    # the insert) reads clock_timestamp() - the primary's commit-time clock_timestamp(); nspawn
    # machines share the host's clock.
    poll = (f"for i in $(seq 3000); do lag=$(cd /tmp && runuser -u postgres -- psql -XAtq -d app -c "
            f"\"select extract(epoch from clock_timestamp() - at) from lab_lag where note = '{token}'\"); "
            f"[ -n \"$lag\" ] && echo $lag && exit 0; [ $i = 1 ] && touch /tmp/lab-polling; sleep 0.01; done; exit 1")
    lab.ssh(STANDBY, "rm -f /tmp/lab-polling")
    with ThreadPoolExecutor(1) as pool:
        poller = pool.submit(lab.ssh, STANDBY, poll, True, 120)
        while lab.ssh(STANDBY, "test -e /tmp/lab-polling", check=False).returncode:
            assert not poller.done(), poller.result()
            time.sleep(0.2)
        sql(lab, PRIMARY, f"insert into lab_lag values ('{token}', clock_timestamp())", "app")
        lag = float(poller.result().stdout.strip())
    print(f"\nrow read on the standby {lag:.3f} s after the insert on the primary")
    assert lag < 1.0
    streaming = sql(lab, PRIMARY, "select r.application_name || ' ' || r.state || ' ' || s.slot_name || ' ' || s.active "
                                  "from pg_stat_replication r join pg_replication_slots s on s.active_pid = r.pid")
    assert streaming.split()[1:] and streaming.split()[1] == "streaming" and streaming.endswith(" true"), streaming
    assert sql(lab, STANDBY, "select pg_is_in_recovery()") == "t"
    # The second run of the fixture ran on the streaming standby: same cluster, no new base backup
    # (a file put into its data directory before that run is still there), not restarted.
    identifier = sql(lab, STANDBY, "select system_identifier from pg_control_system()")
    assert identifier == postgres["before"][STANDBY][1] == postgres["before"][PRIMARY][1]
    assert lab.ssh(STANDBY, f"cat {DATA}/lab-not-rebuilt").stdout.strip() == postgres["marker"]
    assert sql(lab, STANDBY, "select status from pg_stat_wal_receiver") == "streaming"


def test_reload_only_setting_reloads_and_shared_buffers_restarts_once(lab, postgres):
    def restarts_since(epoch):
        log = lab.ssh(PRIMARY, f"journalctl -q -o cat -u {UNIT} --since @{epoch}", check=False).stdout
        return log.count("Started ")
    before = started(lab)
    try:
        reload_run = run_role(lab, PRIMARY, extra_vars={"postgresql_settings": {"log_min_duration_statement": "250ms"}}).assert_ok()
        assert reload_run.recap[PRIMARY]["changed"] > 0
        assert sql(lab, PRIMARY, "show log_min_duration_statement") == "250ms"
        assert started(lab) == before, "a reload-only setting restarted PostgreSQL"
        buffers = sql(lab, PRIMARY, "show shared_buffers")
        epoch = int(lab.ssh(PRIMARY, "date +%s").stdout)
        restart_run = run_role(lab, PRIMARY, extra_vars={"postgresql_settings": {"shared_buffers": "200MB"}}).assert_ok()
        assert sql(lab, PRIMARY, "show shared_buffers") == "200MB" != buffers
        assert started(lab) != before
        assert restarts_since(epoch) == 1, restart_run.changed_tasks
        assert sql(lab, PRIMARY, "select count(*) from pg_settings where pending_restart") == "0"
    finally:
        run_role(lab, PRIMARY).assert_ok()     # back to the group's settings (a restart again)
    assert sql(lab, PRIMARY, "show shared_buffers") == buffers
    # The standby streams again after its primary's restarts.
    deadline = time.monotonic() + 30
    while sql(lab, STANDBY, "select coalesce((select status from pg_stat_wal_receiver), 'none')") != "streaming":
        assert time.monotonic() < deadline, "the standby did not reconnect after the primary's restart"
        time.sleep(0.5)


def test_a_second_run_in_check_mode_reports_nothing(lab, postgres):
    check = run_role(lab, check=True)
    check.assert_unchanged()


def test_backup_then_delete_then_restore_to_before_the_delete(lab, postgres):
    sql(lab, PRIMARY, "drop table if exists lab_orders; create table lab_orders (id int primary key);"
                      "insert into lab_orders select generate_series(1, 100)", "app")
    lab.ssh(PRIMARY, "runuser -u postgres -- pgbackrest --stanza=main --type=diff --log-level-console=warn backup", timeout=300)
    time.sleep(1.1)
    before_delete = sql(lab, PRIMARY, "select now()::text")
    time.sleep(1.1)
    sql(lab, PRIMARY, "delete from lab_orders where id > 60", "app")
    assert sql(lab, PRIMARY, "select count(*) from lab_orders", "app") == "60"
    try:
        restore = lab.playbook(RESTORE, extra_vars={
            "restore_host": PRIMARY, "restore_target_time": before_delete, "restore_database": "app",
            "restore_verify_queries": ["select count(*) from lab_orders"]}).assert_ok()
        assert "query 1: 100" in restore.output, restore.tail()
        # The scratch cluster answers on its own port with the rows from before the delete.
        assert sql(lab, PRIMARY, "select count(*) from lab_orders", "app", port=5433) == "100"
        assert sql(lab, PRIMARY, "select count(*) from lab_orders", "app") == "60"    # the live cluster is untouched
        print(f"\nrestore to {before_delete}: {restore.seconds:.0f} s")
    finally:
        lab.playbook(RESTORE, extra_vars={"restore_host": PRIMARY, "restore_remove": True}).assert_ok()


def test_a_volume_with_someone_elses_filesystem_is_refused_and_left_alone(lab, fresh):
    host = fresh[0].name          # Debian 12, never converged
    client = lab.api()
    server = client.servers.get_by_name(host)
    response = client.volumes.create(size=10, name=f"{host}-foreign", server=server, automount=False)
    response.action.wait_until_finished()
    volume = response.volume
    try:
        device = f"/dev/disk/by-id/scsi-0HC_Volume_{volume.id}"
        lab.ssh(host, f"for i in $(seq 50); do [ -e {device} ] && break; sleep 0.2; done; mkfs.ext4 -q -L photos {device} && "
                      f"mkdir -p /mnt/p && mount {device} /mnt/p && echo holiday > /mnt/p/photo.txt && umount /mnt/p")
        uuid = lab.ssh(host, f"blkid -s UUID -o value {device}").stdout.strip()
        run = run_role(lab, host, extra_vars={**DB_VARS, "postgresql_hosts": host, "postgresql_cluster_hosts": [host]})
        assert run.rc != 0 and f"scsi-0HC_Volume_{volume.id}" in run.output and "postgresql_volume" in run.output, run.tail()
        assert run.recap[host]["changed"] == 0, run.changed_tasks
        assert lab.ssh(host, f"blkid -s UUID -o value {device}").stdout.strip() == uuid
        assert lab.ssh(host, f"mount -o ro {device} /mnt/p && cat /mnt/p/photo.txt; umount /mnt/p").stdout.strip() == "holiday"
        assert lab.ssh(host, "command -v pg_ctlcluster", check=False).returncode != 0, "PostgreSQL was installed"
    finally:
        volume.detach().wait_until_finished()
        volume.delete()


def test_bad_input_fails_in_preflight_naming_the_variable(lab, fresh):
    host = fresh[0].name
    run = run_role(lab, host, extra_vars={
        "postgresql_hosts": host, "postgresql_cluster_hosts": [host], "postgresql_volume": "none",
        "postgresql_replication_role": "standby",
        "postgresql_users": [{"name": "app"}],
        "postgresql_hba_entries": [{"database": "app", "user": "app", "from_cidrs": ["10.0.0.300/24"]}]})
    assert run.rc != 0 and run.recap[host]["changed"] == 0, run.tail()
    for field in ("postgresql_users[0].password", "postgresql_hba_entries[0].from_cidrs: '10.0.0.300/24'", "postgresql_primary"):
        assert field in run.output, f"{field} not named:\n{run.tail()}"
    assert lab.ssh(host, "command -v pg_ctlcluster", check=False).returncode != 0, "PostgreSQL was installed"
