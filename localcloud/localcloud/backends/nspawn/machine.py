"""One server = one systemd-nspawn machine: an overlayfs layer over the cached base image (its disk,
kept in <state>/disks/<id> across serve restarts), its own network namespace (veth eth0 on the
public bridge, enp7s0.. on network bridges), its own cgroup, its volumes as block devices, and a
NoCloud seed so that real cloud-init does the first boot like on Hetzner."""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path

from ..base import NetworkAttachment, ServerSpec
from .host import (BackendError, children, copy_tree, log, pid_alive, pid_matches, run, safe_rmtree,
                   write_file)
from .network import PRIVATE_MTU, HostNetwork, apt_client_conf
from . import sizes
from .volumes import DEVICE_NAMES, VolumeFiles, by_id, device_numbers, fstab_line, install_guest_unit, mount_point

SEED_DIR = "var/lib/cloud/seed/nocloud"


def cgroup_dirs(name: str) -> list[Path]:
    root = Path("/sys/fs/cgroup")
    if (root / "cgroup.controllers").exists():                       # unified (cgroup v2 only)
        return [root / "localcloud" / name]
    dirs = [root / "systemd" / "localcloud" / name]                  # hybrid / legacy
    if (root / "unified" / "cgroup.controllers").exists():
        dirs.append(root / "unified" / "localcloud" / name)
    return dirs


def rm_cgroup(path: Path) -> None:
    """Remove a machine's cgroup tree, deepest first. The machine's own systemd may still be
    removing its sub-cgroups while we walk (a stop in progress): vanished directories are fine,
    os.walk skips what it can no longer list."""
    if not path.exists():
        return
    for dirpath, _dirs, _files in os.walk(path, topdown=False):
        try:
            os.rmdir(dirpath)
        except OSError:
            pass


def public_mac(server_id: int) -> str:
    """Hetzner's public interfaces have 96:00:00:... MACs (private ones 86:00:00:..., from the model)."""
    return "96:00:00:%02x:%02x:%02x" % ((server_id >> 16) & 0xFF, (server_id >> 8) & 0xFF, server_id & 0xFF)


def private_ifname(k: int) -> str:
    return f"enp{6 + k}s0"


def separate_local_stage(lower: Path) -> bool:
    for d in ("lib/systemd/system", "usr/lib/systemd/system"):
        unit = lower / d / "cloud-init-local.service"
        if unit.exists():
            return "cloud-init init --local" in unit.read_text()
    return False


def vendor_data(root_password: str | None) -> str:
    # Hetzner's images let cloud-init write the sshd drop-in 50-cloud-init.conf with
    # PasswordAuthentication yes; a role that hardens sshd has to deal with it here too.
    cfg = {"ssh_pwauth": True}
    if root_password:
        cfg["chpasswd"] = {"expire": False,
                           "users": [{"name": "root", "password": root_password, "type": "text"}]}
    return "#cloud-config\n" + json.dumps(cfg, indent=1) + "\n"


class Machine:
    def __init__(self, backend, spec: ServerSpec):
        self.backend = backend
        self.sid = spec.server_id
        self.spec = spec
        slot = backend.slot
        self.name = slot.link("", str(self.sid))                # -M and the cgroups: lc<id>
        self.netns = slot.netns("", self.sid)
        self.dir = backend.machines_dir / str(self.sid)       # this run: root mount point, console, /dev/disk
        self.disk = backend.disks_dir / str(self.sid)         # kept: the overlay's upper and work dirs
        self.root = self.dir / "root"
        self.dev_disk = self.dir / "dev-disk"                  # bound to /dev/disk in the machine
        self.console = self.dir / "console.log"
        self.pub_if = slot.link("", str(self.sid), "p")
        self.lock = threading.RLock()
        self.proc: subprocess.Popen | None = None
        self.pid: int | None = None
        self.networks: dict[int, tuple[NetworkAttachment, str, str]] = {}  # id -> (att, host_if, inner)
        self.volumes: dict[int, dict] = {}      # volume id -> {"loop": /dev/loopN, "name": sdb, "automount": bool}
        self.lower: Path | None = None
        self.generation = 0
        self.limit_cgroups: list[Path] = []
        self.stopping = False
        self.destroyed = False

    # ------------------------------------------------------------------ state file record
    def record(self) -> None:
        self.backend.state.set_machine(self.sid, {
            "name": self.name, "netns": self.netns, "dir": str(self.dir), "root": str(self.root),
            "nspawn_pid": self.pid, "cgroups": [str(c) for c in cgroup_dirs(self.name) + self.limit_cgroups],
            "links": [self.pub_if] + [h for _, h, _ in self.networks.values()],
        })

    # ------------------------------------------------------------------ disk
    def build_layer(self, lower: Path, keep_disk: bool = False, disk_image: Path | None = None) -> None:
        """Mount the machine's disk: a new one (identity, host keys, cloud-init seed; with disk_image
        a copy of that snapshot's disk), or with keep_disk the one a previous run left (it boots
        again as it was)."""
        spec = self.spec
        upper, work = self.disk / "upper", self.disk / "work"
        reuse = keep_disk and upper.is_dir() and (self.disk / "lower").exists()
        if reuse:
            lower = self._recorded_lower(self.disk, lower)
        else:
            self.wipe_disk()
            if disk_image is not None:
                self.disk.mkdir(parents=True, exist_ok=True)
                copy_tree(disk_image / "upper", upper)
                lower = self._recorded_lower(disk_image, lower)
        self.lower = lower
        self.generation += 1
        for d in (upper, work, self.root, self.dev_disk):
            d.mkdir(parents=True, exist_ok=True)
        self.record()
        run(["mount", "-t", "overlay", "overlay", "-o",
             f"lowerdir={lower},upperdir={upper},workdir={work}", self.root])
        r = self.root
        # the proxy's port may change from one run to the next
        write_file(r / "etc/apt/apt.conf.d/01localcloud-proxy", apt_client_conf(self.backend.net.proxy_url))
        install_guest_unit(r)
        sizes.install_guest_unit(r)
        if reuse:
            return
        write_file(r / "etc/machine-id", uuid.uuid4().hex + "\n", 0o444)
        write_file(r / "etc/hostname", spec.name + "\n")
        write_file(r / "etc/hosts", "127.0.0.1 localhost\n"
                   f"127.0.1.1 {spec.name}\n"
                   "::1 localhost ip6-localhost ip6-loopback\n"
                   "ff02::1 ip6-allnodes\nff02::2 ip6-allrouters\n"
                   f"{self.backend.net.host_ip} localcloud-gateway\n")
        # fresh host keys from the pool (cloud-init keeps them and creates any missing type)
        self.backend.hostkeys.install(r / "etc/ssh", spec.name)
        write_file(r / "etc/cloud/cloud.cfg.d/98_localcloud_machine.cfg",
                   "# host keys were made for this machine by the local cloud\n"
                   "ssh_deletekeys: false\n"
                   "# a container has no boot loader (saves a debconf run on first boot)\n"
                   "grub_dpkg: {enabled: false}\n")
        if separate_local_stage(lower):
            # cloud-init 22.x (bookworm) starts python once per stage; the NoCloud seed is found
            # just as well by the network stage, which saves ~0.3 s of CPU on the way to sshd
            # (measured 0.93 -> 0.66 s). cloud-init 24+ (trixie) runs all stages in one process.
            link = r / "etc/systemd/system/cloud-init-local.service"
            if not link.is_symlink():
                link.symlink_to("/dev/null")
        seed = r / SEED_DIR
        meta = {"instance-id": f"lc-{self.sid}-{uuid.uuid4().hex[:8]}",
                "local-hostname": spec.name, "public-keys": list(spec.ssh_keys)}
        write_file(seed / "meta-data", json.dumps(meta, indent=1) + "\n", 0o600)
        write_file(seed / "user-data", spec.user_data or "", 0o600)
        write_file(seed / "vendor-data", vendor_data(spec.root_password), 0o600)
        # written last: a disk without it (its creation was cut short) is made anew at the next restore
        write_file(self.disk / "lower", f"{lower}\n")

    def _recorded_lower(self, disk: Path, lower: Path) -> Path:
        """The base a disk (or a disk's copy) was made on, when it is still there."""
        recorded = Path((disk / "lower").read_text().strip())
        if recorded.is_dir():
            return recorded
        if recorded != lower:
            log.warning("server %s: its disk was made on base %s, which is gone; it goes on over %s",
                        self.sid, recorded, lower)
        return lower

    def copy_disk(self, dest: Path) -> None:
        """Copy this machine's disk (upper layer and the base it lies on) to dest (an image)."""
        if not (self.disk / "lower").exists():
            raise BackendError(f"server {self.sid} has no disk to copy")
        safe_rmtree(dest)
        partial = dest.with_name(dest.name + ".partial")
        safe_rmtree(partial)
        partial.mkdir(parents=True)
        copy_tree(self.disk / "upper", partial / "upper")
        shutil.copy(self.disk / "lower", partial / "lower")
        partial.rename(dest)

    def unmount_layer(self) -> None:
        if os.path.ismount(self.root):
            run(["umount", self.root], check=False)
            if os.path.ismount(self.root):
                run(["umount", "-l", self.root], check=False)

    def wipe_disk(self) -> None:
        for d in ("upper", "work"):
            shutil.rmtree(self.disk / d, ignore_errors=True)
        (self.disk / "lower").unlink(missing_ok=True)

    # ------------------------------------------------------------------ volumes
    def inside(self, *argv, check: bool = True) -> str:
        """A command in the machine's mount namespace (its files, its mounts), as root."""
        init = None
        for _ in range(100):
            init = self.init_pid()
            if init or not self.running():
                break
            time.sleep(0.05)
        if not init:
            raise BackendError(f"server {self.sid} is not running")
        return run(["nsenter", "-t", init, "-m", "--", *argv], check=check)

    def plug(self, volume_id: int, loop: str, automount: bool) -> None:
        """Attach a volume's loop device: /dev/sdX and its /dev/disk links, live if the machine runs."""
        with self.lock:
            used = {v["name"] for v in self.volumes.values()}
            name = next((n for n in DEVICE_NAMES if n not in used), None)
            if name is None:
                raise BackendError(f"server {self.sid} has {len(used)} volumes attached, the most a server takes")
            self.volumes[volume_id] = {"loop": loop, "name": name, "automount": automount}
            self._links(volume_id)
            if self.running():
                major, minor = device_numbers(loop)
                self.inside("sh", "-c", f"rm -f /dev/{name} && mknod /dev/{name} b {major} {minor} && chmod 0660 /dev/{name} "
                                        f"&& chgrp disk /dev/{name}")
                self._automount_pending()

    def unplug(self, volume_id: int) -> str | None:
        """Detach a volume (its filesystems in the machine are unmounted first); returns its loop device."""
        with self.lock:
            vol = self.volumes.pop(volume_id, None)
            if vol is None:
                return None
            name = vol["name"]
            if self.running():
                major, minor = device_numbers(vol["loop"])
                for target in self._mounts_of(major, minor):
                    self.inside("umount", target, check=False)
                    if self._mounted(target):          # busy: detached now, released when unused
                        self.inside("umount", "-l", target, check=False)
                self.inside("sh", "-c", f"umount /dev/{name} 2>/dev/null; rm -f /dev/{name}", check=False)
            for link in list(self.dev_disk.glob("by-*/*")):
                if os.readlink(link) == f"../../{name}":
                    link.unlink()
            return vol["loop"]

    def _links(self, volume_id: int) -> None:
        vol = self.volumes[volume_id]
        links = {by_id(volume_id): vol["name"]}
        _, uuid = VolumeFiles.filesystem(vol["loop"])
        if uuid:
            links[f"/dev/disk/by-uuid/{uuid}"] = vol["name"]
        for path, name in links.items():
            link = self.dev_disk / path[len("/dev/disk/"):]
            link.parent.mkdir(parents=True, exist_ok=True)
            link.unlink(missing_ok=True)
            link.symlink_to(f"../../{name}")

    def _automount_pending(self) -> None:
        """What hc-utils' udev rule does on Hetzner when the API asked for automount: only a volume
        that holds a filesystem is mounted, at /mnt/HC_Volume_<id>, with its line in /etc/fstab."""
        for volume_id, vol in self.volumes.items():
            if not vol["automount"]:
                continue
            vol["automount"] = False
            fstype, _ = VolumeFiles.filesystem(vol["loop"])
            if not fstype:
                log.info("server %s: volume %s holds no filesystem: not mounted", self.sid, volume_id)
                continue
            (self.root / mount_point(volume_id).lstrip("/")).mkdir(parents=True, exist_ok=True)
            fstab = self.root / "etc/fstab"
            text = fstab.read_text() if fstab.exists() else ""
            if by_id(volume_id) not in text:
                write_file(fstab, text + ("" if not text or text.endswith("\n") else "\n")
                           + fstab_line(volume_id, fstype))
            if not self._mounted(mount_point(volume_id)):
                self.inside("mount", mount_point(volume_id))

    def _mountinfo(self) -> list[list[str]]:
        init = self.init_pid()
        try:
            return [line.split() for line in Path(f"/proc/{init}/mountinfo").read_text().splitlines()]
        except (OSError, TypeError):
            return []

    def _mounts_of(self, major: int, minor: int) -> list[str]:
        found = [f[4] for f in self._mountinfo() if f[2] == f"{major}:{minor}"]
        return sorted(found, key=len, reverse=True)

    def _mounted(self, target: str) -> bool:
        return any(f[4] == target for f in self._mountinfo())

    # ------------------------------------------------------------------ network
    def build_netns(self) -> None:
        if not os.path.exists(f"/run/netns/{self.netns}"):
            run(["ip", "netns", "add", self.netns])
        run(["ip", "-n", self.netns, "link", "set", "lo", "up"])
        if self.spec.public_ipv4:
            net = self.backend.net
            HostNetwork.add_veth(self.netns, self.pub_if, "eth0", net.bridge,
                                 f"{self.spec.public_ipv4}/{net.public_net.prefixlen}", mac=public_mac(self.sid))
        for att in self.spec.networks:
            self.attach(att)

    def set_public(self, ip: str | None) -> None:
        """A primary IPv4 assigned or unassigned (the server is off): eth0 with the new address, or none."""
        with self.lock:
            self.spec = dataclasses.replace(self.spec, public_ipv4=ip)
            HostNetwork.del_link(self.pub_if)
            if ip:
                net = self.backend.net
                HostNetwork.add_veth(self.netns, self.pub_if, "eth0", net.bridge, f"{ip}/{net.public_net.prefixlen}",
                                     mac=public_mac(self.sid))

    def attach(self, att: NetworkAttachment) -> None:
        with self.lock:
            if att.network_id in self.networks:
                self.detach(att.network_id)
            br = self.backend.net.ensure_network(att.network_id, att.ip_range, att.gateway)
            used = {inner for _, _, inner in self.networks.values()}
            # named like the private NICs of Hetzner's current server types (enp7s0, enp8s0, ...)
            k = next(i for i in range(1, 100) if private_ifname(i) not in used)
            inner = private_ifname(k)
            host_if = self.backend.slot.link("", str(self.sid), f"n{k}")
            self.networks[att.network_id] = (att, host_if, inner)
            self.record()
            # as Hetzner's DHCP configures it: the IP as a /32, the range via the gateway
            HostNetwork.add_veth(self.netns, host_if, inner, br, f"{att.ip}/32", mtu=PRIVATE_MTU, mac=att.mac)
            HostNetwork.add_private_routes(self.netns, inner, att.ip_range, att.gateway)

    def detach(self, network_id: int) -> None:
        with self.lock:
            entry = self.networks.pop(network_id, None)
            if entry:
                HostNetwork.del_link(entry[1])
                self.record()
                self.backend.net.drop_network_if_unused(network_id)

    # ------------------------------------------------------------------ power
    def running(self) -> bool:
        if self.proc is not None:
            return self.proc.poll() is None
        return pid_alive(self.pid)

    def start(self) -> None:
        if self.running():
            return
        for cg in cgroup_dirs(self.name):
            rm_cgroup(cg)
            cg.mkdir(parents=True, exist_ok=True)
        for cg in self.limit_cgroups:
            rm_cgroup(cg)
        # the server type's CPUs and memory: limits the machine's processes live in
        self.limit_cgroups = sizes.prepare(self.name, self.sid, self.spec.cores, self.spec.memory_gb)
        for parent in sizes.parents(self.limit_cgroups):
            self.backend.state.add("cgroup_parents", parent)
        shutil.rmtree(f"/run/systemd/nspawn/propagate/{self.name}", ignore_errors=True)
        join = "; ".join(f"echo $$ > {cg}/cgroup.procs" for cg in cgroup_dirs(self.name) + self.limit_cgroups)
        for volume_id in self.volumes:
            self._links(volume_id)          # a filesystem made since the last boot gets its by-uuid link
        nspawn = ["systemd-nspawn", "--register=no", "--keep-unit", "--quiet",
                  "-D", str(self.root), "-M", self.name,
                  f"--network-namespace-path=/run/netns/{self.netns}",
                  "--resolv-conf=off", "--link-journal=no", "--timezone=off",
                  "--console=passive",
                  # CAP_NET_ADMIN: nftables, fail2ban, ip link; CAP_SYS_RESOURCE: resize2fs online
                  "--capability=CAP_NET_ADMIN,CAP_SYS_RESOURCE",
                  f"--bind={self.dev_disk}:/dev/disk", *self.backend.lxcfs.binds(),
                  *(f"--bind={v['loop']}:/dev/{v['name']}" for v in self.volumes.values()), "-b"]
        env = dict(os.environ, SYSTEMD_NSPAWN_API_VFS_WRITABLE="network",
                   PATH="/usr/sbin:/usr/bin:/sbin:/bin")
        with open(self.console, "ab") as out:
            out.write(f"\n=== localcloud: boot at {time.strftime('%F %T')} ===\n".encode())
            out.flush()
            self.proc = subprocess.Popen(["sh", "-c", f'{join}; exec "$@"', "sh", *nspawn],
                                         stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=subprocess.STDOUT, env=env,
                                         start_new_session=True)
        self.pid = self.proc.pid
        self.record()
        threading.Thread(target=self._watch, args=(self.proc,), daemon=True,
                         name=f"watch-{self.sid}").start()

    def _watch(self, proc: subprocess.Popen) -> None:
        """A reboot from inside (systemctl reboot, Ansible's reboot module, cloud-init power_state)
        makes systemd-nspawn exit with 133; a Hetzner server comes back up, so this one does too."""
        code = proc.wait()
        if code != 133 or self.stopping or self.destroyed:
            return
        with self.lock:
            if self.proc is not proc or self.stopping or self.destroyed:
                return
            log.info("server %s rebooted from inside: starting it again", self.sid)
            try:
                self._reap()
                self.start()
            except Exception as exc:  # noqa: BLE001 - the machine just stays off
                log.warning("server %s: restart after reboot failed: %s", self.sid, exc)

    def boot(self, timeout: float) -> None:
        """Start, wait for the boot, then mount the volumes the API asked to automount."""
        self.start()
        self.wait_booted(timeout)
        self._automount_pending()

    def wait_booted(self, timeout: float) -> None:
        """Until sshd answers on the public IP (or, without one, multi-user.target is reached)."""
        deadline = time.monotonic() + timeout
        ip = self.spec.public_ipv4
        while time.monotonic() < deadline:
            if not self.running():
                code = self.proc.returncode if self.proc else None
                raise BackendError(f"server {self.sid}: the machine stopped during boot "
                                   f"(systemd-nspawn exit {code}); console:\n{self.console_tail()}")
            if ip:
                if ssh_banner(ip):
                    return
                time.sleep(0.05)
            else:
                init = self.init_pid()
                if init and run(["nsenter", "-t", init, "-m", "-p", "systemctl", "is-active",
                                 "multi-user.target"], check=False).strip() == "active":
                    return
                time.sleep(0.3)
        raise BackendError(f"server {self.sid}: the machine did not finish booting within "
                           f"{timeout:.0f} s; console:\n{self.console_tail()}")

    def console_tail(self, n: int = 25) -> str:
        try:
            return "\n".join(self.console.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no console log)"

    def init_pid(self) -> int | None:
        if not self.pid:
            return None
        kids = children(self.pid)
        return kids[0] if kids else None

    def stop(self, graceful: bool, timeout: float = 30.0) -> None:
        self.stopping = True
        try:
            self._stop(graceful, timeout)
        finally:
            self.stopping = False

    def _stop(self, graceful: bool, timeout: float) -> None:
        if not self.running():
            self._reap()
            return
        if graceful:
            # nspawn turns SIGTERM into SIGRTMIN+3 for the container's systemd: orderly poweroff
            self._signal(self.pid, signal.SIGTERM)
            if self._wait_exit(timeout):
                self._reap()
                return
            log.warning("server %s did not shut down in %.0fs; killing it", self.sid, timeout)
        init = self.init_pid()
        if init:
            self._signal(init, signal.SIGKILL)         # ends the machine's whole pid namespace
        if not self._wait_exit(10):
            self._signal(self.pid, signal.SIGKILL)
            self._wait_exit(5)
        self._reap()

    def _signal(self, pid, sig) -> None:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, TypeError):
            pass

    def _wait_exit(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running():
                return True
            time.sleep(0.05)
        return not self.running()

    def _reap(self) -> None:
        if self.proc is not None:
            try:
                self.proc.wait(timeout=1)
            except subprocess.TimeoutExpired:
                pass
        shutil.rmtree(f"/run/systemd/nspawn/propagate/{self.name}", ignore_errors=True)
        for cg in cgroup_dirs(self.name) + self.limit_cgroups:
            rm_cgroup(cg)
        self.proc = None
        self.pid = None
        self.record()

    # ------------------------------------------------------------------ the end
    def destroy(self, keep_disk: bool = False) -> None:
        """Remove the machine from the host; its disk goes too unless keep_disk (serve exits)."""
        self.destroyed = True
        self.stop(graceful=False)
        for volume_id in list(self.volumes):
            loop = self.unplug(volume_id)
            if loop:
                self.backend.vols.detach_loop(loop)
        self.unmount_layer()
        if os.path.exists(f"/run/netns/{self.netns}"):
            run(["ip", "netns", "del", self.netns], check=False)
        for _, host_if, _ in self.networks.values():
            HostNetwork.del_link(host_if)
        HostNetwork.del_link(self.pub_if)
        nets = list(self.networks)
        self.networks.clear()
        for nid in nets:
            self.backend.net.drop_network_if_unused(nid)
        safe_rmtree(self.dir)
        if not keep_disk:
            safe_rmtree(self.disk)
        self.backend.state.set_machine(self.sid, None)


def ssh_banner(ip: str, timeout: float = 0.3) -> bool:
    try:
        with socket.create_connection((ip, 22), timeout=timeout) as s:
            s.settimeout(timeout)
            if s.recv(4) != b"SSH-":
                return False
            # identify and leave politely, so sshd logs no "kex_exchange_identification" error
            s.sendall(b"SSH-2.0-localcloud-boot-probe\r\n")
            return True
    except OSError:
        return False


def teardown_machine(info: dict) -> None:
    """Remove one machine from its state-file record (for `down` after a kill -9)."""
    pid = info.get("nspawn_pid")
    root = info.get("root", "")
    if pid and pid_matches(pid, "systemd-nspawn", root):
        kids = children(pid)
        for p in kids:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for _ in range(200):
            if not pid_alive(pid):
                break
            time.sleep(0.05)
        if pid_matches(pid, "systemd-nspawn", root):
            os.kill(pid, signal.SIGKILL)
            time.sleep(0.2)
    if root and os.path.ismount(root):
        run(["umount", root], check=False)
        if os.path.ismount(root):
            run(["umount", "-l", root], check=False)
    netns = info.get("netns")
    if netns and os.path.exists(f"/run/netns/{netns}"):
        run(["ip", "netns", "del", netns], check=False)
    for link in info.get("links", []):
        HostNetwork.del_link(link)
    for cg in info.get("cgroups", []):
        rm_cgroup(Path(cg))
    if info.get("name"):
        shutil.rmtree(f"/run/systemd/nspawn/propagate/{info['name']}", ignore_errors=True)
    if info.get("dir"):
        safe_rmtree(info["dir"])
