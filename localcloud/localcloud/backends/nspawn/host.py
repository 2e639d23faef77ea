"""Host helpers for the nspawn backend: commands, packages, state file, process checks."""
from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

log = logging.getLogger("localcloud.nspawn")

# Debian packages the backend needs on the host, by the command that proves they are there.
HOST_PACKAGES = {
    "systemd-nspawn": "systemd-container",
    "debootstrap": "debootstrap",
    "nft": "nftables",
    "ip": "iproute2",
    "apt-cacher-ng": "apt-cacher-ng",
    "start-stop-daemon": "dpkg",
    "nsenter": "util-linux",
    "ssh-keygen": "openssh-client",
    "losetup": "mount",
    "blkid": "util-linux",
    "sysctl": "procps",
    "haproxy": "haproxy",
    "lxcfs": "lxcfs",
    "mkfs.ext4": "e2fsprogs",
    "mkfs.xfs": "xfsprogs",
}
SBIN = ("/usr/sbin", "/sbin", "/usr/bin", "/bin")


class BackendError(RuntimeError):
    """A clear, user-facing failure of the machine backend."""


class CommandError(BackendError):
    def __init__(self, argv, returncode, output):
        self.argv, self.returncode, self.output = list(argv), returncode, output
        tail = output.strip()[-1500:]
        super().__init__(f"command failed ({returncode}): {' '.join(map(str, argv))}\n{tail}")


def which(cmd: str) -> str | None:
    found = shutil.which(cmd)
    if found:
        return found
    for d in SBIN:
        if os.access(f"{d}/{cmd}", os.X_OK):
            return f"{d}/{cmd}"
    return None


def run(argv, *, check=True, input=None, env=None, timeout=None, cwd=None, stderr=True) -> str:
    """Run a command, return its output (with stderr, unless stderr=False: for output that is
    parsed); raise CommandError on failure (if check)."""
    full_env = dict(os.environ, PATH=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
    if env:
        full_env.update(env)
    proc = subprocess.run([str(a) for a in argv], input=input, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT if stderr else subprocess.PIPE, text=True, env=full_env,
                          timeout=timeout, cwd=cwd)
    if check and proc.returncode != 0:
        raise CommandError(argv, proc.returncode, proc.stdout + ("" if stderr else proc.stderr))
    return proc.stdout


def require_root_linux() -> None:
    if not sys.platform.startswith("linux"):
        raise BackendError("--machines nspawn needs Linux (systemd-nspawn, network namespaces, "
                           "overlayfs, nftables)")
    if os.geteuid() != 0:
        raise BackendError("--machines nspawn must run as root: it creates network namespaces, "
                           "bridges, overlay mounts and nftables tables (run it with sudo, or "
                           "use --machines none)")


# The machines run as the host's root (no user namespace), so every inotify instance and watch their
# systemd, journald, logind, dbus and services (Prometheus, Alertmanager, ...) take counts against root's
# host-wide limits. Debian's default of 128 instances is used up by about two labs side by side (18
# booted machines take 8 each; a configured monitoring host more), and then a service in a machine fails
# with "too many open files" (Prometheus did). Sized for every slot full: SLOTS (8) local clouds of up to
# INOTIFY_MACHINES_PER_SLOT machines taking up to INOTIFY_INSTANCES_PER_MACHINE instances each (8x a
# booted machine's). Watches (a booted machine holds about 30): half the kernel's largest default.
# Only ever raised, never lowered (the host may need more for its own reasons).
INOTIFY_MACHINES_PER_SLOT = 16
INOTIFY_INSTANCES_PER_MACHINE = 64
INOTIFY_LIMITS = {
    "fs.inotify.max_user_instances": 8 * INOTIFY_MACHINES_PER_SLOT * INOTIFY_INSTANCES_PER_MACHINE,   # 8192
    "fs.inotify.max_user_watches": 524288,
}


def raise_inotify_limits(limits: dict[str, int] | None = None) -> dict[str, int]:
    """Raise the host's inotify limits to at least `limits` (never lower them); return the values now.
    A host that does not let us write them (a read-only /proc/sys) gets a warning with the command."""
    now = {}
    for name, floor in (INOTIFY_LIMITS if limits is None else limits).items():
        path = Path("/proc/sys") / name.replace(".", "/")
        current = int(path.read_text())
        if current < floor:
            try:
                path.write_text(f"{floor}\n")
                log.warning("raised %s from %d to %d (host-wide, until reboot): the machines' services take "
                            "inotify instances and watches from root's limits", name, current, floor)
                current = floor
            except OSError as exc:
                log.warning("%s is %d, below the %d the machines may need, and cannot be raised (%s): "
                            "run sysctl -w %s=%d", name, current, floor, exc, name, floor)
        now[name] = current
    return now


_pkg_lock = threading.Lock()


def ensure_host_packages() -> None:
    """apt-get install whatever of HOST_PACKAGES is missing (only if missing)."""
    with _pkg_lock:
        missing = sorted({pkg for cmd, pkg in HOST_PACKAGES.items() if not which(cmd)})
        if not missing:
            return
        if not which("apt-get"):
            raise BackendError(f"missing host packages {missing} and no apt-get to install them")
        log.info("installing host packages: %s", " ".join(missing))
        env = {"DEBIAN_FRONTEND": "noninteractive"}
        argv = ["apt-get", "-o", "DPkg::Lock::Timeout=300", "install", "-y", "-q",
                "--no-install-recommends", *missing]
        last = None
        for attempt in range(3):
            try:
                if attempt:
                    run(["apt-get", "update", "-q"], env=env, check=False, timeout=600)
                run(argv, env=env, timeout=900)
                break
            except CommandError as exc:
                last = exc
                time.sleep(2 * attempt)
        else:
            raise BackendError(f"could not install host packages {missing}: {last}")
        still = sorted({pkg for cmd, pkg in HOST_PACKAGES.items() if not which(cmd)})
        if still:
            raise BackendError(f"host packages still missing after apt-get install: {still}")


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def pid_cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [p.decode(errors="replace") for p in f.read().split(b"\0") if p]
    except OSError:
        return []


def pid_matches(pid: int | None, *needles: str) -> bool:
    """True when pid is alive and its command line contains every needle (guards against pid reuse)."""
    if not pid_alive(pid):
        return False
    cmd = " ".join(pid_cmdline(pid))
    return all(n in cmd for n in needles)


def children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def write_file(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".lc-tmp")
    with open(tmp, "w") as f:
        f.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


class StateFile:
    """Everything the backend created on the host, so a later `down` can remove it after kill -9."""

    def __init__(self, path: Path):
        self.path = path
        self.lock = threading.RLock()
        self.data: dict = {"version": 1, "owner_pid": os.getpid(), "bridges": [], "routes": [],
                           "nft_tables": [], "netns": [], "links": [], "acng_pid": None, "machines": {}}

    @staticmethod
    def load(path: Path) -> dict | None:
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            return None

    def save(self) -> None:
        with self.lock:
            write_file(self.path, json.dumps(self.data, indent=1, sort_keys=True), 0o600)

    def add(self, key: str, value) -> None:
        with self.lock:
            if value not in self.data.setdefault(key, []):
                self.data[key].append(value)
            self.save()

    def remove(self, key: str, value) -> None:
        with self.lock:
            if value in self.data.get(key, []):
                self.data[key].remove(value)
            self.save()

    def set_item(self, key: str, name: str, value) -> None:
        """Record (value) or forget (None) one entry of a dict, e.g. loops: {device: backing file}."""
        with self.lock:
            entries = self.data.setdefault(key, {})
            if value is None:
                entries.pop(name, None)
            else:
                entries[name] = value
            self.save()

    def set_machine(self, server_id: int, info: dict | None) -> None:
        with self.lock:
            if info is None:
                self.data["machines"].pop(str(server_id), None)
            else:
                self.data["machines"][str(server_id)] = info
            self.save()


class HostLock:
    """One nspawn local cloud per slot (slot 0: /run/localcloud/nspawn.lock): a slot's bridge, public
    range and tables are host-wide names."""

    def __init__(self, path: Path = Path("/run/localcloud/nspawn.lock")):
        self.path = path
        self.fd: int | None = None
        self.previous_state_dir: str | None = None

    def acquire(self, state_dir: Path, wait: float = 0, candidates: list[Path] | None = None) -> Path:
        """Take the first free lock of `candidates` (default: this lock), waiting up to `wait`
        seconds for one; returns the path taken."""
        paths = candidates or [self.path]
        paths[0].parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + wait
        while True:
            holders = []
            for path in paths:
                fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    holders.append(os.read(fd, 4096).decode(errors="replace").strip() or "unknown")
                    os.close(fd)
                    continue
                previous = os.read(fd, 65536).decode(errors="replace")
                self.previous_state_dir = previous.split(" state ", 1)[1] if " state " in previous else None
                os.ftruncate(fd, 0)
                os.lseek(fd, 0, os.SEEK_SET)
                os.write(fd, f"pid {os.getpid()} state {state_dir}".encode())
                self.fd, self.path = fd, path
                return path
            if time.monotonic() >= deadline:
                if len(paths) == 1:
                    raise BackendError("another local cloud with --machines nspawn is running on this "
                                       f"host in this slot ({holders[0]}); stop it first (localcloud down) "
                                       "or use another slot (--slot auto)")
                raise BackendError(f"all {len(paths)} slots for local clouds with --machines nspawn are taken "
                                   f"on this host ({'; '.join(holders)}); stop one first (localcloud down)")
            time.sleep(0.5)

    def release(self) -> None:
        if self.fd is not None:
            try:
                os.ftruncate(self.fd, 0)
                fcntl.flock(self.fd, fcntl.LOCK_UN)
            finally:
                os.close(self.fd)
                self.fd = None


def mounts_under(path) -> list[str]:
    prefix = os.path.realpath(str(path)).rstrip("/") + "/"
    found = []
    with open("/proc/self/mounts") as f:
        for line in f:
            mnt = line.split()[1].replace("\\040", " ")
            if (mnt + "/").startswith(prefix):
                found.append(mnt)
    return sorted(found, key=len, reverse=True)


def safe_rmtree(path) -> None:
    """rm -rf that never descends into a mount (a bind of /dev, a machine's overlay root...)."""
    if not os.path.lexists(str(path)):
        return
    for mnt in mounts_under(path):
        run(["umount", mnt], check=False)
        if os.path.ismount(mnt):
            run(["umount", "-l", mnt], check=False)
    left = mounts_under(path)
    if left:
        raise BackendError(f"refusing to delete {path}: still mounted: {left}")
    shutil.rmtree(path, ignore_errors=True)


def copy_tree(src, dest) -> None:
    """cp -a of a machine's overlay upper layer (whiteouts, xattrs, owners, sparse files). Files that
    a running machine deletes while they are copied are left out, as from a live disk."""
    proc = subprocess.run(["cp", "-a", "--reflink=auto", "--sparse=always", "-T", str(src), str(dest)],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    errors = [line for line in proc.stderr.splitlines() if "No such file or directory" not in line]
    if proc.returncode != 0 and (errors or not proc.stderr):
        raise CommandError(["cp", "-a", src, dest], proc.returncode, proc.stderr)
