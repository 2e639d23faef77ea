"""`localcloud serve --machines nspawn`: every server is a real systemd-nspawn machine.

See docs/machines.md. Layout on the host:
  $LOCALCLOUD_IMAGE_CACHE (/var/cache/localcloud/images)/<suite>-<recipe>  base images (kept)
  $LOCALCLOUD_APT_CACHE (/var/cache/localcloud/apt-cacher-ng)             apt proxy cache (kept)
  <state_dir>/machines/state.json      everything created on the host (for `down` after kill -9)
  <state_dir>/machines/<id>/           upper/work/root (overlayfs) and console.log per server
  <state_dir>/machines/acng/           apt-cacher-ng config, pid and socket of this run
"""
from __future__ import annotations

import os
import shutil
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from ..base import MachineBackend, NetworkAttachment, ServerSpec, resolved
from . import firewall, images
from .host import (BackendError, HostLock, StateFile, ensure_host_packages, log,
                   require_root_linux, run, safe_rmtree)
from .hostkeys import HostKeyPool
from .machine import Machine, teardown_machine
from .network import FW_TABLE, HostNetwork, teardown_host

__all__ = ["NspawnBackend", "BackendError"]

POWER_OPS = ("poweron", "poweroff", "shutdown", "reboot", "reset")


class NspawnBackend(MachineBackend):
    name = "nspawn"

    def __init__(self, boot_timeout: float | None = None, workers: int = 16, lock_wait: float = 0):
        self.lock_wait = lock_wait
        self.boot_timeout = boot_timeout or float(os.environ.get("LOCALCLOUD_BOOT_TIMEOUT", 240))
        self.workers = workers
        self.machines: dict[int, Machine] = {}
        self.firewalls: dict[int, list[dict]] = {}
        self.lock = threading.RLock()
        self.host_lock = HostLock()
        self.pool: ThreadPoolExecutor | None = None
        self.state: StateFile | None = None
        self.net: HostNetwork | None = None
        self.state_dir: Path | None = None
        self._ready_lock = threading.Lock()
        self._host_ready = False

    # ================================================================ lifecycle
    def open(self, state_dir: Path) -> None:
        """Cheap: checks, the host lock, and cleaning up after a previous run that was killed.
        Packages, bridge, proxy and base images come on first use (or from warm_up())."""
        require_root_linux()
        self.state_dir = Path(state_dir).resolve()
        base = self.state_dir / "machines"
        base.mkdir(parents=True, exist_ok=True)
        self.host_lock.acquire(self.state_dir, self.lock_wait)
        try:
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
            safe_rmtree(base)
            base.mkdir(parents=True)
            self.state = StateFile(base / "state.json")
            self.state.save()
            self.net = HostNetwork(self.state, base)
            self.hostkeys = HostKeyPool(base / "hostkeys")
            self.pool = ThreadPoolExecutor(self.workers, thread_name_prefix="nspawn")
        except BaseException:
            self.host_lock.release()
            raise

    def warm_up(self, image_names=("debian-12",)) -> Future:
        """Optional: prepare host packages, bridge, proxy and base images in the background."""
        return self._submit(lambda: [self._ensure(images.SUITES[n]) for n in image_names])

    def close(self) -> None:
        if self.state is None:
            return
        self.hostkeys.close()
        if self.pool:
            self.pool.shutdown(wait=True, cancel_futures=True)
        with self.lock:
            machines = list(self.machines.values())
            self.machines.clear()
        with ThreadPoolExecutor(max(1, len(machines))) as ex:
            list(ex.map(lambda m: self._quiet(m.destroy), machines))
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
                self._host_ready = True
                self._apply_firewalls()
            else:
                self.net.check_proxy()
        if suite:
            return images.ensure_image(suite, self.net.proxy_url)
        return None

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
        # Copying a machine's disk into an image waits for the persistent machine disks (issue 8).
        return ("snapshots and backups are not available with --machines nspawn yet: the machines' disks "
                "cannot be copied into an image; run the local cloud without machines to use images")

    def create_server(self, spec: ServerSpec) -> Future:
        suite = self._suite(spec.image)
        with self.lock:
            if spec.server_id in self.machines:
                raise BackendError(f"server {spec.server_id} already has a machine")
            m = Machine(self, spec)
            self.machines[spec.server_id] = m

        def work():
            with m.lock:
                lower = self._ensure(suite)
                m.build_layer(lower)
                m.build_netns()
                self._apply_firewalls()
                if spec.start:
                    m.start()
                    try:
                        m.wait_booted(self.boot_timeout)
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
                    m.start()
                    m.wait_booted(self.boot_timeout)
        return self._submit(work)

    def rebuild(self, spec: ServerSpec) -> Future:
        suite = self._suite(spec.image)
        m = self._machine(spec.server_id)

        def work():
            with m.lock:
                m.stop(graceful=False)
                m.drop_layer()
                m.spec = spec
                m.build_layer(self._ensure(suite))
                if spec.start:
                    m.start()
                    m.wait_booted(self.boot_timeout)
        return self._submit(work)

    def delete_server(self, server_id: int) -> Future:
        with self.lock:
            m = self.machines.pop(server_id, None)
            self.firewalls.pop(server_id, None)
        if m is None:
            return resolved()

        def work():
            with m.lock:
                m.destroy()
                self._apply_firewalls()
        return self._submit(work)

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
                    servers[sid] = (m.spec.public_ipv4, rules)
            self.state.add("nft_tables", f"inet {FW_TABLE}")
            run(["nft", "-f", "-"], input=firewall.render(servers))

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

    def machine_status(self, server_id: int) -> str | None:
        m = self.machines.get(server_id)
        if m is None:
            return None
        return "running" if m.running() else "off"
