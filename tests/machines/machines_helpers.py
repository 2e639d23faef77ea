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
