"""Hetzner Volumes as block devices: a sparse backing file per volume, attached through a loop device.

Layout: <state>/volumes/HC_Volume_<id>.img (kept across serve restarts, kill -9 and `down`; removed
with the volume). Inside a machine the loop device appears as /dev/sdb, /dev/sdc, ... with the link
/dev/disk/by-id/scsi-0HC_Volume_<id> (and /dev/disk/by-uuid/<uuid> when it holds a filesystem), as
on Hetzner. /dev/disk in a machine is a bind of <state>/machines/<id>/dev-disk, so links come and go
live; device nodes of a running machine are made in its /dev with nsenter.

There is no udev in a container and systemd ignores fstab device entries there ("Running in a
container, ignoring fstab device entry"), so two stand-ins do what a Hetzner image does:
- automount (hc-utils' udev rule): mkdir /mnt/HC_Volume_<id>, the same fstab line unless the by-id
  path is already in fstab, then mount it; only when the volume holds a filesystem;
- localcloud-volumes.service in each machine mounts the ext4/xfs entries of /etc/fstab at boot,
  before local-fs.target, as systemd would on a VM.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path

from .host import BackendError, run, write_file

GIB = 1024 ** 3
FORMATS = {"ext4": ["mkfs.ext4", "-q", "-F"], "xfs": ["mkfs.xfs", "-q", "-f"]}
MOUNT_OPTIONS = "discard,nofail,defaults"
# sdb, sdc, ...: sda is the root disk on Hetzner (16 volumes per server at most)
DEVICE_NAMES = [f"sd{chr(c)}" for c in range(ord("b"), ord("r"))]

GUEST_UNIT = """\
# written by the local cloud: in a container systemd ignores fstab entries for block devices,
# so this mounts the volumes listed in /etc/fstab at boot, as systemd does on a Hetzner server
[Unit]
Description=Mount Hetzner volumes from /etc/fstab (local cloud)
DefaultDependencies=no
After=local-fs-pre.target
Before=local-fs.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=-/bin/mount -a -t ext4,xfs

[Install]
WantedBy=local-fs.target
"""


def by_id(volume_id: int) -> str:
    return f"/dev/disk/by-id/scsi-0HC_Volume_{volume_id}"


def mount_point(volume_id: int) -> str:
    return f"/mnt/HC_Volume_{volume_id}"


def fstab_line(volume_id: int, fstype: str) -> str:
    """hc-utils' line (99-hc-volume-automount.rules)."""
    return f"{by_id(volume_id)} {mount_point(volume_id)} {fstype} {MOUNT_OPTIONS} 0 0\n"


def install_guest_unit(root: Path) -> None:
    unit = root / "etc/systemd/system/localcloud-volumes.service"
    write_file(unit, GUEST_UNIT)
    wants = root / "etc/systemd/system/local-fs.target.wants"
    wants.mkdir(parents=True, exist_ok=True)
    link = wants / unit.name
    if not link.is_symlink():
        link.symlink_to(f"/etc/systemd/system/{unit.name}")


class VolumeFiles:
    """The backing files, and the loop devices that attach them (recorded for cleanup after kill -9)."""

    def __init__(self, backend, directory: Path):
        self.backend = backend
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)

    def path(self, volume_id: int) -> Path:
        return self.dir / f"HC_Volume_{volume_id}.img"

    def create(self, volume_id: int, size_gb: int, fmt: str | None) -> None:
        """A sparse file of the volume's size, formatted when asked; an existing file is kept as it is."""
        path = self.path(volume_id)
        if path.exists():
            if path.stat().st_size < size_gb * GIB:
                self.resize(volume_id, size_gb)
            return
        tmp = path.with_suffix(".new")
        with open(tmp, "wb") as f:
            f.truncate(size_gb * GIB)
        if fmt:
            if fmt not in FORMATS:
                raise BackendError(f"volume {volume_id}: unknown format {fmt!r} (ext4 or xfs)")
            run([*FORMATS[fmt], tmp])
        os.replace(tmp, path)

    def resize(self, volume_id: int, size_gb: int) -> None:
        """Grow the file; every loop device on it takes the new size (the machine sees it live)."""
        path = self.path(volume_id)
        if not path.exists():
            raise BackendError(f"volume {volume_id} has no backing file ({path})")
        if path.stat().st_size < size_gb * GIB:
            with open(path, "r+b") as f:
                f.truncate(size_gb * GIB)
        for loop in self.loops_of(path):
            run(["losetup", "--set-capacity", loop])

    def delete(self, volume_id: int) -> None:
        path = self.path(volume_id)
        for loop in self.loops_of(path):
            self.detach_loop(loop)
        path.unlink(missing_ok=True)
        path.with_suffix(".new").unlink(missing_ok=True)

    # ------------------------------------------------------------------ loop devices
    def attach_loop(self, volume_id: int) -> str:
        path = self.path(volume_id)
        if not path.exists():
            raise BackendError(f"volume {volume_id} has no backing file ({path})")
        loop = run(["losetup", "--find", "--show", path]).strip()
        self.backend.state.set_item("loops", loop, str(path))
        return loop

    def detach_loop(self, loop: str) -> None:
        # a loop still held (a lazily unmounted filesystem) is freed by the kernel once released
        run(["losetup", "--detach", loop], check=False)
        self.backend.state.set_item("loops", loop, None)

    @staticmethod
    def loops_of(path: Path) -> list[str]:
        found = []
        for backing in Path("/sys/block").glob("loop*/loop/backing_file"):
            try:
                if backing.read_text().strip() == str(path):
                    found.append("/dev/" + backing.parts[3])
            except OSError:
                pass
        return found

    @staticmethod
    def filesystem(loop: str) -> tuple[str | None, str | None]:
        """(type, uuid) of the filesystem on a device, (None, None) when it holds none."""
        out = run(["blkid", "-p", "-o", "export", loop], check=False)
        values = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
        return values.get("TYPE"), values.get("UUID")


def teardown_loops(loops: dict) -> None:
    """Detach the loop devices a (killed) run recorded, only while they still back the recorded file."""
    for loop, path in (loops or {}).items():
        backing = Path("/sys/block") / Path(loop).name / "loop" / "backing_file"
        try:
            current = backing.read_text().strip()
        except OSError:
            continue
        if current == path:
            run(["losetup", "--detach", loop], check=False)


def device_numbers(loop: str) -> tuple[int, int]:
    st = os.stat(loop)
    if not stat.S_ISBLK(st.st_mode):
        raise BackendError(f"{loop} is not a block device")
    return os.major(st.st_rdev), os.minor(st.st_rdev)
