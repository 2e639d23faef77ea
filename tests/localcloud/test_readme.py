"""Every shell command the README shows runs as written, in order, in one bash session.

Two substitutions keep concurrent runs apart: the port 8080 becomes a free port and /tmp/cloud a
temporary directory; HOME is a temporary directory too (hcloud CLI config, installed collections).
`make test` is not run here: it is what runs this test (CI runs it); `make demo` is run by tests/e2e.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

_REPO = Path(__file__).resolve().parents[2]
if str(_REPO / "localcloud") not in sys.path:
    sys.path.insert(0, str(_REPO / "localcloud"))

from localcloud.testing import free_port  # noqa: E402

# make test runs this test; make demo is what tests/e2e runs (scripts/demo.py, site.yml on machines).
NOT_RUN_HERE = {"make test", "make demo"}


def readme_commands() -> list[str]:
    text = (_REPO / "README.md").read_text()
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", text, re.DOTALL):
        for line in block.splitlines():
            command = re.sub(r"\s+#.*$", "", line).strip()
            if command and not command.startswith("#"):
                commands.append(command)
    return commands


def test_readme_names_the_commands_checked_here():
    commands = readme_commands()
    assert "make test" in commands and "make demo" in commands
    assert ".venv-ansible14/bin/ansible localhost -m hetzner.hcloud.server_info" in commands
    assert any(c.startswith("hcloud server create") for c in commands)


@pytest.mark.long
def test_readme_commands_run_as_written(tmp_path):
    if not (_REPO / ".venv-ansible14" / "bin" / "ansible").exists() and not os.environ.get("CI"):
        pytest.skip(".venv-ansible14 is missing: run `make venv` (needs Python >= 3.12)")
    port = free_port()
    state = tmp_path / "cloud"
    home = tmp_path / "home"
    home.mkdir()
    tarballs = set(_REPO.glob("autoscale-hetzner-*.tar.gz"))
    lines = ["set -euo pipefail", "cd " + str(_REPO)]
    for command in readme_commands():
        if command in NOT_RUN_HERE:
            continue
        command = command.replace("127.0.0.1:8080", f"127.0.0.1:{port}").replace("/tmp/cloud", str(state))
        lines += [f"echo '>>> {command.replace(chr(39), '')}'", command]
    env = {key: value for key, value in os.environ.items() if not key.startswith(("ANSIBLE_", "HCLOUD_", "VIRTUAL_ENV"))}
    env.update(HOME=str(home), ANSIBLE_NOCOLOR="1", PATH=os.environ["PATH"])
    try:
        # output to a file, not a pipe: the backgrounded `localcloud serve` holds what it inherits,
        # and a pipe would not see its end while the server runs (after a failing command, say)
        log = tmp_path / "readme.log"
        with log.open("w") as out:
            done = subprocess.run(["bash", "-c", "\n".join(lines)], env=env, stdout=out, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, timeout=900)
        output = log.read_text()
        assert done.returncode == 0, output[-6000:]
        # what the commands did: the CLI's server, the stack's servers, and the official module saw them
        assert "Server " in output and "web-1" in output, output[-3000:]
        info = output.split(">>> .venv-ansible14/bin/ansible localhost -m hetzner.hcloud.server_info", 1)[1]
        assert '"name": "web-1"' in info and "SUCCESS" in info, info[-3000:]
        # in .venv the collection is already importable (a link to the checkout): install has nothing to do
        assert "was installed successfully" in output or "already installed" in output, output[-3000:]
    finally:
        subprocess.run([str(_REPO / ".venv" / "bin" / "localcloud"), "down", "--state", str(state)],
                       capture_output=True, timeout=60)
        for tarball in set(_REPO.glob("autoscale-hetzner-*.tar.gz")) - tarballs:
            tarball.unlink()
