# Copyright (c) 2026, autoscale.hetzner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the tests on local-cloud machines share: ansible-playbook runs read back (recap, changed
tasks), SSH to a machine, TCP reachability from a machine or from the controller, HTTP from the
controller.

Used by the role lab (tests/roles/lab.py) and the end-to-end tests (tests/e2e).
"""
from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SSH_OPTS = ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes",
            "-o", "ConnectTimeout=10", "-o", "LogLevel=ERROR"]
RECAP = re.compile(r"^(?P<host>\S+)\s+: ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+unreachable=(?P<unreachable>\d+)\s+"
                   r"failed=(?P<failed>\d+)\s+skipped=(?P<skipped>\d+)\s+rescued=(?P<rescued>\d+)\s+ignored=(?P<ignored>\d+)")
TASK = re.compile(r"^TASK \[(?P<name>.*)\] \*+$")
CHANGED = re.compile(r"^changed: \[(?P<host>[^\]]+)\]")
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def machines_skip_reason(what: str = "these tests") -> str | None:
    if not sys.platform.startswith("linux"):
        return f"{what} need Linux machines (systemd-nspawn)"
    if os.geteuid() != 0:
        return f"{what} need root (the local cloud's machines)"
    if os.environ.get("LOCALCLOUD_SKIP_MACHINES"):
        return "LOCALCLOUD_SKIP_MACHINES is set"
    if not (BIN / "ansible-playbook").exists():
        return "ansible-playbook is not in the venv"
    return None


@dataclass
class PlaybookRun:
    """One ansible-playbook run: exit code, output, per-host recap counts, the tasks that changed."""
    args: list[str]
    rc: int
    output: str
    seconds: float
    recap: dict[str, dict[str, int]] = field(default_factory=dict)
    changed_tasks: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def parse(cls, args, rc, output, seconds):
        output = ANSI.sub("", output)
        run = cls(args, rc, output, seconds)
        task = None
        in_recap = False
        for line in output.splitlines():
            if line.startswith("PLAY RECAP"):
                in_recap = True
                continue
            if in_recap:
                m = RECAP.match(line)
                if m:
                    host = m.group("host")
                    run.recap[host] = {k: int(v) for k, v in m.groupdict().items() if k != "host"}
                continue
            m = TASK.match(line)
            if m:
                task = m.group("name")
                continue
            m = CHANGED.match(line)
            if m and task:
                run.changed_tasks.setdefault(m.group("host"), []).append(task)
        return run

    def tail(self, lines: int = 60) -> str:
        return "\n".join(self.output.splitlines()[-lines:])

    def assert_ok(self):
        assert self.rc == 0 and not any(c["failed"] or c["unreachable"] for c in self.recap.values()), (
            f"ansible-playbook {' '.join(self.args)} -> rc {self.rc}\n{self.tail()}")
        return self

    def assert_unchanged(self):
        self.assert_ok()
        changed = {h: c["changed"] for h, c in self.recap.items() if c["changed"]}
        assert not changed, f"changed on a second run: {changed}; tasks: {self.changed_tasks}"
        return self


def ssh(ip: str, key: Path, command: str, check: bool = True, timeout: float = 60, user: str = "root"):
    """Run a command on a machine over SSH (a fresh connection; no multiplexing).

    sshd refuses new connections for a while after a burst of unauthenticated ones ("Not allowed
    at this time": MaxStartups, OpenSSH 10's penalties), as ssh-audit's rate test makes: retried.
    """
    deadline = time.monotonic() + 60
    while True:
        proc = subprocess.run(["ssh", *SSH_OPTS, "-i", str(key), f"{user}@{ip}", command],
                              capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 255 or "kex_exchange_identification" not in proc.stderr or time.monotonic() > deadline:
            break
        time.sleep(1)
    if check and proc.returncode != 0:
        raise AssertionError(f"ssh {ip} {command!r} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def tcp_from_controller(ip: str, port: int, timeout: float = 3) -> str:
    """open, refused or filtered (no answer)."""
    try:
        with socket.create_connection((ip, port), timeout=timeout):
            return "open"
    except ConnectionRefusedError:
        return "refused"
    except OSError:
        return "filtered"


def tcp_from(source_ip: str, key: Path, ip: str, port: int, timeout: float = 3) -> str:
    """open, refused or filtered: a TCP connect from a machine (reached by SSH at source_ip)."""
    proc = ssh(source_ip, key, f"timeout {timeout} bash -c 'exec 3<>/dev/tcp/{ip}/{port}' 2>&1; echo rc=$?", check=False)
    if "rc=0" in proc.stdout:
        return "open"
    if "refused" in proc.stdout:
        return "refused"
    return "filtered"


def http_get(url: str, timeout: float = 10) -> tuple[int, Message, str]:
    """status, headers, body of a GET from the controller (an HTTP error status is an answer too).
    The headers' names are case-insensitive (a load balancer may send them in lower case)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            return answer.status, answer.headers, answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read().decode(errors="replace")
