"""`localcloud serve --machines nspawn`: every server is a real systemd-nspawn machine.

See docs/machines.md. Layout on the host:
  $LOCALCLOUD_IMAGE_CACHE (/var/cache/localcloud/images)/<suite>-<recipe>  base images (kept)
  $LOCALCLOUD_APT_CACHE (/var/cache/localcloud/apt-cacher-ng)             apt proxy cache (kept)
  <state_dir>/machines/state.json      everything created on the host (for `down` after kill -9)
  <state_dir>/machines/<id>/           root (overlayfs mount point), console.log, dev-disk per server
  <state_dir>/disks/<id>/              upper/work of each server's overlay: its disk, kept across
                                       serve restarts, kill -9 and `down`; rebuild and delete wipe it
  <state_dir>/volumes/HC_Volume_<id>.img  each volume's sparse backing file (kept until volume delete)
  <state_dir>/images/<id>/             a snapshot's or backup's copy of its server's disk (upper, lower)
"""
from __future__ import annotations

import dataclasses
import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from ..base import LoadBalancerSpec, MachineBackend, NetworkAttachment, ServerSpec, VolumeSpec, resolved
from . import firewall, images
from .aptwatch import AptMethodWatchdog
from .host import (BackendError, HostLock, StateFile, ensure_host_packages, log, raise_inotify_limits,
                   require_root_linux, run, safe_rmtree)
from .hostkeys import HostKeyPool
from .loadbalancer import LoadBalancer, teardown_load_balancers
from .machine import Machine, teardown_machine
from .network import HostNetwork, render_floating_ips, teardown_host
from .sizes import Lxcfs, teardown_lxcfs
from .slots import SLOTS, Slot, record_slot, recorded_slot
from .volumes import VolumeFiles, teardown_loops

__all__ = ["NspawnBackend", "BackendError"]

POWER_OPS = ("poweron", "poweroff", "shutdown", "reboot", "reset")


class NspawnBackend(MachineBackend):
    name = "nspawn"

    def __init__(self, boot_timeout: float | None = None, workers: int = 16, lock_wait: float = 0,
                 slot: int | str = 0):
        self.lock_wait = lock_wait
        self.wanted_slot = slot                 # a number, or "auto": the first free one
        self.slot = Slot(slot if isinstance(slot, int) else 0)
        self.boot_timeout = boot_timeout or float(os.environ.get("LOCALCLOUD_BOOT_TIMEOUT", 240))
        self.workers = workers
        self.machines: dict[int, Machine] = {}
        self.lbs: dict[int, LoadBalancer] = {}
        self.firewalls: dict[int, list[dict]] = {}
        self.fips: dict[str, int | None] = {}             # floating IPv4 -> server it is routed to
        self.lock = threading.RLock()
        self.host_lock = HostLock()
        self.pool: ThreadPoolExecutor | None = None
        self.state: StateFile | None = None
        self.net: HostNetwork | None = None
        self.state_dir: Path | None = None
        self._ready_lock = threading.Lock()
        self._host_ready = False
        self.apt_watchdog = AptMethodWatchdog(self._machine_namespaces, self._apt_proxy)

    # ================================================================ lifecycle
    def open(self, state_dir: Path) -> None:
        """Cheap: checks, the host lock, and cleaning up after a previous run that was killed.
        Packages, bridge, proxy and base images come on first use (or from warm_up())."""
        require_root_linux()
        raise_inotify_limits()          # the machines' services count against root's host-wide limits
        self.state_dir = Path(state_dir).resolve()
        base = self.state_dir / "machines"
        base.mkdir(parents=True, exist_ok=True)
        self.slot = Slot(self._choose_slot())
        self.host_lock.acquire(self.state_dir, self.lock_wait, self._candidates())
        self.slot = Slot(next(n for n in range(SLOTS) if Slot(n).lock_path == self.host_lock.path))
        try:
            record_slot(self.state_dir, self.slot.number)
            previous = {base}
            if self.host_lock.previous_state_dir:
                previous.add(Path(self.host_lock.previous_state_dir) / "machines")
            for prev in previous:
                data = StateFile.load(prev / "state.json")
                if data:
                    log.warning("cleaning up machines left by an earlier run (%s)", prev)
                    self._teardown(data)
                    (prev / "state.json").unlink(missing_ok=True)
            self.machines_dir = base
            self.disks_dir = self.state_dir / "disks"
            safe_rmtree(base)
            base.mkdir(parents=True)
            self.disks_dir.mkdir(exist_ok=True)
            self.images_dir = self.state_dir / "images"
            self.state = StateFile(base / "state.json")
            self.state.data["slot"] = self.slot.number
            self.state.save()
            self.net = HostNetwork(self.state, base, self.slot)
            self.hostkeys = HostKeyPool(base / "hostkeys")
            self.vols = VolumeFiles(self, self.state_dir / "volumes")
            self.lxcfs = Lxcfs(self.state, self.slot.run_dir("lxcfs"))
            self.pool = ThreadPoolExecutor(self.workers, thread_name_prefix="nspawn")
        except BaseException:
            self.host_lock.release()
            raise

    def _choose_slot(self) -> int:
        """The state dir's own slot (its machines' addresses are in that slot's range), else the one
        asked for; 'auto' is resolved when the lock is taken."""
        recorded = recorded_slot(self.state_dir)
        wanted = self.wanted_slot
        if recorded is not None:
            if wanted not in ("auto", recorded):
                raise BackendError(f"{self.state_dir} was made in slot {recorded} (its public addresses are in "
                                   f"{Slot(recorded).public_net}): serve it with --slot {recorded} or --slot auto")
            return recorded
        if wanted == "auto":
            return 0
        if not isinstance(wanted, int) or not 0 <= wanted < SLOTS:
            raise BackendError(f"slot {wanted!r} does not exist: use 0 to {SLOTS - 1} or auto")
        return wanted

    def _candidates(self) -> list[Path]:
        if self.wanted_slot == "auto" and recorded_slot(self.state_dir) is None:
            return [Slot(n).lock_path for n in range(SLOTS)]
        return [self.slot.lock_path]

    def public_ipv4_pool(self) -> tuple[str, str]:
        return str(self.slot.public_net), self.slot.first_ip

    def warm_up(self, image_names=("debian-12",)) -> Future:
        """Optional: prepare host packages, bridge, proxy and base images in the background."""
        return self._submit(lambda: [self._ensure(images.SUITES[n]) for n in image_names])

    def close(self) -> None:
        if self.state is None:
            return
        self.hostkeys.close()
        self.apt_watchdog.stop()
        if self.pool:
            self.pool.shutdown(wait=True, cancel_futures=True)
        with self.lock:
            machines = list(self.machines.values())
            self.machines.clear()
        with ThreadPoolExecutor(max(1, len(machines))) as ex:       # disks and volumes are kept
            list(ex.map(lambda m: self._quiet(lambda: m.destroy(keep_disk=True)), machines))
        for lb in list(self.lbs.values()):
            self._quiet(lb.destroy)
        self.lbs.clear()
        self._teardown(self.state.data)
        safe_rmtree(self.machines_dir)
        self.state = None
        self.host_lock.release()

    @staticmethod
    def cleanup(state_dir: Path) -> bool:
        """Remove whatever a (killed) nspawn local cloud with this state dir left on the host."""
        base = Path(state_dir) / "machines"
        data = StateFile.load(base / "state.json")
        if data:
            NspawnBackend._teardown(data)
        safe_rmtree(base)
        return bool(data)

    @staticmethod
    def _teardown(data: dict) -> None:
        infos = list(data.get("machines", {}).values())
        with ThreadPoolExecutor(max(1, len(infos))) as ex:
            list(ex.map(teardown_machine, infos))
        teardown_loops(data.get("loops"))
        teardown_load_balancers(data.get("load_balancers"))
        teardown_lxcfs(data.get("lxcfs"))
        teardown_host(data)

    @staticmethod
    def _quiet(fn):
        try:
            fn()
        except Exception as exc:  # noqa: BLE001 - cleanup goes on
            log.warning("cleanup: %s", exc)

    # ================================================================ helpers
    def _submit(self, fn) -> Future:
        if self.pool is None:
            raise BackendError("the nspawn backend is not open")
        return self.pool.submit(fn)

    def _ensure(self, suite: str | None = None) -> Path | None:
        with self._ready_lock:
            if not self._host_ready:
                ensure_host_packages()
                self.hostkeys.fill()
                self.net.ensure()
                self.lxcfs.ensure()
                self._host_ready = True
                self.apt_watchdog.start()
                self._apply_firewalls()
                self._apply_floating_ips()
            else:
                self.net.check_proxy()
        if suite:
            return images.ensure_image(suite, self.net.proxy_url)
        return None

    def _machine_namespaces(self) -> dict[str, str]:
        # not under self.lock, which long operations hold: a copy made while a machine comes or goes
        # raises, and the next try gets a settled dict
        for _ in range(5):
            try:
                return {m.netns: f"server {m.spec.name} (machine {m.name})" for m in list(self.machines.values())}
            except RuntimeError:
                continue
        return {}

    def _apt_proxy(self) -> tuple[str, int]:
        return self.net.host_ip, self.net.proxy_port

    def _machine(self, server_id: int) -> Machine:
        m = self.machines.get(server_id)
        if m is None:
            raise BackendError(f"server {server_id} has no machine in the local cloud")
        return m

    def _suite(self, image: str) -> str:
        msg = self.image_unavailable(image)
        if msg:
            raise BackendError(msg)
        return images.SUITES[image]

    # ================================================================ contract
    def image_unavailable(self, image_name: str) -> str | None:
        if image_name in images.SUITES:
            return None
        return (f"image {image_name!r} is not available in the local cloud "
                f"(--machines nspawn runs only {', '.join(sorted(images.SUITES))})")

    def disk_images_unavailable(self) -> str | None:
        return None

    def create_image(self, server_id: int, image_id: int) -> Future:
        """Copy the server's disk (its overlay's upper layer, over the base it was made on), as
        Hetzner does also while the server runs: what a running server has not written out yet is
        not in the copy (power it off first for a consistent one)."""
        m = self._machine(server_id)

        def work():
            with m.lock:
                m.copy_disk(self.images_dir / str(image_id))
        return self._submit(work)

    def delete_image(self, image_id: int) -> None:
        self._submit(lambda: safe_rmtree(self.images_dir / str(image_id)))

    def _disk_image(self, spec: ServerSpec) -> Path | None:
        """The copy a new disk of this server starts from (created or rebuilt from a snapshot)."""
        if spec.disk_image is None:
            return None
        copy = self.images_dir / str(spec.disk_image)
        if not (copy / "lower").exists():
            raise BackendError(f"image {spec.disk_image} has no copy of a machine's disk (it was made while "
                               "the local cloud ran without machines); create the snapshot again with --machines nspawn")
        return copy

    def create_server(self, spec: ServerSpec) -> Future:
        return self._create(spec, keep_disk=False)

    def restore_server(self, spec: ServerSpec) -> Future:
        return self._create(spec, keep_disk=True)

    def _create(self, spec: ServerSpec, keep_disk: bool) -> Future:
        suite = self._suite(spec.image)
        kept = keep_disk and (self.disks_dir / str(spec.server_id) / "lower").exists()
        disk_image = None if kept else self._disk_image(spec)      # a kept disk outlives its snapshot
        with self.lock:
            if spec.server_id in self.machines:
                raise BackendError(f"server {spec.server_id} already has a machine")
            m = Machine(self, spec)
            self.machines[spec.server_id] = m

        def work():
            with m.lock:
                lower = self._ensure(suite)
                m.build_layer(lower, keep_disk=keep_disk, disk_image=disk_image)
                m.build_netns()
                self._apply_firewalls()
                for volume_id in spec.volumes:
                    self._plug(m, volume_id, spec.automount)
                if spec.start:
                    try:
                        m.boot(self.boot_timeout)
                    except BackendError:
                        m.stop(graceful=False)
                        raise
        return self._submit(work)

    def power(self, server_id: int, op: str) -> Future:
        if op not in POWER_OPS:
            raise ValueError(f"unknown power op {op!r}")
        m = self._machine(server_id)

        def work():
            with m.lock:
                if op in ("poweroff", "reset"):
                    m.stop(graceful=False)
                elif op in ("shutdown", "reboot"):
                    m.stop(graceful=True)
                if op in ("poweron", "reboot", "reset"):
                    m.boot(self.boot_timeout)
        return self._submit(work)

    def rebuild(self, spec: ServerSpec) -> Future:
        suite = self._suite(spec.image)
        disk_image = self._disk_image(spec)
        m = self._machine(spec.server_id)

        def work():
            with m.lock:
                m.stop(graceful=False)
                m.unmount_layer()
                m.spec = spec
                m.build_layer(self._ensure(suite), disk_image=disk_image)    # a new disk (empty, or the image's)
                if spec.start:
                    m.boot(self.boot_timeout)
        return self._submit(work)

    def delete_server(self, server_id: int) -> Future:
        with self.lock:
            m = self.machines.pop(server_id, None)
            self.firewalls.pop(server_id, None)
        if m is None:
            disk = self.disks_dir / str(server_id)
            return self._submit(lambda: safe_rmtree(disk))

        def work():
            with m.lock:
                m.destroy()
                self._apply_firewalls()
        return self._submit(work)

    # ================================================================ volumes
    def create_volume(self, spec: VolumeSpec) -> Future:
        def work():
            self._ensure()
            self.vols.create(spec.volume_id, spec.size_gb, spec.format)
        return self._submit(work)

    def resize_volume(self, volume_id: int, size_gb: int) -> Future:
        return self._submit(lambda: self.vols.resize(volume_id, size_gb))

    def delete_volume(self, volume_id: int) -> Future:
        return self._submit(lambda: self.vols.delete(volume_id))

    def attach_volume(self, server_id: int, volume_id: int, automount: bool = False) -> Future:
        m = self._machine(server_id)

        def work():
            with m.lock:
                self._plug(m, volume_id, automount)
        return self._submit(work)

    def detach_volume(self, server_id: int, volume_id: int) -> Future:
        m = self.machines.get(server_id)
        if m is None:
            return resolved()

        def work():
            with m.lock:
                loop = m.unplug(volume_id)
                if loop:
                    self.vols.detach_loop(loop)
        return self._submit(work)

    def _plug(self, m: Machine, volume_id: int, automount: bool) -> None:
        if volume_id in m.volumes:
            return
        loop = self.vols.attach_loop(volume_id)
        try:
            m.plug(volume_id, loop, automount)
        except BaseException:
            m.unplug(volume_id)
            self.vols.detach_loop(loop)
            raise

    def attach_network(self, server_id: int, attachment: NetworkAttachment) -> Future:
        m = self._machine(server_id)

        def work():
            self._ensure()
            m.attach(attachment)
        return self._submit(work)

    def detach_network(self, server_id: int, network_id: int) -> Future:
        m = self._machine(server_id)
        return self._submit(lambda: m.detach(network_id))

    def set_firewall(self, server_id: int, rules: list[dict] | None) -> None:
        with self.lock:
            if rules is None:
                self.firewalls.pop(server_id, None)
            else:
                self.firewalls[server_id] = [dict(r) for r in rules]
            if self._host_ready:
                self._apply_firewalls()

    def _apply_firewalls(self) -> None:
        with self.lock:
            servers = {}
            for sid, rules in self.firewalls.items():
                m = self.machines.get(sid)
                if m and m.spec.public_ipv4:
                    # a server's firewall covers the floating IPs routed to it too
                    floating = tuple(ip for ip, owner in self.fips.items() if owner == sid)
                    servers[sid] = (m.spec.public_ipv4, rules, floating)
            table = self.slot.table("fw")
            self.state.add("nft_tables", f"inet {table}")
            run(["nft", "-f", "-"], input=firewall.render(servers, table, self.net.bridge))

    # ================================================================ public addresses
    def route_floating_ip(self, ip: str, server_id: int | None) -> Future:
        def work():
            with self.lock:
                moved = self.fips.get(ip, ...) != server_id
                self.fips[ip] = server_id
            if self._host_ready:
                self._apply_floating_ips(flush=[ip] if moved else [])
                self._apply_firewalls()
        return self._submit(work)

    def _apply_floating_ips(self, flush: list[str] = ()) -> None:
        """Host routes (fip/32 via the server's public IP) and the bridge filter that lets only the
        assigned machine answer ARP for a floating IP and receive traffic to it: the IP may be
        configured on several servers, it reaches the one it is assigned to (as on Hetzner)."""
        with self.lock:
            routes = {}
            for ip, sid in self.fips.items():
                m = self.machines.get(sid) if sid else None
                routes[ip] = (m.spec.public_ipv4, m.pub_if) if m and m.spec.public_ipv4 else None
            table = self.slot.table("fip")
            self.state.add("nft_tables", f"bridge {table}")
            run(["nft", "-f", "-"], input=render_floating_ips(routes, table))
            for ip, via in routes.items():
                if via:
                    self.state.add("routes_via", ip)
                    run(["ip", "route", "replace", f"{ip}/32", "via", via[0], "dev", self.net.bridge])
                else:
                    run(["ip", "route", "del", f"{ip}/32"], check=False)
                    self.state.remove("routes_via", ip)
            netns = [m.netns for m in self.machines.values()] + [lb.netns for lb in self.lbs.values()]
        for ip in flush:                    # clients re-resolve at once: the move takes effect now
            for ns in netns:
                run(["ip", "-n", ns, "neigh", "flush", "to", ip], check=False)

    def set_public_ipv4(self, server_id: int, ip: str | None) -> Future:
        m = self._machine(server_id)

        def work():
            with m.lock:
                m.set_public(ip)
            if self._host_ready:
                self._apply_firewalls()
                self._apply_floating_ips()
        return self._submit(work)

    def set_server_type(self, server_id: int, cores: int, memory_gb: float) -> Future:
        m = self._machine(server_id)

        def work():
            with m.lock:
                m.spec = dataclasses.replace(m.spec, cores=cores, memory_gb=memory_gb)
        return self._submit(work)

    def reset_password(self, server_id: int, password: str) -> Future:
        """Not in the base contract (yet): set root's password in the running machine, as Hetzner's
        reset_password does through its guest agent."""
        m = self._machine(server_id)

        def work():
            with m.lock:
                init = m.init_pid() if m.running() else None
                if not init:
                    raise BackendError(f"server {server_id} is off: its password can only be reset "
                                       "while it runs")
                run(["nsenter", "-t", init, "-m", "-u", "-i", "-n", "-p", "chpasswd"],
                    input=f"root:{password}\n")
        return self._submit(work)

    # ================================================================ load balancers
    def set_load_balancer(self, spec: LoadBalancerSpec) -> Future:
        with self.lock:
            lb = self.lbs.get(spec.lb_id)
            if lb is None:
                lb = self.lbs[spec.lb_id] = LoadBalancer(self, spec.lb_id)
        certificates = {s.listen_port: list(s.certificates) for s in spec.services if s.certificates}

        def work():
            self._ensure()
            with lb.lock:
                if self.lbs.get(spec.lb_id) is lb:          # not deleted meanwhile
                    lb.apply(spec, certificates)
        return self._submit(work)

    def delete_load_balancer(self, lb_id: int) -> Future:
        with self.lock:
            lb = self.lbs.pop(lb_id, None)
        return self._submit(lb.destroy) if lb else resolved()

    def load_balancer_health(self, lb_id: int) -> dict[int, dict[str, str]]:
        lb = self.lbs.get(lb_id)
        return lb.health() if lb else {}

    def machine_status(self, server_id: int) -> str | None:
        m = self.machines.get(server_id)
        if m is None:
            return None
        return "running" if m.running() else "off"
