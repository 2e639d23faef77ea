"""A small pool of fresh SSH host keys, generated ahead of time at low priority.

cloud-init would generate the host keys on first boot (RSA-3072 alone is ~0.4 s of CPU), which is
the largest single item on a machine's way to a working SSH login. Every machine still gets its
own, never reused keys: they are made on the host before they are needed and moved into the
machine's layer; cloud-init is told not to delete them (ssh_deletekeys: false) and still creates
any type that is missing."""
from __future__ import annotations

import os
import shutil
import threading
import uuid
from pathlib import Path

from .host import log, run

TYPES = (("rsa", ["-b", "3072"]), ("ecdsa", ["-b", "256"]), ("ed25519", []))


class HostKeyPool:
    def __init__(self, directory: Path, size: int = 8):
        self.dir = directory
        self.size = size
        self.lock = threading.Lock()
        self.filling = False
        self.closed = False
        self.thread: threading.Thread | None = None

    def _generate(self, nice: bool) -> Path:
        tmp = self.dir / f".new-{uuid.uuid4().hex}"
        tmp.mkdir(parents=True)
        prefix = ["nice", "-n", "15"] if nice else []
        for kind, extra in TYPES:
            run([*prefix, "ssh-keygen", "-q", "-t", kind, *extra, "-N", "", "-C", "root@localcloud",
                 "-f", tmp / f"ssh_host_{kind}_key"])
        final = self.dir / tmp.name[5:]
        os.rename(tmp, final)
        return final

    def _ready(self) -> list[Path]:
        try:
            return [p for p in self.dir.iterdir() if not p.name.startswith(".")]
        except FileNotFoundError:
            return []

    def fill(self) -> None:
        """Top the pool up in a background thread (no-op while one is running)."""
        with self.lock:
            if self.filling or self.closed:
                return
            self.filling = True

        def work():
            try:
                while not self.closed and len(self._ready()) < self.size:
                    self._generate(nice=True)
            except Exception as exc:  # noqa: BLE001 - the pool is only an optimisation
                log.warning("host key pool: %s", exc)
            finally:
                self.filling = False
        self.thread = threading.Thread(target=work, name="hostkeys", daemon=True)
        self.thread.start()

    def install(self, etc_ssh: Path, hostname: str) -> None:
        """Move one key set into a machine's /etc/ssh (generating it now if the pool is empty)."""
        with self.lock:
            ready = self._ready()
            chosen = ready[0] if ready else None
            if chosen is not None:
                taken = self.dir / f".taken-{chosen.name}"
                os.rename(chosen, taken)
                chosen = taken
        if chosen is None:
            chosen = self._generate(nice=False)
        etc_ssh.mkdir(parents=True, exist_ok=True)
        for kind, _ in TYPES:
            key = f"ssh_host_{kind}_key"
            shutil.move(chosen / key, etc_ssh / key)
            os.chmod(etc_ssh / key, 0o600)
            pub = (chosen / f"{key}.pub").read_text().split()
            (etc_ssh / f"{key}.pub").write_text(f"{pub[0]} {pub[1]} root@{hostname}\n")
            os.chmod(etc_ssh / f"{key}.pub", 0o644)
        shutil.rmtree(chosen, ignore_errors=True)
        self.fill()

    def close(self) -> None:
        self.closed = True
        if self.thread is not None:
            self.thread.join(timeout=30)        # at most one key set in flight
