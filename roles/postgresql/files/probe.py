#!/usr/bin/env python
# Copyright: (c) 2026, autoscale.hetzner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read-only probe of the postgresql role (run by its preflight with ansible.builtin.script).

Usage: probe.py '<json>' with {"volumes": {"data": {"device": ..., "mount": ...}, "repo": {...}},
"marker": ".autoscale-hetzner-postgresql", "conf_dir": ..., "data_dir": ..., "bin": ..., "socket": ...,
"port": 5432}. Prints one JSON object: the server's size, each volume (present? signature from
blkid -p, where it is mounted, what its filesystem holds: a read-only mount without journal replay
when it is mounted nowhere), and the cluster (configuration, data directory, system identifier,
running, in recovery, streaming), and Patroni's configuration and service. It changes nothing and works on a host without PostgreSQL.
"""
import json
import os
import stat
import subprocess
import sys
import tempfile


def run(args, **kwargs):
    return subprocess.run(args, capture_output=True, text=True, check=False, **kwargs)


def mountinfo():
    """[(major:minor, mount point)] of this mount namespace, in mount order."""
    found = []
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        for line in f:
            fields = line.split()
            target = fields[4].encode().decode("unicode_escape")   # \040 for a space
            found.append((fields[2], target))
    return found


def holds_files(path):
    if not os.path.isdir(path) or os.path.islink(path):
        return True
    for _root, _dirs, files in os.walk(path):
        if files:
            return True
    return False


def fstab_targets(*sources):
    """Mount points /etc/fstab has for a device (by its path, its real path or UUID=)."""
    names = {s for s in sources[:2] if s} | ({"UUID=" + sources[2]} if sources[2] else set())
    found = []
    try:
        with open("/etc/fstab", encoding="utf-8") as f:
            for line in f:
                fields = line.split()
                if len(fields) >= 2 and not fields[0].startswith("#") and fields[0] in names:
                    found.append(fields[1])
    except OSError:
        pass
    return found


def volume(device, mount, marker):
    if not device:
        return {"state": "none"}
    if device.startswith("auto:"):
        return {"state": "ambiguous", "candidates": [c for c in device[5:].split(",") if c]}
    info = {"state": "missing", "device": device}
    try:
        st = os.stat(device)
    except OSError:
        return info
    if not stat.S_ISBLK(st.st_mode):
        info["state"] = "not_a_block_device"
        return info
    real = os.path.realpath(device)
    mm = "%d:%d" % (os.major(st.st_rdev), os.minor(st.st_rdev))
    info.update(state="present", real=real, mm=mm)
    size = run(["blockdev", "--getsize64", real])
    info["bytes"] = int(size.stdout.strip() or 0) if size.returncode == 0 else 0
    # blkid -p reads the device (no cache): filesystems, partition tables, RAID/LVM members, swap.
    sig = {}
    for line in run(["blkid", "-p", "-o", "export", real]).stdout.splitlines():
        key, _sep, value = line.partition("=")
        sig[key] = value
    info.update(type=sig.get("TYPE", ""), uuid=sig.get("UUID", ""), pttype=sig.get("PTTYPE", ""),
                usage=sig.get("USAGE", ""), label=sig.get("LABEL", ""))
    mounts = mountinfo()
    info["mounted"] = [target for dev, target in mounts if dev == mm]
    at_mount = [dev for dev, target in mounts if target == mount]
    info["at_mount"] = at_mount[-1] if at_mount else ""
    info["fstab"] = fstab_targets(device, real, sig.get("UUID", ""))
    info["under_mount"] = []
    if not at_mount and os.path.isdir(mount):
        # What a volume mounted there would hide: files (directories that hold no file, as a package's
        # installation leaves them, do not count).
        info["under_mount"] = sorted(e for e in os.listdir(mount) if holds_files(os.path.join(mount, e)))
    info["entries"], info["marker"], info["readable"] = [], "", False
    if info["type"] not in ("ext4", "xfs"):
        return info
    top, tmp = (info["mounted"][0] if info["mounted"] else ""), ""
    if not top:
        tmp = tempfile.mkdtemp(prefix="postgresql-probe.", dir="/run")
        options = "ro,norecovery" if info["type"] == "xfs" else "ro,noload"
        if run(["mount", "-t", info["type"], "-o", options, real, tmp]).returncode == 0:
            top = tmp
    try:
        if top:
            info["readable"] = True
            info["entries"] = sorted(e for e in os.listdir(top) if e != "lost+found")
            path = os.path.join(top, marker)
            if os.path.isfile(path):
                with open(path, encoding="utf-8", errors="replace") as f:
                    info["marker"] = f.read(300).strip() or "yes"
    finally:
        if tmp:
            if top == tmp:
                run(["umount", tmp])
            os.rmdir(tmp)
    return info


def cluster(spec):
    conf_dir, data_dir, bindir = spec["conf_dir"], spec["data_dir"], spec["bin"]
    info = {"conf": os.path.isfile(os.path.join(conf_dir, "postgresql.conf")), "data": "missing",
            "pg_version": "", "standby_signal": False, "sysid": "", "state": "", "running": False,
            "recovery": None, "receiver": "", "live_sysid": "", "start_time": "", "installed": os.path.isdir(bindir)}
    if os.path.isdir(data_dir):
        info["data"] = "files" if os.listdir(data_dir) else "empty"
        version_file = os.path.join(data_dir, "PG_VERSION")
        if os.path.isfile(version_file):
            with open(version_file, encoding="utf-8") as f:
                info["pg_version"] = f.read().strip()
        info["standby_signal"] = os.path.exists(os.path.join(data_dir, "standby.signal"))
        controldata = os.path.join(bindir, "pg_controldata")
        if os.access(controldata, os.X_OK) and os.path.isfile(os.path.join(data_dir, "global", "pg_control")):
            out = run([controldata, "-D", data_dir], env=dict(os.environ, LC_ALL="C")).stdout
            for line in out.splitlines():
                key, _sep, value = line.partition(":")
                if key == "Database system identifier":
                    info["sysid"] = value.strip()
                elif key == "Database cluster state":
                    info["state"] = value.strip()
    isready = os.path.join(bindir, "pg_isready")
    if os.access(isready, os.X_OK) and run([isready, "-q", "-h", spec["socket"], "-p", str(spec["port"])]).returncode == 0:
        info["running"] = True
        query = ("select pg_is_in_recovery(), coalesce((select status from pg_stat_wal_receiver), ''), "
                 "(select system_identifier from pg_control_system()), pg_postmaster_start_time()")
        out = run(["runuser", "-u", "postgres", "--", os.path.join(bindir, "psql"), "-XAtq", "-h", spec["socket"],
                   "-p", str(spec["port"]), "-d", "postgres", "-F", "|", "-c", query], cwd="/tmp").stdout.strip()
        if out.count("|") == 3:
            recovery, receiver, sysid, start = out.split("|")
            info.update(recovery=recovery == "t", receiver=receiver, live_sysid=sysid, start_time=start)
    return info


def main():
    spec = json.loads(sys.argv[1])
    with open("/proc/meminfo", encoding="utf-8") as f:
        memory_kb = next(int(line.split()[1]) for line in f if line.startswith("MemTotal:"))
    result = {"memory_mb": memory_kb // 1024, "cpus": len(os.sched_getaffinity(0))}
    for tag, vol in spec["volumes"].items():
        result[tag] = volume(vol["device"], vol["mount"], spec["marker"])
    result["cluster"] = cluster(spec)
    # The size of the filesystem the data directory would be on without a volume.
    path = spec["data_dir"]
    while not os.path.isdir(path):
        path = os.path.dirname(path)
    st = os.statvfs(path)
    result["disk_bytes"] = st.f_blocks * st.f_frsize
    # Patroni (postgresql_ha: patroni): its configuration of this cluster, and whether it runs.
    patroni = spec.get("patroni", {})
    result["patroni"] = {"config": bool(patroni.get("config")) and os.path.isfile(patroni["config"]), "active": False}
    if patroni.get("service"):
        result["patroni"]["active"] = run(["systemctl", "is-active", "--quiet", patroni["service"]]).returncode == 0
    result["timers"] = sorted(t for t in ("pgbackrest-backup-full.timer", "pgbackrest-backup-diff.timer")
                              if os.path.exists(os.path.join("/etc/systemd/system", t)))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
