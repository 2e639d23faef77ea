# Copyright (c) 2026, autoscale.hetzner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The postgresql role's filters: sizing, input checks naming the full path, pg_hba lines, what to
do with a volume (never format one that holds a filesystem with data)."""
from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError
from ansible.plugins.loader import init_plugin_loader

init_plugin_loader()

from ansible_collections.autoscale.hetzner.plugins.filter.postgresql import (  # noqa: E402  pylint: disable=wrong-import-position
    postgresql_database_problems, postgresql_hba_problems, postgresql_hba_rules, postgresql_patroni_drift, postgresql_sizing,
    postgresql_slot_name, postgresql_user_problems, postgresql_volume_plan)

DEVICE = "/dev/disk/by-id/scsi-0HC_Volume_4711"


def test_sizing_follows_memory_and_cpus():
    small = postgresql_sizing(3800, 2)        # cx23: 4 GB, 2 vCPUs
    assert small["shared_buffers"] == "950MB" and small["effective_cache_size"] == "2850MB"
    assert small["max_parallel_workers"] == 2 and small["max_parallel_workers_per_gather"] == 1
    big = postgresql_sizing(32768, 8, max_connections=200)
    assert big["shared_buffers"] == "8GB" and big["maintenance_work_mem"] == "2GB"
    assert big["max_connections"] == 200 and big["max_parallel_workers_per_gather"] == 4
    # work_mem: never below PostgreSQL's default, whatever the connection count.
    assert postgresql_sizing(512, 1, max_connections=5000)["work_mem"] == "4096kB"
    with pytest.raises(AnsibleFilterError, match="256 MB at least"):
        postgresql_sizing(128, 1)


def test_a_login_user_without_password_is_named_by_its_path():
    assert postgresql_user_problems([{"name": "app", "password": "x"}]) == []
    problems = postgresql_user_problems([{"name": "app", "password": "x"}, {"name": "report"}])
    assert len(problems) == 1 and problems[0].startswith("postgresql_users[1].password: the user report")
    assert postgresql_user_problems([{"name": "ro", "role_attr_flags": "NOLOGIN"}]) == []
    assert postgresql_user_problems([{"name": "x" * 64, "password": "x"}])[0].startswith("postgresql_users[0].name")


def test_database_owner_must_be_a_known_user():
    assert postgresql_database_problems([{"name": "app", "owner": "app"}], [{"name": "app"}]) == []
    problems = postgresql_database_problems([{"name": "app", "owner": "nobody"}], [])
    assert problems and problems[0].startswith("postgresql_databases[0].owner: 'nobody'")


def test_hba_entries_need_addresses_and_never_trust_the_world():
    assert postgresql_hba_problems([{"database": "app", "user": "app", "from_groups": ["app"]}]) == []
    problems = postgresql_hba_problems([
        {"database": "app", "user": "app", "from_cidrs": ["10.0.0.300/24"]},
        {"database": "app", "user": "app", "from_cidrs": ["0.0.0.0/0"]},
        {"database": "app", "user": "app", "method": "md5", "from_groups": ["app"]},
        {"database": "app", "user": "app"}])
    assert [p.split(":")[0] for p in problems] == [
        "postgresql_hba_entries[0].from_cidrs", "postgresql_hba_entries[1].from_cidrs",
        "postgresql_hba_entries[2].method", "postgresql_hba_entries[3]"]


def test_hba_rules_resolve_groups_to_private_addresses():
    rules = postgresql_hba_rules(
        [{"database": "app", "user": "app", "from_groups": ["app"], "from_cidrs": ["10.0.9.0/24"]}],
        groups={"app": ["app-1", "app-2", "app-3"]},
        hostvars={"app-1": {"hcloud_private_ipv4": "10.0.1.20"}, "app-2": {"hcloud_private_ipv4": "10.0.1.21"}, "app-3": {}})
    assert [(r["address"], r["method"]) for r in rules] == [
        ("10.0.1.20/32", "scram-sha-256"), ("10.0.1.21/32", "scram-sha-256"), ("10.0.9.0/24", "scram-sha-256")]


def test_slot_names_are_valid_identifiers():
    assert postgresql_slot_name("db-2.Example") == "db_2_example"


def test_volume_plan_formats_only_a_blank_volume():
    assert postgresql_volume_plan({"state": "present", "device": DEVICE}, "postgresql_volume", "/var/lib/postgresql") == {
        "action": "format", "problems": [], "move": False}
    # Hetzner's ext4 with nothing but lost+found: used as it is.
    empty = {"state": "present", "device": DEVICE, "type": "ext4", "readable": True, "entries": []}
    assert postgresql_volume_plan(empty, "postgresql_volume", "/var/lib/postgresql")["action"] == "mount"
    # Ours (the role's marker): mounted again on a rebuilt server.
    ours = dict(empty, entries=["15"], marker="autoscale.hetzner.postgresql")
    assert postgresql_volume_plan(ours, "postgresql_volume", "/var/lib/postgresql")["action"] == "mount"


@pytest.mark.parametrize("info, words", [
    ({"type": "ext4", "readable": True, "entries": ["photos"]}, "holds a ext4 filesystem with data that is not this role's"),
    ({"type": "btrfs"}, "holds a btrfs filesystem"),
    ({"pttype": "gpt"}, "holds a gpt partition table"),
    ({"type": "ext4", "readable": False}, "could not be mounted read-only"),
])
def test_volume_plan_refuses_a_volume_that_holds_something_else(info, words):
    plan = postgresql_volume_plan(dict(info, state="present", device=DEVICE), "postgresql_volume", "/var/lib/postgresql")
    assert plan["action"] == "none" and len(plan["problems"]) == 1
    assert plan["problems"][0].startswith("postgresql_volume: volume 4711") and words in plan["problems"][0]


def test_volume_plan_asks_to_choose_when_auto_is_ambiguous():
    plan = postgresql_volume_plan({"state": "ambiguous", "candidates": ["1", "2"]}, "postgresql_volume", "/x")
    assert "set postgresql_volume to the id" in plan["problems"][0]


def test_users_and_databases_share_the_list_checks():
    assert postgresql_user_problems("app") == ["postgresql_users: must be a list of users, got str"]
    assert postgresql_database_problems([{"name": "app"}, {"name": "app"}, "x", {"name": "b", "size": 1}]) == [
        "postgresql_databases[1].name: app is listed twice",
        "postgresql_databases[2]: must be a dict like {name: app, owner: app}",
        "postgresql_databases[3]: unknown key(s) size (known: comment, encoding, extensions, locale, name, owner, state, template)"]


def test_patroni_drift_names_what_differs_and_reads_booleans_alike():
    wanted = {"ttl": 20, "synchronous_mode": True,
              "postgresql": {"use_slots": True, "parameters": {"max_connections": "100", "wal_log_hints": "on"}}}
    same = {"ttl": 20, "synchronous_mode": "true", "loop_wait": 10,     # what Patroni has beyond the role's keys stays
            "postgresql": {"use_slots": True, "parameters": {"max_connections": 100, "wal_log_hints": True}}}
    assert postgresql_patroni_drift(wanted, same) == []
    changed = {"ttl": 30, "synchronous_mode": False, "postgresql": {"parameters": {"max_connections": 200}}}
    assert postgresql_patroni_drift(wanted, changed) == [
        "postgresql.parameters.max_connections: 200 -> 100", "postgresql.parameters.wal_log_hints: (unset) -> on",
        "postgresql.use_slots: (unset) -> on", "synchronous_mode: off -> on", "ttl: 30 -> 20"]
    assert len(postgresql_patroni_drift(wanted, {})) == 5
    with pytest.raises(AnsibleFilterError):
        postgresql_patroni_drift("ttl: 20", {})
