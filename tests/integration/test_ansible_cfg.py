# Copyright (c) 2026, autoscale.hetzner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The repository's ansible.cfg, proven by what it does to a run made the way `make demo` runs site.yml
(scripts/demo.py: the repository root as working directory, demo.py's environment, so no ANSIBLE_CONFIG
and demo.py's fact cache and control path directories):

- pipelining: every task is one `ssh` call that feeds the module to the remote Python on stdin; no
  remote temporary directory, no sftp/scp/dd transfer;
- SSH ControlPersist: every `ssh` call asks for a shared master connection kept 600 s, in demo.py's
  control path directory;
- fact caching: a second run of the same play asks the host nothing for its facts (no setup module)
  and still has them, from the JSON files in demo.py's fact cache directory;
- forks, fact caching and gathering as ansible-config reads them in that environment.

No machines: the SSH connection plugin runs a stand-in `ssh` (ansible_ssh_executable, also for sftp
and scp) that records its arguments and runs the remote command on this machine; nothing connects
anywhere. What it cannot show: the time a real ControlPersist master saves (docs/benchmarks.md)."""

from __future__ import annotations

import importlib.util
import json
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

# One write() per call, O_APPEND: the forks call it at the same time, and a record written in two
# pieces (the arguments, then the newline) interleaved with another fork's (a second run once logged
# 5 calls for 6: two records on one line).
FAKE_SSH = f"""#!{sys.executable}
# Stand-in for ssh, sftp and scp: records how it was called; ssh runs the remote command here.
import os, sys
name = os.path.basename(sys.argv[0])
record = b"".join(os.fsencode(arg) + b"\\0" for arg in [name, *sys.argv[1:]]) + b"\\n"
log = os.open(os.environ["FAKE_SSH_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
os.write(log, record)
os.close(log)
if name != "ssh":
    sys.exit(1)
os.execv("/bin/sh", ["/bin/sh", "-c", sys.argv[-1]])
"""

PLAY = """
- name: Facts and two modules
  hosts: stand_in
  gather_subset: [min]
  tasks:
    - name: A module that needs the facts
      ansible.builtin.debug:
        msg: "{{ ansible_facts['hostname'] }} {{ ansible_facts['python']['executable'] }}"
    - name: A module that runs on the host
      ansible.builtin.command: "true"
      changed_when: false
    - name: Another one
      ansible.builtin.stat:
        path: /
"""


def demo_environment(work: Path) -> dict:
    spec = importlib.util.spec_from_file_location("demo_script", ROOT / "scripts" / "demo.py")
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    return demo.ansible_env(work, {})


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """The play run twice the way make demo runs site.yml, on three hosts behind the stand-in ssh:
    {work, env, first, second: (output, ssh calls of that run)}."""
    tmp_path = tmp_path_factory.mktemp("ansible-cfg")
    work = tmp_path / "demo"
    work.mkdir()
    fake = tmp_path / "bin"
    fake.mkdir()
    for name in ("ssh", "sftp", "scp"):
        (fake / name).write_text(FAKE_SSH)
        (fake / name).chmod(0o755)
    log = tmp_path / "ssh.log"
    inventory = tmp_path / "hosts.ini"
    inventory.write_text(
        "[stand_in]\n" + "".join(
            f"host-{i} ansible_host=127.0.0.{i + 1} ansible_connection=ssh ansible_ssh_executable={fake / 'ssh'} "
            f"ansible_sftp_executable={fake / 'sftp'} ansible_scp_executable={fake / 'scp'} "
            f"ansible_python_interpreter={BIN / 'python'}\n" for i in range(1, 4)))
    playbook = tmp_path / "play.yml"
    playbook.write_text(PLAY)
    env = dict(demo_environment(work), FAKE_SSH_LOG=str(log), ANSIBLE_NOCOLOR="1")
    # nothing in the environment may stand in for the repository's ansible.cfg
    assert "ANSIBLE_CONFIG" not in env and not any(k.startswith(("ANSIBLE_PIPELINING", "ANSIBLE_SSH_ARGS",
                                                                "ANSIBLE_GATHERING", "ANSIBLE_CACHE_PLUGIN=",
                                                                "ANSIBLE_FORKS")) for k in env)

    def calls():
        if not log.exists():
            return []
        return [line.split("\0")[:-1] for line in log.read_text().splitlines() if line]

    runs = {"work": work, "env": env}
    for name in ("first", "second"):
        before = len(calls())
        proc = subprocess.run([str(BIN / "ansible-playbook"), "-i", str(inventory), str(playbook)], cwd=ROOT,
                              env=env, capture_output=True, text=True, timeout=600, check=False)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
        runs[name] = (proc.stdout, calls()[before:])
    return runs


def remote_commands(calls):
    return [call[-1] for call in calls if call[0] == "ssh"]


def test_modules_are_pipelined_over_one_persistent_connection_per_host(two_runs):
    _output, made = two_runs["first"]
    assert made, "the stand-in ssh was never called"
    assert all(call[0] == "ssh" for call in made), "files were copied (sftp/scp): %s" % [c[0] for c in made]
    commands = remote_commands(made)
    # 3 hosts x (facts + command + stat): one ssh call each, the module on stdin; nothing else
    assert len(commands) == 9, commands
    assert all(re.fullmatch(r"/bin/sh -c '%s && sleep 0'" % re.escape(str(BIN / "python")), c) for c in commands), commands
    for call in made:
        options = [call[i + 1] for i, arg in enumerate(call[:-1]) if arg == "-o"]
        assert "ControlMaster=auto" in options and "ControlPersist=600s" in options, call
        path = next(o for o in options if o.startswith("ControlPath=")).split("=", 1)[1].strip('"')
        assert Path(path).parent == two_runs["work"] / "cp", path


def test_a_second_run_takes_the_facts_from_the_cache(two_runs):
    first, _ = two_runs["first"]
    second, second_calls = two_runs["second"]
    assert "TASK [Gathering Facts]" in first
    assert "TASK [Gathering Facts]" not in second, second[-2000:]
    assert len(remote_commands(second_calls)) == 6, second_calls      # command + stat on 3 hosts, no setup
    assert len(list((two_runs["work"] / "facts").iterdir())) == 3, "no fact cache per host in demo.py's directory"
    hostname = socket.gethostname().split(".")[0]
    assert '"msg": "%s %s"' % (hostname, BIN / "python") in second, second[-2000:]   # the facts, from the cache


def test_forks_and_the_rest_as_ansible_reads_them(two_runs):
    work, env = two_runs["work"], two_runs["env"]
    proc = subprocess.run([str(BIN / "ansible-config"), "dump", "--only-changed", "--format", "json"], cwd=ROOT, env=env,
                          capture_output=True, text=True, check=True)
    settings = {s["name"]: (s["value"], s["origin"]) for s in json.loads(proc.stdout) if "name" in s}
    assert settings["CONFIG_FILE"][0] == str(ROOT / "ansible.cfg"), settings.get("CONFIG_FILE")
    assert settings["DEFAULT_FORKS"] == (25, str(ROOT / "ansible.cfg")), settings["DEFAULT_FORKS"]
    assert settings["DEFAULT_GATHERING"][0] == "smart" and settings["CACHE_PLUGIN"][0] == "jsonfile"
    assert settings["CACHE_PLUGIN_CONNECTION"][0] == str(work / "facts")     # demo.py's, per demo
