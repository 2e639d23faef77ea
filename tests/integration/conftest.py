# Copyright (c) 2026, autoscale.hetzner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Shared fixtures of the integration tests: one local cloud for the session, and a helper that
runs ansible-playbook against it with this repository as the autoscale.hetzner collection.

    def test_x(localcloud, run_playbook):
        result = run_playbook("playbook.yml", extra_vars={...})
        assert result.rc == 0, result.output

`localcloud` is a dict: endpoint, token, state (Path), env (dict of the env file).
The fixture exports HCLOUD_ENDPOINT / HCLOUD_TOKEN for the whole session, so modules, the
inventory plugin and hcloud-python all find it.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from localcloud.testing import LONG_MARKER, long_tests_first

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
LOCALCLOUD = VENV_BIN / "localcloud"
TARGETS = Path(__file__).resolve().parent / "targets"


def pytest_configure(config):
    config.addinivalue_line("markers", LONG_MARKER)


def pytest_collection_modifyitems(items):
    long_tests_first(items)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def read_env(path: Path) -> dict:
    env = {}
    for line in path.read_text().splitlines():
        if "=" in line:
            key, value = line.split("=", 1)
            env[key.strip()] = value.strip()
    return env


@pytest.fixture(scope="session")
def localcloud(tmp_path_factory):
    """Start `localcloud serve` on a free loopback port with a fresh state dir (session-wide)."""
    if not LOCALCLOUD.exists():
        pytest.skip("localcloud is not installed in the venv (%s)" % LOCALCLOUD)
    state = tmp_path_factory.mktemp("localcloud-state")
    port = free_port()
    log = open(state / "serve.log", "wb")  # pylint: disable=consider-using-with
    cmd = [str(LOCALCLOUD), "serve", "--listen", "127.0.0.1:%d" % port, "--state", str(state),
           "--action-time", os.environ.get("LOCALCLOUD_ACTION_TIME", "0.2"), "--rate-limit", "0"]
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)  # pylint: disable=consider-using-with
    env_file = state / "env"
    deadline = time.monotonic() + 60
    while not env_file.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            log.close()
            pytest.fail("localcloud did not start:\n" + (state / "serve.log").read_text()[-4000:])
        time.sleep(0.1)
    env = read_env(env_file)
    saved = {k: os.environ.get(k) for k in ("HCLOUD_ENDPOINT", "HCLOUD_TOKEN")}
    os.environ.update({"HCLOUD_ENDPOINT": env["HCLOUD_ENDPOINT"], "HCLOUD_TOKEN": env["HCLOUD_TOKEN"]})
    try:
        yield {"endpoint": env["HCLOUD_ENDPOINT"], "token": env["HCLOUD_TOKEN"], "state": state, "env": env,
               "pid": proc.pid}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="session")
def collections_path(tmp_path_factory) -> Path:
    """A directory holding ansible_collections/autoscale/hetzner -> the repository root."""
    base = tmp_path_factory.mktemp("collections")
    link = base / "ansible_collections" / "autoscale" / "hetzner"
    link.parent.mkdir(parents=True)
    link.symlink_to(ROOT)
    return base


class PlaybookResult:
    def __init__(self, proc: subprocess.CompletedProcess):
        self.rc = proc.returncode
        self.output = proc.stdout + proc.stderr
        self.stdout = proc.stdout

    def __repr__(self):
        return "PlaybookResult(rc=%s)" % self.rc


@pytest.fixture(scope="session")
def ansible_env(localcloud, collections_path, tmp_path_factory) -> dict:
    env = dict(os.environ)
    env.update({
        "ANSIBLE_COLLECTIONS_PATH": str(collections_path),
        "ANSIBLE_ROLES_PATH": str(TARGETS),
        "ANSIBLE_HOST_KEY_CHECKING": "False",
        "ANSIBLE_RETRY_FILES_ENABLED": "False",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_LOCAL_TEMP": str(tmp_path_factory.mktemp("ansible-tmp")),
        "PATH": "%s%s%s" % (VENV_BIN, os.pathsep, os.environ.get("PATH", "")),
        "HCLOUD_ENDPOINT": localcloud["endpoint"],
        "HCLOUD_TOKEN": localcloud["token"],
    })
    return env


@pytest.fixture(scope="session")
def run_playbook(ansible_env):
    """run_playbook(path_or_text, extra_vars=None, check=False, diff=False, args=()) -> PlaybookResult.

    A path is run as is; a string containing a newline is written to a temporary playbook.
    The implicit localhost uses the controller's Python (ansible_playbook_python).
    """
    def run(playbook, extra_vars: dict | None = None, check: bool = False, diff: bool = False, args=(),
            env: dict | None = None) -> PlaybookResult:
        path = playbook
        if isinstance(playbook, str) and "\n" in playbook:
            tmp = Path(ansible_env["ANSIBLE_LOCAL_TEMP"]) / ("playbook-%d.yml" % time.monotonic_ns())
            tmp.write_text(playbook)
            path = str(tmp)
        cmd = [str(VENV_BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local", str(path)]
        if extra_vars:
            cmd += ["-e", json.dumps(extra_vars)]
        if check:
            cmd.append("--check")
        if diff:
            cmd.append("--diff")
        cmd += list(args)
        full_env = dict(ansible_env)
        full_env.update(env or {})
        proc = subprocess.run(cmd, capture_output=True, text=True, env=full_env, cwd=str(ROOT), check=False)
        return PlaybookResult(proc)
    return run


@pytest.fixture(scope="session")
def run_target(run_playbook):
    """Run tests/integration/targets/<name> (a role whose tasks hold the assertions)."""
    def run(name: str, extra_vars: dict | None = None) -> PlaybookResult:
        playbook = ("- hosts: localhost\n  gather_facts: false\n  vars:\n"
                    "    ansible_python_interpreter: \"{{ ansible_playbook_python }}\"\n"
                    "  roles:\n    - %s\n" % name)
        return run_playbook(playbook, extra_vars=extra_vars, diff=True)
    return run
