"""Sizes as the server type says: cgroup limits per machine, and lxcfs for what the machine sees.

- CPUs: a cpuset of min(cores, host CPUs) CPUs, so nproc, sched_getaffinity and (through lxcfs)
  /proc/cpuinfo show the type's vCPUs, as far as the host has them;
- memory: memory.limit_in_bytes (v1) / memory.max (v2) = the type's memory, and /proc/meminfo
  (through lxcfs) shows it as MemTotal.
The machine's cgroups are made below the cgroups this process is in (v1 memory and cpuset), so a
host that accounts our processes in a cgroup of its own keeps accounting the machines there.
lxcfs (Debian package) runs once per local cloud at /run/localcloud/lxcfs (lxcfs-N in slot N), bound read-only into
each machine at /var/lib/lxcfs (as LXC does); localcloud-lxcfs.service in the machine binds its files
over /proc/{cpuinfo,meminfo,...} first thing at boot. (systemd-nspawn cannot take a single lxcfs
file as --bind source: "Failed to stat ...: No such file or directory".)
"""
from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from .host import log, mounts_under, pid_alive, pid_matches, run, which

ROOT = Path("/sys/fs/cgroup")
LXCFS_PROC = ("cpuinfo", "diskstats", "loadavg", "meminfo", "stat", "swaps", "uptime")
LXCFS_GUEST = "/var/lib/lxcfs"
GIB = 1024 ** 3
GUEST_SCRIPT = f"""#!/bin/sh
# written by the local cloud: the server type's CPUs and memory in /proc (lxcfs, as LXC does).
# /proc/cpuinfo lists the machine's CPUs; "cpu cores" and "siblings" are set to their number so
# that tools counting cores x sockets x threads (Ansible's processor_vcpus) see the type's vCPUs.
L={LXCFS_GUEST}
for f in {" ".join(f for f in LXCFS_PROC if f != "cpuinfo")}; do
    if [ -e $L/proc/$f ]; then mount --bind $L/proc/$f /proc/$f; fi
done
if [ -e $L/sys/devices/system/cpu/online ]; then
    mount --bind $L/sys/devices/system/cpu/online /sys/devices/system/cpu/online
fi
n=$(grep -c '^processor' $L/proc/cpuinfo)
sed -e "s/^\\(cpu cores[[:space:]]*:\\).*/\\1 $n/" -e "s/^\\(siblings[[:space:]]*:\\).*/\\1 $n/" \\
    $L/proc/cpuinfo > /run/localcloud-cpuinfo
mount --bind /run/localcloud-cpuinfo /proc/cpuinfo
"""
GUEST_UNIT = f"""\
# written by the local cloud: the server type's CPUs and memory in /proc (lxcfs, as LXC does)
[Unit]
Description=Server type's CPUs and memory in /proc (local cloud, lxcfs)
DefaultDependencies=no
After=systemd-tmpfiles-setup.service
Before=sysinit.target
ConditionPathExists={LXCFS_GUEST}/proc/meminfo

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/sh /usr/lib/localcloud/lxcfs-binds

[Install]
WantedBy=sysinit.target
"""


def install_guest_unit(root: Path) -> None:
    script = root / "usr/lib/localcloud/lxcfs-binds"
    script.parent.mkdir(parents=True, exist_ok=True)
    script.write_text(GUEST_SCRIPT)
    unit = root / "etc/systemd/system/localcloud-lxcfs.service"
    unit.parent.mkdir(parents=True, exist_ok=True)
    unit.write_text(GUEST_UNIT)
    wants = root / "etc/systemd/system/sysinit.target.wants"
    wants.mkdir(parents=True, exist_ok=True)
    link = wants / unit.name
    if not link.is_symlink():
        link.symlink_to(f"/etc/systemd/system/{unit.name}")


def _own(controller: str) -> str | None:
    """This process's cgroup path in a v1 hierarchy, e.g. /process_api/abc for memory."""
    try:
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            if controller in controllers.split(","):
                return path
    except OSError:
        pass
    return None


def limit_dirs(name: str) -> dict[str, Path]:
    """controller -> the machine's cgroup directory for its limits ({} where there is none)."""
    if (ROOT / "cgroup.controllers").exists():             # cgroup v2 only: one dir holds both
        return {"v2": ROOT / "localcloud" / name}
    dirs = {}
    for controller in ("memory", "cpuset"):
        own = _own(controller)
        if own is not None and (ROOT / controller).is_dir():
            dirs[controller] = ROOT / controller / own.lstrip("/") / "localcloud" / name
    return dirs


def host_cpus() -> list[int]:
    return sorted(os.sched_getaffinity(0))


def pick_cpus(server_id: int, cores: int | None) -> list[int]:
    cpus = host_cpus()
    if not cores or cores >= len(cpus):
        return cpus
    start = server_id % len(cpus)                          # spread small machines over the CPUs
    return sorted((cpus * 2)[start:start + cores])


def prepare(name: str, server_id: int, cores: int | None, memory_gb: float | None) -> list[Path]:
    """Make the machine's limit cgroups; returns the dirs the machine's process must join."""
    dirs = limit_dirs(name)
    joined = []
    for controller, path in dirs.items():
        try:
            _make(controller, path, server_id, cores, memory_gb)
            joined.append(path)
        except OSError as exc:
            log.warning("%s: no %s limit for the machine (%s)", name, controller, exc)
    return joined


def _make(controller: str, path: Path, server_id: int, cores, memory_gb) -> None:
    cpus = ",".join(map(str, pick_cpus(server_id, cores)))
    if controller == "cpuset":
        parent = path.parent
        parent.mkdir(parents=True, exist_ok=True)
        for key in ("cpuset.cpus", "cpuset.mems"):          # a v1 cpuset needs both before it takes tasks
            if not (parent / key).read_text().strip():
                (parent / key).write_text((parent.parent / key).read_text())
        path.mkdir(exist_ok=True)
        (path / "cpuset.mems").write_text((parent / "cpuset.mems").read_text())
        (path / "cpuset.cpus").write_text(cpus)
    elif controller == "memory":
        path.mkdir(parents=True, exist_ok=True)
        if memory_gb:
            (path / "memory.limit_in_bytes").write_text(str(int(memory_gb * GIB)))
    else:                                                    # v2
        for parent in (ROOT, ROOT / "localcloud"):
            parent.mkdir(exist_ok=True)
            try:
                (parent / "cgroup.subtree_control").write_text("+memory +cpuset")
            except OSError:
                pass
        path.mkdir(exist_ok=True)
        if (path / "cpuset.cpus").exists():
            (path / "cpuset.cpus").write_text(cpus)
        if memory_gb and (path / "memory.max").exists():
            (path / "memory.max").write_text(str(int(memory_gb * GIB)))


def parents(dirs: list[str]) -> list[str]:
    return sorted({str(Path(d).parent) for d in dirs})


class Lxcfs:
    """One lxcfs for the local cloud; the machines see their own CPUs and memory through it."""

    def __init__(self, state, mount: Path):
        self.state = state
        self.mount = mount
        self.pid: int | None = None

    def ensure(self) -> bool:
        if self.ready():
            return True
        binary = which("lxcfs")
        if not binary or not os.path.exists("/dev/fuse"):
            log.warning("lxcfs or /dev/fuse missing: machines see the host's CPUs and memory in /proc")
            return False
        try:
            return self._start(binary)
        except OSError as exc:
            log.warning("lxcfs did not start (%s): machines see the host's CPUs and memory", exc)
            return False

    def _start(self, binary: str) -> bool:
        # A mount left by an lxcfs that was killed answers ENOTCONN to every stat (even
        # os.path.ismount then says False): /proc/mounts tells, and a lazy umount clears it.
        if str(self.mount) in mounts_under(self.mount):
            run(["umount", "-l", self.mount], check=False)
        self.mount.mkdir(parents=True, exist_ok=True)
        log_file = open(f"{self.mount}.log", "ab")
        proc = subprocess.Popen([binary, "-p", f"{self.mount}.pid", str(self.mount)],
                                stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
                                start_new_session=True)
        log_file.close()
        self.pid = proc.pid
        with self.state.lock:
            self.state.data["lxcfs"] = {"pid": proc.pid, "mount": str(self.mount)}
            self.state.save()
        for _ in range(100):
            if (self.mount / "proc" / "meminfo").exists():
                return True
            if proc.poll() is not None:
                break
            time.sleep(0.05)
        log.warning("lxcfs did not start (see %s.log): machines see the host's CPUs and memory", self.mount)
        return False

    def ready(self) -> bool:
        return bool(self.pid) and pid_alive(self.pid) and (self.mount / "proc" / "meminfo").exists()

    def binds(self) -> list[str]:
        return [f"--bind-ro={self.mount}:{LXCFS_GUEST}"] if self.ready() else []


def teardown_lxcfs(info: dict | None) -> None:
    if not info:
        return
    mount, pid = info.get("mount"), info.get("pid")
    if mount and mount in mounts_under(mount):             # also a stale one (lxcfs killed)
        run(["umount", "-l", mount], check=False)
    if pid and pid_matches(pid, "lxcfs", mount or ""):
        os.kill(pid, 15)
