# Copyright (c) 2026, autoscale.hetzner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""site.yml's input check on the controller, the first thing a new user meets: with what a fresh machine
has (no token, no ~/.ssh/id_ed25519.pub, the scenario's placeholder admin_sources) one run says every
problem at once, each naming the variable and what to set, never a raw lookup error, and nothing is
sent to the API but reads. Without machines: every case stops before provisioning.
(The token sources it accepts: test_tokens.py.)"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import requests

from test_stack import PUBLIC_KEY, admin_url, server_stats

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
TOKEN_VARS = ("HCLOUD_TOKEN", "HETZNER_API_TOKEN", "HCLOUD_CONFIG", "HCLOUD_CONTEXT")


def site(ansible_env, home, *args, token=None, inventory="minimal"):
    env = {k: v for k, v in ansible_env.items() if k not in TOKEN_VARS}
    env["HOME"] = str(home)                       # a fresh user's home: no ~/.ssh, no hcloud CLI context
    if token:
        env["HCLOUD_TOKEN"] = token
    source = str(ROOT / "inventories" / inventory) if inventory else "localhost,"
    proc = subprocess.run([str(BIN / "ansible-playbook"), "-i", source, str(ROOT / "playbooks" / "site.yml"), *args],
                          env=env, cwd=str(home), capture_output=True, text=True, timeout=300, check=False)
    return proc.returncode, proc.stdout + proc.stderr


def problems(output):
    """The messages of the input check's failure (its msg list)."""
    line = next(l for l in output.splitlines() if l.startswith("fatal: [localhost]: FAILED! => "))
    return json.loads(line.split("=> ", 1)[1])["msg"]


def test_a_fresh_machine_gets_every_missing_input_at_once_and_nothing_is_written(localcloud, ansible_env, tmp_path):
    requests.delete(admin_url(localcloud, "/_localcloud/stats"), timeout=10).raise_for_status()
    rc, out = site(ansible_env, tmp_path)
    assert rc == 2, out[-3000:]
    found = problems(out)
    assert [p.split(":")[0] for p in found] == ["HCLOUD_TOKEN", "admin_public_key", "admin_sources"], found
    assert "export HCLOUD_TOKEN=" in found[0] and "make demo" in found[0]
    assert "~/.ssh/id_ed25519.pub does not exist" in found[1] and "ssh-keygen -t ed25519" in found[1]
    assert "admin_public_key_file" in found[1]
    assert "placeholder" in found[2] and '"admin_sources": [' in found[2]
    assert "lookup" not in out.lower().split("play [check the input", 1)[1], out[-3000:]   # no raw lookup error
    assert "PLAY [Provision" not in out
    assert all(route.startswith("GET ") for route in server_stats(localcloud)["by_route"])


def test_a_private_key_or_a_missing_key_file_is_named(localcloud, ansible_env, tmp_path):
    sources = json.dumps({"admin_sources": ["203.0.113.7/32"]})
    private = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmU=\n-----END OPENSSH PRIVATE KEY-----"
    rc, out = site(ansible_env, tmp_path, "-e", sources, "-e", json.dumps({"admin_public_key": private}),
                   token=localcloud["token"])
    assert rc == 2 and problems(out) == [
        "admin_public_key: this is not an OpenSSH public key (one line, e.g. ssh-ed25519 AAAA... you@host); "
        "did you give the private key?"], out[-3000:]
    rc, out = site(ansible_env, tmp_path, "-e", sources, "-e", "admin_public_key_file=%s" % (tmp_path / "nope.pub"),
                   token=localcloud["token"])
    assert rc == 2 and problems(out)[0].startswith(
        "admin_public_key: no SSH public key (%s does not exist)" % (tmp_path / "nope.pub")), out[-3000:]


def test_an_inventory_without_a_stack_is_told_which_to_use(localcloud, ansible_env, tmp_path):
    rc, out = site(ansible_env, tmp_path, "-e", json.dumps({"admin_sources": ["203.0.113.7/32"],
                                                            "admin_public_key": PUBLIC_KEY}),
                   token=localcloud["token"], inventory=None)
    assert rc == 2 and problems(out) == [
        "hetzner_stack: this inventory declares no stack. Use one of the scenarios (-i inventories/minimal or "
        "-i inventories/production) or declare hetzner_stack in your group_vars."], out[-3000:]
