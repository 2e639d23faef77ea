# Copyright: (c) 2026, autoscale.hetzner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""PostgreSQL filters for the postgresql role: sizing, configuration values, pg_hba entries, input checks.

Documentation: the YAML files next to this one (postgresql_sizing.yml, postgresql_conf_value.yml,
postgresql_hba_problems.yml, postgresql_hba_rules.yml, postgresql_user_problems.yml,
postgresql_database_problems.yml, postgresql_slot_name.yml).
"""

from __future__ import annotations

import re

from ansible.errors import AnsibleFilterError

from ansible_collections.autoscale.hetzner.plugins.filter.firewall import firewall_sources
from ansible_collections.autoscale.hetzner.plugins.filter.netspec import invalid_cidrs

HBA_KEYS = {"type", "database", "user", "from_groups", "from_cidrs", "method", "options", "comment"}
HBA_TYPES = ("host", "hostssl", "hostnossl", "local")
# Passwords over the network: SCRAM only (md5 and password are what the prior art's users regret).
HBA_METHODS = {"host": ("scram-sha-256",), "hostssl": ("scram-sha-256",), "hostnossl": ("scram-sha-256",),
               "local": ("peer", "scram-sha-256")}
# An identifier pg_hba.conf takes without quotes: a name, or a comma-separated list of names (and
# the keywords all, sameuser, samerole, replication, +group).
HBA_NAME = re.compile(r"^\+?[A-Za-z_][A-Za-z0-9_$-]{0,62}(,\+?[A-Za-z_][A-Za-z0-9_$-]{0,62})*$")
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_$-]{0,62}$")
USER_KEYS = {"name", "password", "roles", "role_attr_flags", "state", "conn_limit", "comment"}
ROLE_ATTR_FLAGS = {"SUPERUSER", "CREATEROLE", "CREATEDB", "INHERIT", "LOGIN", "REPLICATION", "BYPASSRLS",
                   "NOSUPERUSER", "NOCREATEROLE", "NOCREATEDB", "NOINHERIT", "NOLOGIN", "NOREPLICATION",
                   "NOBYPASSRLS"}
DATABASE_KEYS = {"name", "owner", "extensions", "encoding", "locale", "template", "state", "comment"}
SIZE = re.compile(r"^\s*(\d+)\s*(B|kB|MB|GB|TB)?\s*$")
UNITS = {"B": 1, "kB": 1024, "MB": 1024 ** 2, "GB": 1024 ** 3, "TB": 1024 ** 4}


def _list(value):
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _mb(value):
    """'1536MB' for 1536, '2GB' for 2048 (PostgreSQL reads both)."""
    value = int(value)
    return "%dGB" % (value // 1024) if value >= 1024 and value % 1024 == 0 else "%dMB" % value


def postgresql_sizing(memory_mb, cpus, max_connections=100):
    """Settings sized from the server's memory (MB) and CPUs, in the spirit of PGTune's "web/mixed" profile.

    Returns a dict of GUC name -> value (strings with units, or numbers) for conf.d.
    """
    try:
        memory_mb = int(memory_mb)
        cpus = max(1, int(cpus))
        max_connections = max(1, int(max_connections))
    except (TypeError, ValueError) as exc:
        raise AnsibleFilterError("postgresql_sizing: memory_mb, cpus and max_connections must be integers: %s" % exc)
    if memory_mb < 256:
        raise AnsibleFilterError("postgresql_sizing: %d MB of memory is too little for PostgreSQL (256 MB at least)" % memory_mb)
    shared_buffers = memory_mb // 4
    per_gather = max(1, min(4, cpus // 2))
    # What is left after shared_buffers, for max_connections sessions with ~3 sorts/hashes each, per
    # parallel worker of a query; at least 4 MB (PostgreSQL's default), at most 256 MB.
    work_mem_kb = (memory_mb - shared_buffers) * 1024 // (max_connections * 3) // per_gather
    work_mem_kb = max(4096, min(work_mem_kb, 256 * 1024))
    settings = {
        "max_connections": max_connections,
        "shared_buffers": _mb(shared_buffers),
        "effective_cache_size": _mb(memory_mb * 3 // 4),
        "maintenance_work_mem": _mb(max(64, min(memory_mb // 16, 2048))),
        "work_mem": "%dkB" % work_mem_kb,
        # wal_buffers -1 (the default) is 1/32 of shared_buffers, at most 16 MB.
        "wal_buffers": "-1",
        "min_wal_size": "1GB",
        "max_wal_size": "4GB",
        "checkpoint_completion_target": 0.9,
        # Hetzner Cloud disks and volumes are SSD-backed (volumes: network block storage).
        "random_page_cost": 1.1,
        "effective_io_concurrency": 200,
        "default_statistics_target": 100,
        "max_worker_processes": max(8, cpus),
        "max_parallel_workers": cpus,
        "max_parallel_workers_per_gather": per_gather,
        "max_parallel_maintenance_workers": per_gather,
    }
    return settings


def postgresql_conf_value(value):
    """A value as postgresql.conf wants it: numbers bare, booleans on/off, everything else quoted."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, (list, tuple)):
        value = ",".join(str(v) for v in value)
    if value is None:
        value = ""
    return "'%s'" % str(value).replace("\\", "\\\\").replace("'", "''")


def postgresql_size_bytes(value):
    """Bytes of a PostgreSQL size ('10GB', '512MB', 1024 = kB as PostgreSQL reads a bare number for sizes in kB)."""
    if isinstance(value, int):
        return value * 1024
    match = SIZE.match(str(value))
    if not match:
        raise AnsibleFilterError("postgresql_size_bytes: %r is not a size like 512MB or 10GB" % (value,))
    return int(match.group(1)) * UNITS[match.group(2) or "kB"]


def postgresql_hba_problems(entries, where="postgresql_hba_entries"):
    """Problems of pg_hba entries (data), each naming the entry's full path and the fix."""
    problems = []
    if entries is None:
        return problems
    if not isinstance(entries, (list, tuple)):
        return ["%s: must be a list of entries, got %s" % (where, type(entries).__name__)]
    for index, entry in enumerate(entries):
        path = "%s[%d]" % (where, index)
        if not isinstance(entry, dict):
            problems.append("%s: must be a dict like {database: app, user: app, from_groups: [app]}" % path)
            continue
        unknown = sorted(set(entry) - HBA_KEYS)
        if unknown:
            problems.append("%s: unknown key(s) %s (known: %s)" % (path, ", ".join(unknown), ", ".join(sorted(HBA_KEYS))))
        kind = entry.get("type", "host")
        if kind not in HBA_TYPES:
            problems.append("%s.type: %r is not one of %s" % (path, kind, ", ".join(HBA_TYPES)))
            continue
        for key in ("database", "user"):
            value = entry.get(key)
            if not isinstance(value, str) or not HBA_NAME.match(value):
                problems.append("%s.%s: %r is not a name or a comma-separated list of names (all for any)"
                                % (path, key, value))
        method = entry.get("method", HBA_METHODS[kind][0])
        if method not in HBA_METHODS[kind]:
            problems.append("%s.method: %r is not allowed for %s entries (allowed: %s; md5, password and trust are "
                            "never used)" % (path, method, kind, ", ".join(HBA_METHODS[kind])))
        cidrs = _list(entry.get("from_cidrs"))
        groups = _list(entry.get("from_groups"))
        if kind == "local":
            if cidrs or groups:
                problems.append("%s: a local entry (the Unix socket) takes no from_cidrs or from_groups" % path)
            continue
        bad = invalid_cidrs([c if isinstance(c, str) else repr(c) for c in cidrs])
        if bad:
            problems.append("%s.from_cidrs: %s %s not an IP address or CIDR network (like 10.0.1.0/24 or 10.0.1.5)"
                            % (path, ", ".join(repr(b) for b in bad), "is" if len(bad) == 1 else "are"))
        if any(not isinstance(g, str) or not g for g in groups):
            problems.append("%s.from_groups: must be a list of inventory group names" % path)
        if not cidrs and not groups:
            problems.append("%s: no source; give from_groups (inventory groups, by their private IPs) and/or "
                            "from_cidrs" % path)
        if any(c in ("0.0.0.0/0", "::/0") for c in cidrs):
            problems.append("%s.from_cidrs: 0.0.0.0/0 and ::/0 open the database to the world; name the networks "
                            "or groups of the clients" % path)
    return problems


def postgresql_hba_rules(entries, groups=None, hostvars=None, address_var="hcloud_private_ipv4"):
    """pg_hba lines for entries: one per source address (groups resolved to their hosts' private IPs).

    Returns a list of {type, database, user, address, method, options, comment}; local entries have
    address ''. Sources of an entry are canonical (sorted, unique); a single address becomes a /32 or
    /128. Group members without the address variable are skipped (host_firewall does the same).
    """
    problems = postgresql_hba_problems(entries)
    if problems:
        raise AnsibleFilterError("postgresql_hba_rules: " + "; ".join(problems))
    rules = []
    for entry in entries or []:
        kind = entry.get("type", "host")
        common = {"type": kind, "database": entry["database"], "user": entry["user"],
                  "method": entry.get("method", HBA_METHODS[kind][0]), "options": entry.get("options", ""),
                  "comment": entry.get("comment", "")}
        if kind == "local":
            rules.append(dict(common, address=""))
            continue
        for source in firewall_sources(entry.get("from_cidrs"), entry.get("from_groups"), groups, hostvars, address_var):
            if "/" not in source:
                source += "/128" if ":" in source else "/32"
            rules.append(dict(common, address=source))
    return rules


def _named_entries(items, where, what, example, keys, kind, problems):
    """(path, entry) of each dict entry of a list of named things (users, databases); the problems
    common to them (not a list, not a dict, unknown keys, a bad or repeated name) go to problems."""
    if items is None:
        return
    if not isinstance(items, (list, tuple)):
        problems.append("%s: must be a list of %s, got %s" % (where, what, type(items).__name__))
        return
    seen = set()
    for index, entry in enumerate(items):
        path = "%s[%d]" % (where, index)
        if not isinstance(entry, dict):
            problems.append("%s: must be a dict like %s" % (path, example))
            continue
        unknown = sorted(set(entry) - keys)
        if unknown:
            problems.append("%s: unknown key(s) %s (known: %s)" % (path, ", ".join(unknown), ", ".join(sorted(keys))))
        name = entry.get("name")
        if not isinstance(name, str) or not IDENTIFIER.match(name):
            problems.append("%s.name: %r is not %s (letters, digits, _ and $, 63 at most)" % (path, name, kind))
        elif name in seen:
            problems.append("%s.name: %s is listed twice" % (path, name))
        else:
            seen.add(name)
        yield path, entry


def postgresql_user_problems(users, where="postgresql_users"):
    """Problems of the users (roles) list: names, passwords, attribute flags."""
    problems = []
    for path, user in _named_entries(users, where, "users", "{name: app, password: '{{ vault_app_db_password }}'}",
                                     USER_KEYS, "a PostgreSQL role name", problems):
        name = user.get("name")
        state = user.get("state", "present")
        if state not in ("present", "absent"):
            problems.append("%s.state: %r is not present or absent" % (path, state))
        flags = [f.strip().upper() for f in str(user.get("role_attr_flags") or "").split(",") if f.strip()]
        bad_flags = [f for f in flags if f not in ROLE_ATTR_FLAGS]
        if bad_flags:
            problems.append("%s.role_attr_flags: unknown flag(s) %s" % (path, ", ".join(bad_flags)))
        login = "NOLOGIN" not in flags
        password = user.get("password")
        if state == "present" and login and (not isinstance(password, str) or not password):
            problems.append("%s.password: the user %s can log in but has no password; set it from a vaulted variable "
                            "(password: \"{{ vault_%s_db_password }}\") or give role_attr_flags: NOLOGIN"
                            % (path, name, name if isinstance(name, str) else "user"))
        if not isinstance(user.get("roles", []), (list, tuple)):
            problems.append("%s.roles: must be a list of role names (e.g. [pg_monitor])" % path)
    return problems


def postgresql_database_problems(databases, users=None, where="postgresql_databases"):
    """Problems of the databases list: names, owners (a listed user or postgres), extensions."""
    problems = []
    known_users = {"postgres"} | {u.get("name") for u in users or [] if isinstance(u, dict)
                                  and u.get("state", "present") == "present"}
    for path, database in _named_entries(databases, where, "databases", "{name: app, owner: app}",
                                         DATABASE_KEYS, "a database name", problems):
        owner = database.get("owner", "postgres")
        if database.get("state", "present") == "present" and owner not in known_users:
            problems.append("%s.owner: %r is neither postgres nor a user of postgresql_users; add the user or change "
                            "the owner" % (path, owner))
        extensions = database.get("extensions", [])
        if not isinstance(extensions, (list, tuple)) or any(not isinstance(e, str) or not IDENTIFIER.match(e)
                                                            for e in extensions):
            problems.append("%s.extensions: must be a list of extension names (e.g. [pg_trgm, pgcrypto])" % path)
    return problems


def postgresql_slot_name(host):
    """The physical replication slot of a standby: its inventory name in lower case, [a-z0-9_] only."""
    name = re.sub(r"[^a-z0-9_]", "_", str(host).lower())
    return name[:63]


def _volume_name(info):
    device = info.get("device", "")
    name = device.rsplit("scsi-0HC_Volume_", 1)[1] if "scsi-0HC_Volume_" in device else ""
    shown = "volume %s (%s" % (name, device) if name else "%s (" % device
    return shown + (" -> %s)" % info["real"] if info.get("real") and info["real"] != device else ")")


def postgresql_volume_plan(info, variable, mount, purpose="the data", fstypes=("ext4", "xfs")):
    """What to do with a volume the role's probe described (roles/postgresql/files/probe.py).

    Returns {action, problems, move}: action is none (no volume), format (blank: no signature at
    all), mount (an empty ext4/xfs filesystem, or one that holds this role's marker), or mounted
    (already at the mount point); problems name the variable and the fix; move says that the mount
    point holds files on the server's disk that go onto the volume first.
    """
    plan = {"action": "none", "problems": [], "move": False}
    state = (info or {}).get("state", "none")
    if state == "none":
        return plan
    problems = plan["problems"]
    if state == "ambiguous":
        candidates = info.get("candidates", [])
        if not candidates:
            problems.append("%s: auto found no volume for %s on this server (hcloud_volumes lists none that is free): "
                            "attach one (the stack's volumes: with server:) or set %s: none to keep it on the server's "
                            "own disk" % (variable, purpose, variable))
        else:
            problems.append("%s: auto found several volumes (%s) for %s; set %s to the id of the one to use"
                            % (variable, ", ".join(candidates), purpose, variable))
        return plan
    where = _volume_name(info)
    if state == "missing":
        problems.append("%s: %s does not exist on this host: attach the volume to this server, or choose another one"
                        % (variable, where))
        return plan
    if state != "present":
        problems.append("%s: %s is not a block device" % (variable, where))
        return plan
    kind, pttype, usage = info.get("type", ""), info.get("pttype", ""), info.get("usage", "")
    entries, marker = info.get("entries", []), info.get("marker", "")
    shown = ", ".join(entries[:8]) + (", ..." if len(entries) > 8 else "")
    foreign = ("%s: %s holds a %s filesystem with data that is not this role's (top level: %s). The role never formats "
               "or takes over such a volume, and changed nothing on it: give %s an empty volume (or one without any "
               "filesystem), or, if that data is not needed, wipe it yourself (wipefs -a %s) and re-run."
               % (variable, where, kind, shown, purpose, info.get("device", "")))
    if info.get("at_mount"):
        if info["at_mount"] != info.get("mm"):
            problems.append("%s: %s is already the mount point of another device (%s); the volume %s cannot go there"
                            % (variable, mount, info["at_mount"], where))
        elif entries and not marker:
            problems.append(foreign)
        else:
            plan["action"] = "mounted"
        return plan
    if not kind and not pttype and not usage:
        plan["action"] = "format"
    elif kind in fstypes:
        if not info.get("readable"):
            problems.append("%s: %s holds a %s filesystem that could not be mounted read-only to look inside (damaged?); "
                            "check it (e2fsck -n / xfs_repair -n) or choose another volume" % (variable, where, kind))
            return plan
        if entries and not marker:
            problems.append(foreign)
            return plan
        plan["action"] = "mount"
    else:
        what = ("a %s filesystem" % kind if kind else "a %s partition table" % pttype if pttype else "%s data" % usage)
        problems.append("%s: %s holds %s. The role formats only blank volumes and uses empty %s filesystems, and "
                        "changed nothing on it: choose another volume, or wipe it yourself (wipefs -a %s) and re-run."
                        % (variable, where, what, "/".join(fstypes), info.get("device", "")))
        return plan
    under = info.get("under_mount", [])
    if under:
        if marker and entries:
            problems.append("%s: %s on the server's disk holds files (%s) and %s holds this role's data too; the role "
                            "does not merge them: move %s's content away and re-run"
                            % (variable, mount, ", ".join(under[:8]), where, mount))
        else:
            plan["move"] = True
    return plan


def postgresql_authorized_keys(infos):
    """authorized_keys lines for a repository host: each database server's postgres key, from its address only.

    infos: the servers' postgresql_info facts. Returns the lines joined by newlines.
    """
    lines = []
    for info in infos or []:
        try:
            lines.append('from="%s",restrict %s' % (info["address"], info["backup"]["ssh_public_key"]))
        except (KeyError, TypeError):
            raise AnsibleFilterError("postgresql_authorized_keys: expects the servers' postgresql_info facts "
                                     "(with address and backup.ssh_public_key)")
    return "\n".join(lines)


def _patroni_value(value):
    """A value of Patroni's dynamic configuration as a comparable string (True, 'on', 'true' alike)."""
    if isinstance(value, bool):
        return "on" if value else "off"
    text = str(value)
    return {"true": "on", "false": "off"}.get(text.lower(), text)


def postgresql_patroni_drift(wanted, current, prefix=""):
    """Where Patroni's dynamic configuration (current, GET /config) differs from wanted: a list of
    'key: current -> wanted' (nested keys joined with dots); empty when it has every wanted value."""
    if not isinstance(wanted, dict):
        raise AnsibleFilterError("postgresql_patroni_drift: the wanted configuration must be a dict")
    current = current if isinstance(current, dict) else {}
    drift = []
    for key in sorted(wanted):
        name = prefix + str(key)
        if isinstance(wanted[key], dict):
            drift.extend(postgresql_patroni_drift(wanted[key], current.get(key), name + "."))
        elif key not in current or current[key] is None:
            drift.append("%s: (unset) -> %s" % (name, _patroni_value(wanted[key])))
        elif _patroni_value(current[key]) != _patroni_value(wanted[key]):
            drift.append("%s: %s -> %s" % (name, _patroni_value(current[key]), _patroni_value(wanted[key])))
    return drift


class FilterModule:
    def filters(self):
        return {
            "postgresql_sizing": postgresql_sizing,
            "postgresql_conf_value": postgresql_conf_value,
            "postgresql_size_bytes": postgresql_size_bytes,
            "postgresql_hba_problems": postgresql_hba_problems,
            "postgresql_hba_rules": postgresql_hba_rules,
            "postgresql_user_problems": postgresql_user_problems,
            "postgresql_database_problems": postgresql_database_problems,
            "postgresql_slot_name": postgresql_slot_name,
            "postgresql_volume_plan": postgresql_volume_plan,
            "postgresql_authorized_keys": postgresql_authorized_keys,
            "postgresql_patroni_drift": postgresql_patroni_drift,
        }
