"""Start a local cloud in a subprocess for tests and benchmarks: ``with running_cloud(tmp) as cloud: ...``."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class RunningCloud:
    endpoint: str
    token: str
    state: Path
    process: subprocess.Popen
    readonly_token: str = ""      # the default project's read-only token

    @property
    def env(self) -> dict[str, str]:
        return {"HCLOUD_ENDPOINT": self.endpoint, "HCLOUD_TOKEN": self.token}

    @property
    def base(self) -> str:
        return self.endpoint.rsplit("/v1", 1)[0]

    def admin(self, method: str, path: str, body: dict | None = None) -> dict:
        """Call a /_localcloud control endpoint (faults, stats, config, projects)."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"{self.base}/_localcloud/{path}", data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


# Tests and benchmarks wait for another local cloud with machines on this host (a concurrent test
# run, a developer's) to stop instead of failing: only one may run per host.
MACHINES_LOCK_WAIT = float(os.environ.get("LOCALCLOUD_LOCK_WAIT") or 1800)


def start_cloud(state: Path, *args: str, port: int | None = None) -> RunningCloud:
    state = Path(state)
    machines = "nspawn" in args and "--lock-wait" not in args
    if machines:
        args = (*args, "--lock-wait", str(MACHINES_LOCK_WAIT))
    if "nspawn" in args and "--slot" not in args:
        args = (*args, "--slot", "auto")          # side by side with other local clouds on this host
    state.mkdir(parents=True, exist_ok=True)
    env_file = state / "env"
    if env_file.exists():
        env_file.unlink()
    port = port or free_port()
    started = time.time()
    log = open(state / "serve.log", "ab")
    process = subprocess.Popen(
        [sys.executable, "-m", "localcloud.cli", "serve", "--listen", f"127.0.0.1:{port}", "--state", str(state), *args],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    deadline = time.time() + 60 + (MACHINES_LOCK_WAIT if machines else 0)
    while time.time() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"localcloud exited with {process.returncode}: {(state / 'serve.log').read_text()[-2000:]}")
        if env_file.exists():
            values = dict(line.split("=", 1) for line in env_file.read_text().split())
            try:
                urllib.request.urlopen(values["HCLOUD_ENDPOINT"].rsplit("/v1", 1)[0] + "/_localcloud/config", timeout=2)
            except OSError:
                time.sleep(0.05)
                continue
            return RunningCloud(values["HCLOUD_ENDPOINT"], values["HCLOUD_TOKEN"], state, process,
                                values.get("HCLOUD_TOKEN_READONLY", ""))
        time.sleep(0.05)
    process.kill()
    raise RuntimeError(f"localcloud did not start within {deadline - started:.0f} s")


LONG_MARKER = "long: a test that runs for minutes (ansible-playbook rounds); xdist starts these first"


def long_tests_first(items: list) -> None:
    """Reorder collected tests in place: the ones marked ``long`` first, each followed by one short
    test. ``make test`` runs pytest-xdist with ``--dist load --maxschedchunk 1``, which hands each
    worker two consecutive tests to start with, so every worker begins with a long test at once
    instead of one worker finishing them one after another at the end of the run."""
    long = [item for item in items if item.get_closest_marker("long")]
    short = [item for item in items if not item.get_closest_marker("long")]
    ordered = []
    for item in long:
        ordered.append(item)
        if short:
            ordered.append(short.pop(0))
    items[:] = ordered + short


def self_signed_certificate(domain: str) -> tuple[str, str]:
    """(certificate PEM, private key PEM) of a fresh self-signed certificate for `domain`, for tests
    that upload one (cryptography: a dependency of the local cloud)."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, domain)])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(domain)]), critical=False)
            .sign(key, hashes.SHA256()))
    return (cert.public_bytes(serialization.Encoding.PEM).decode(),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()).decode())


@contextmanager
def running_cloud(state: Path, *args: str):
    cloud = start_cloud(state, *args)
    try:
        yield cloud
    finally:
        cloud.stop()


if __name__ == "__main__":       # pragma: no cover - manual use
    with running_cloud(Path(os.environ.get("STATE", "/tmp/localcloud"))) as c:
        print(c.env)
