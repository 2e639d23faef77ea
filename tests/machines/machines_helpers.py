"""Helpers for the machine (nspawn) tests: skip reasons, ssh with a test key, TCP probes.

There is deliberately no conftest.py here: tests/localcloud and tests/integration import
`from conftest import ...`, and a second module named conftest would shadow theirs when the
directories run in one pytest session. Test modules import the fixtures from here instead.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT / "localcloud") not in sys.path:
    sys.path.insert(0, str(ROOT / "localcloud"))

SSH_OPTS = ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", "BatchMode=yes", "-o", "ConnectTimeout=5", "-o", "LogLevel=ERROR"]


def skip_reason() -> str | None:
    if not sys.platform.startswith("linux"):
        return "machine tests need Linux (systemd-nspawn, netns, overlayfs, nftables)"
    if os.geteuid() != 0:
        return "machine tests need root (they create netns, bridges, mounts, nft tables)"
    if os.environ.get("LOCALCLOUD_SKIP_MACHINES"):
        return "LOCALCLOUD_SKIP_MACHINES is set"
    return None


class SSH:
    def __init__(self, key: Path):
        self.key = key

    def run(self, ip: str, command: str, check: bool = True, timeout: float = 60):
        proc = subprocess.run(["ssh", *SSH_OPTS, "-i", str(self.key), f"root@{ip}", command],
                              capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"ssh {ip} {command!r} -> {proc.returncode}\n"
                                 f"{proc.stdout}\n{proc.stderr}")
        return proc

    def wait(self, ip: str, timeout: float = 60) -> float:
        t0 = time.monotonic()
        while True:
            if self.run(ip, "true", check=False, timeout=15).returncode == 0:
                return time.monotonic() - t0
            if time.monotonic() - t0 > timeout:
                raise AssertionError(f"no ssh login on {ip} within {timeout}s")
            time.sleep(0.2)


def tcp_open(ip: str, port: int, timeout: float = 2.0) -> bool:
    try:
        with socket.create_connection((ip, port), timeout=timeout):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def ssh_key(tmp_path_factory):
    d = tmp_path_factory.mktemp("sshkey")
    key = d / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "localcloud-test",
                    "-f", str(key)], check=True)
    return key


@pytest.fixture(scope="session")
def ssh(ssh_key):
    return SSH(ssh_key)


# --- a local cloud with machines, driven through its API and through Ansible (both collections)
BIN = Path(sys.executable).parent


class API:
    """The local cloud's HTTP API with the project token (what hcloud-python does, without it)."""

    def __init__(self, cloud):
        self.cloud = cloud

    def __call__(self, method: str, path: str, body: dict | None = None) -> dict:
        import json
        import urllib.error
        import urllib.request
        req = urllib.request.Request(self.cloud.endpoint + path, method=method,
                                     data=json.dumps(body).encode() if body is not None else None,
                                     headers={"Authorization": f"Bearer {self.cloud.token}",
                                              "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                return json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as err:
            raise AssertionError(f"{method} {path} -> {err.code}: {err.read()[:800]!r}") from None

    def wait(self, *actions: dict, timeout: float = 300) -> None:
        """Until every action has succeeded (fails on error or timeout)."""
        for action in actions:
            deadline = time.monotonic() + timeout
            while action["status"] == "running" and time.monotonic() < deadline:
                time.sleep(0.1)
                action = self("GET", f"/actions/{action['id']}")["action"]
            assert action["status"] == "success", action

    def server(self, name: str, ssh_key_id: int, **extra) -> dict:
        """Create a server and wait until its machine has booted."""
        body = {"name": name, "server_type": "cx23", "image": "debian-12", "location": "fsn1",
                "ssh_keys": [ssh_key_id], **extra}
        created = self("POST", "/servers", body)
        self.wait(created["action"], *created["next_actions"])
        return self("GET", f"/servers/{created['server']['id']}")["server"]


def machines_cloud(state: Path, *args: str):
    """`localcloud serve --machines nspawn` in a subprocess (waits for the host lock)."""
    from localcloud.testing import start_cloud
    cloud = start_cloud(state, "--machines", "nspawn", "--action-time", "0.1", "--rate-limit", "0", *args)
    cloud.admin("PUT", "config", {"legacy_datacenters": True})      # hetzner.hcloud 5.x reads datacenter
    return cloud


def down(state: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "localcloud.cli", "down", "--state", str(state)],
                          cwd=ROOT / "localcloud", capture_output=True, text=True, timeout=300)


def playbook(cloud, tmp_path: Path, tasks: str, name: str = "play") -> str:
    """Run tasks (YAML, indented for a play's `tasks:`) on localhost against the cloud; returns the
    output. Both collections (autoscale.hetzner from this checkout, hetzner.hcloud) read
    HCLOUD_ENDPOINT and HCLOUD_TOKEN."""
    path = tmp_path / f"{name}.yml"
    path.write_text("- hosts: localhost\n  connection: local\n  gather_facts: false\n"
                    "  vars:\n    ansible_python_interpreter: \"{{ ansible_playbook_python }}\"\n"
                    "  tasks:\n" + tasks)
    env = {**os.environ, **cloud.env, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
           "ANSIBLE_NOCOLOR": "1", "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-tmp"),
           "ANSIBLE_RETRY_FILES_ENABLED": "0"}
    env.pop("ANSIBLE_CONFIG", None)
    out = subprocess.run([BIN / "ansible-playbook", path.name], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    return out.stdout


def http_get(url: str, timeout: float = 3.0) -> tuple[int, str, dict]:
    import urllib.error
    import urllib.request
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read().decode(errors="replace"), {k.lower(): v for k, v in resp.headers.items()}
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode(errors="replace"), {k.lower(): v for k, v in err.headers.items()}


def until(predicate, timeout: float, interval: float = 0.2, message: str = ""):
    """Poll until predicate() is truthy; returns its value (AssertionError on timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(message or f"condition not met within {timeout} s")
        time.sleep(interval)
