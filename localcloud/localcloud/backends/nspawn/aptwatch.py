"""A watchdog for apt's http method inside the machines.

Twice in CI (2026-12-02 and 2026-12-03, cold caches, a role lab's machines updating their package lists
at once) a machine's apt hung until the run's time was up: its http method sat idle, waiting for work on
its stdin, while its connection to the apt proxy had been closed by the proxy (CLOSE-WAIT), and apt
waited for an answer about an item the method no longer knew of. The cause is not known
(docs/machines.md, "apt inside the machines"). Ending the method ends the wait: apt fails the fetch at once
("Method http has died unexpectedly!", apt-get exits 100; python-apt raises FetchFailedException, checked
on this host with Debian 12's apt), and Ansible's apt module updates the cache again on that exception
(update_cache_retries, 5 by default), so the role goes on instead of sitting out CI's time.

So the backend looks every few seconds for an http method in one of *its* machines (by network
namespace) that holds a connection to the apt proxy which the proxy has closed, and ends it once that
has lasted `after` seconds (LOCALCLOUD_APT_WATCHDOG, default 120; 0 turns the watchdog off). A method
at work reads the proxy's close at once and connects again; one that merely idles between two fetches
of a run does so for a second or two; 120 s of it is the hang. Every ending is logged as a warning.
"""
from __future__ import annotations

import os
import signal
import socket
import struct
import threading
import time
from typing import Callable, Iterable

from .host import log

METHOD = "/usr/lib/apt/methods/http"
TCP_CLOSE_WAIT = 0x08
DEFAULT_AFTER = 120.0


def after_from_env() -> float:
    raw = os.environ.get("LOCALCLOUD_APT_WATCHDOG", "")
    try:
        return float(raw) if raw.strip() else DEFAULT_AFTER
    except ValueError:
        log.warning("LOCALCLOUD_APT_WATCHDOG=%r is not a number of seconds: using %s", raw, DEFAULT_AFTER)
        return DEFAULT_AFTER


def _hex_endpoint(field: str) -> tuple[str, int]:
    """'0100A8C6:0C46' of /proc/net/tcp (the address in host byte order) -> ('198.168.0.1', 3142)."""
    addr, port = field.split(":")
    return socket.inet_ntoa(struct.pack("=I", int(addr, 16))), int(port, 16)


def half_closed_sockets(tcp_table: str, peer: tuple[str, int]) -> set[int]:
    """Inodes of the sockets in a /proc/<pid>/net/tcp text whose peer closed its side (CLOSE-WAIT)
    and that are connected to `peer`."""
    found = set()
    for line in tcp_table.splitlines()[1:]:
        cols = line.split()
        if len(cols) < 10 or int(cols[3], 16) != TCP_CLOSE_WAIT:
            continue
        if _hex_endpoint(cols[2]) == peer:
            found.add(int(cols[9]))
    return found


def _socket_inodes(pid: int) -> set[int]:
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


def _http_methods() -> Iterable[int]:
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/comm") as f:
                if f.read().strip() != "http":
                    continue
            # the path as the machine sees it: the link is read in the process's own mount namespace
            if os.readlink(f"/proc/{entry.name}/exe") == METHOD:
                yield int(entry.name)
        except OSError:                     # gone meanwhile, or a kernel thread
            continue


class AptMethodWatchdog:
    """Ends apt http methods stuck on a connection the apt proxy closed (see the module's docstring).

    machines() gives {network namespace name: a label for the log} of the backend's machines, proxy() the
    (address, port) of their apt proxy; both are asked on every look, as machines come and go."""

    def __init__(self, machines: Callable[[], dict[str, str]], proxy: Callable[[], tuple[str, int]],
                 after: float | None = None, every: float = 5.0):
        self.machines = machines
        self.proxy = proxy
        self.after = after_from_env() if after is None else after
        self.every = every
        self.ended: list[tuple[int, str]] = []          # (pid, machine) of every method ended
        self._since: dict[tuple[int, int], float] = {}  # (pid, socket inode) -> first seen half-closed
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None and self.after > 0:
            self._thread = threading.Thread(target=self._run, name="apt-watchdog", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            try:
                self.look()
            except Exception as exc:  # noqa: BLE001 - a watchdog that dies helps nobody
                log.warning("apt watchdog: %s", exc)

    def _namespaces(self) -> dict[int, str]:
        """{inode of a machine's network namespace: machine name}."""
        found = {}
        for netns, name in self.machines().items():
            try:
                found[os.stat(f"/run/netns/{netns}").st_ino] = name
            except OSError:
                continue
        return found

    def look(self, now: float | None = None) -> list[tuple[int, str]]:
        """One look at the machines' http methods; returns the (pid, machine) of those ended now."""
        now = time.monotonic() if now is None else now
        if self.after <= 0:
            return []
        namespaces = self._namespaces()
        peer = self.proxy()
        seen: dict[tuple[int, int], float] = {}
        ended = []
        for pid in _http_methods() if namespaces else ():
            try:
                machine = namespaces.get(os.stat(f"/proc/{pid}/ns/net").st_ino)
                if machine is None:
                    continue                # the host's own apt, or another local cloud's machine
                with open(f"/proc/{pid}/net/tcp") as f:
                    stuck = half_closed_sockets(f.read(), peer) & _socket_inodes(pid)
            except OSError:
                continue
            for inode in stuck:
                since = seen[(pid, inode)] = self._since.get((pid, inode), now)
                if now - since >= self.after and (pid, machine) not in ended:
                    try:
                        os.kill(pid, signal.SIGTERM)
                    except OSError:
                        continue
                    ended.append((pid, machine))
                    log.warning("apt watchdog: ended apt's http method (pid %s) on %s: its connection to the "
                                "apt proxy %s:%s was closed by the proxy %.0f s ago and apt waited on it (a hang "
                                "seen in CI, cause unknown: docs/machines.md); apt fails that fetch, Ansible's apt module "
                                "updates the cache again",
                                pid, machine, *peer, now - since)
        self._since = seen
        self.ended += ended
        return ended
