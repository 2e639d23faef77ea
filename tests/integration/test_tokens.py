# Copyright (c) 2026, autoscale.hetzner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where the API token comes from (plugins/module_utils/credentials.py, docs/provisioning.md):
the api_token option (an ansible-vault variable), HCLOUD_TOKEN, HETZNER_API_TOKEN, then the hcloud
CLI's active context -- each alone works, an earlier source wins over a later one (a wrong token in
the earlier one makes the run fail with `unauthorized` from the local cloud), and no run prints a
token, not at -vvvv and not when it fails.

Every run gets a HOME of its own, so the CLI context comes only from the cli.toml written here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from test_stack import PUBLIC_KEY, new_project

BIN = Path(sys.executable).parent
WRONG = "wrong-token-f00d1e55c0ffee"         # the local cloud answers 401 unauthorized to it
WRONG_2 = "other-wrong-token-5eed5eed"
TOKEN_VARS = ("HCLOUD_TOKEN", "HETZNER_API_TOKEN", "HCLOUD_CONFIG", "HCLOUD_CONTEXT")

READ_KEYS = """
- hosts: localhost
  gather_facts: false
  vars:
    ansible_python_interpreter: "{{ ansible_playbook_python }}"
  tasks:
    - name: Read the SSH keys (needs a valid token)
      autoscale.hetzner.ssh_key_info:
"""

VAULTED = """
- hosts: localhost
  gather_facts: false
  vars_files: [vault.yml]
  vars:
    ansible_python_interpreter: "{{ ansible_playbook_python }}"
  module_defaults:
    group/autoscale.hetzner.hcloud:
      api_token: "{{ vault_hcloud_token }}"
  tasks:
    - name: Read the SSH keys with the vaulted token
      autoscale.hetzner.ssh_key_info:
    - name: A module that fails after authenticating (the failure output must not show the token)
      autoscale.hetzner.network:
        name: tokens-bad-range
        ip_range: 10.0.0.0/33
"""


def cli_toml(active: str, contexts: dict) -> str:
    """The file `hcloud context create` writes (hcloud-cli 1.x)."""
    text = 'active_context = "%s"\n' % active
    for name, token in contexts.items():
        text += '\n[[contexts]]\n  name = "%s"\n  token = "%s"\n' % (name, token)
    return text


@pytest.fixture
def runner(localcloud, ansible_env, tmp_path):
    """run(tool, args, env_overrides, cli_contexts=None) -> (rc, output) with an env free of token sources."""
    home = tmp_path / "home"
    home.mkdir()

    def run(tool, args, env=None, cli=None):
        full = {k: v for k, v in ansible_env.items() if k not in TOKEN_VARS}
        full["HOME"] = str(home)
        full["ANSIBLE_LOCAL_TEMP"] = str(tmp_path / "ansible-tmp")
        full.update(env or {})
        config = home / ".config" / "hcloud" / "cli.toml"
        if cli:
            config.parent.mkdir(parents=True, exist_ok=True)
            config.write_text(cli_toml(*cli))
        elif config.exists():
            config.unlink()
        proc = subprocess.run([str(BIN / tool)] + list(args), env=full, cwd=str(tmp_path), capture_output=True,
                              text=True, check=False)
        return proc.returncode, proc.stdout + proc.stderr
    return run


def playbook(tmp_path, text, name="play.yml"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def assert_no_token(output, *tokens):
    for token in tokens:
        assert token not in output, "a token was printed:\n" + output[-3000:]


def test_each_module_token_source_alone_works_and_is_never_printed(localcloud, runner, tmp_path):
    good = localcloud["token"]
    play = playbook(tmp_path, READ_KEYS)
    cases = {
        "HCLOUD_TOKEN": ({"HCLOUD_TOKEN": good}, None),
        "HETZNER_API_TOKEN": ({"HETZNER_API_TOKEN": good}, None),
        "CLI active context": ({}, ("lab", {"other": WRONG, "lab": good})),
        "CLI HCLOUD_CONTEXT": ({"HCLOUD_CONTEXT": "lab"}, ("other", {"other": WRONG, "lab": good})),
    }
    for case, (env, cli) in cases.items():
        rc, out = runner("ansible-playbook", ["-vvvv", "-i", "localhost,", "-c", "local", play], env, cli)
        assert rc == 0, "%s: %s" % (case, out[-3000:])
        assert "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER" in out, case  # -vvvv shows the (masked) arguments
        assert_no_token(out, good, WRONG)


def test_module_token_sources_apply_in_the_documented_order(localcloud, runner, tmp_path):
    good = localcloud["token"]
    play = playbook(tmp_path, READ_KEYS)
    cases = {
        # an earlier source with a wrong token hides a good later one: the run fails on it
        "HCLOUD_TOKEN before HETZNER_API_TOKEN": ({"HCLOUD_TOKEN": WRONG, "HETZNER_API_TOKEN": good}, None, 2),
        "HETZNER_API_TOKEN before the CLI": ({"HETZNER_API_TOKEN": WRONG}, ("lab", {"lab": good}), 2),
        "the CLI's active context": ({}, ("other", {"other": WRONG, "lab": good}), 2),
        # and the good one first wins over wrong later ones
        "HCLOUD_TOKEN wins": ({"HCLOUD_TOKEN": good, "HETZNER_API_TOKEN": WRONG}, ("lab", {"lab": WRONG_2}), 0),
    }
    for case, (env, cli, expected) in cases.items():
        rc, out = runner("ansible-playbook", ["-vvvv", "-i", "localhost,", "-c", "local", play], env, cli)
        assert rc == expected, "%s: rc %s\n%s" % (case, rc, out[-3000:])
        if expected:
            assert "unauthorized" in out, case
        assert_no_token(out, good, WRONG, WRONG_2)


def test_no_token_anywhere_names_every_source(runner, tmp_path):
    rc, out = runner("ansible-playbook", ["-i", "localhost,", "-c", "local", playbook(tmp_path, READ_KEYS)])
    assert rc == 2, out
    for source in ("api_token", "HCLOUD_TOKEN", "HETZNER_API_TOKEN", "hcloud context use"):
        assert source in out, out[-2000:]


def test_vaulted_variable_wins_over_the_environment_and_is_never_printed(localcloud, runner, tmp_path):
    good = localcloud["token"]
    password = tmp_path / "vault-password"
    password.write_text("correct horse battery staple\n")
    rc, vaulted = runner("ansible-vault", ["encrypt_string", "--vault-password-file", str(password),
                                           "--name", "vault_hcloud_token", good])
    assert rc == 0, vaulted
    (tmp_path / "vault.yml").write_text(vaulted[vaulted.index("vault_hcloud_token:"):])
    assert good not in (tmp_path / "vault.yml").read_text()
    rc, out = runner("ansible-playbook", ["-vvvv", "-i", "localhost,", "-c", "local", "--vault-password-file",
                                          str(password), playbook(tmp_path, VAULTED)],
                     {"HCLOUD_TOKEN": WRONG})
    # the read works with the vaulted token (HCLOUD_TOKEN is wrong), then the bad ip_range fails
    assert "ok: [localhost]" in out and rc == 2, out[-3000:]
    assert "ip_range" in out, out[-3000:]
    assert_no_token(out, good, WRONG)


def test_inventory_plugin_token_sources_in_order_never_printed(localcloud, runner, tmp_path):
    good = localcloud["token"]
    (tmp_path / "hcloud.yml").write_text("plugin: autoscale.hetzner.hcloud\n")
    cases = {
        "HETZNER_API_TOKEN": ({"HETZNER_API_TOKEN": good}, None, 0),
        "CLI active context": ({}, ("lab", {"lab": good}), 0),
        "HCLOUD_TOKEN before HETZNER_API_TOKEN": ({"HCLOUD_TOKEN": WRONG, "HETZNER_API_TOKEN": good}, None, 1),
        "HETZNER_API_TOKEN before the CLI": ({"HETZNER_API_TOKEN": WRONG}, ("lab", {"lab": good}), 1),
    }
    for case, (env, cli, expected) in cases.items():
        env = dict(env, ANSIBLE_INVENTORY_UNPARSED_FAILED="true")
        rc, out = runner("ansible-inventory", ["-vvvv", "-i", str(tmp_path / "hcloud.yml"), "--list"], env, cli)
        assert rc == expected, "%s: rc %s\n%s" % (case, rc, out[-3000:])
        assert_no_token(out, good, WRONG)


def test_cli_toml_written_here_is_what_the_hcloud_cli_reads(localcloud, tmp_path):
    """The format of our cli.toml fixture is the real CLI's: hcloud uses its active context against the
    local cloud (so the module tests above read the same file the CLI would)."""
    config = tmp_path / "cli.toml"
    config.write_text(cli_toml("lab", {"other": WRONG, "lab": localcloud["token"]}))
    env = {k: v for k, v in os.environ.items() if k not in TOKEN_VARS}
    env.update(HCLOUD_CONFIG=str(config), HCLOUD_ENDPOINT=localcloud["endpoint"], HOME=str(tmp_path))
    proc = subprocess.run(["hcloud", "ssh-key", "list"], env=env, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = subprocess.run(["hcloud", "context", "active"], env=env, capture_output=True, text=True, check=False)
    assert proc.stdout.strip() == "lab"


# site.yml and verify.yml check and use the token themselves (the input check before anything changes, the
# GET /pricing of the summary): through the autoscale.hetzner.hcloud_token lookup they take the same sources,
# in the same order, as the modules. Both run here on a project of their own without machines: site.yml is
# stopped by its input check (a bad admin_sources, so that it provisions nothing), verify.yml reads an empty
# project (no host to ask, no URL) and prices the declared volume and load balancer.
MINIMAL = Path(__file__).resolve().parents[2] / "inventories" / "minimal"
PLAYBOOKS = Path(__file__).resolve().parents[2] / "playbooks"
SITE_VARS = json.dumps({"admin_public_key": PUBLIC_KEY, "admin_sources": ["not-a-network"]})


def token_sources(token):
    return {
        "HCLOUD_TOKEN": ({"HCLOUD_TOKEN": token}, None),
        "HETZNER_API_TOKEN": ({"HETZNER_API_TOKEN": token}, None),
        "CLI active context": ({}, ("lab", {"other": WRONG, "lab": token})),
    }


def test_site_yml_input_check_takes_every_token_source_the_modules_take(localcloud, runner):
    token = new_project(localcloud, "tokens-site")
    site = ["-vvvv", "-i", str(MINIMAL), str(PLAYBOOKS / "site.yml"), "-e", SITE_VARS]
    for case, (env, cli) in token_sources(token).items():
        rc, out = runner("ansible-playbook", site, env, cli)
        # stopped by the admin_sources problem alone: the token was found
        assert rc == 2 and "admin_sources: not-a-network is not an IP address or CIDR" in out, "%s: %s" % (case, out[-3000:])
        assert "HCLOUD_TOKEN: not set" not in out, "%s: the input check did not find the token\n%s" % (case, out[-3000:])
        assert_no_token(out, token, WRONG)
    rc, out = runner("ansible-playbook", site)
    assert rc == 2 and "HCLOUD_TOKEN: not set, nor HETZNER_API_TOKEN, nor an hcloud CLI context" in out, out[-3000:]
    assert "hcloud context create" in out and ".env" in out


def test_verify_yml_prices_the_stack_with_every_token_source(localcloud, runner):
    token = new_project(localcloud, "tokens-verify")
    verify = ["-vvvv", "-i", str(MINIMAL), str(PLAYBOOKS / "verify.yml"), "-e", json.dumps({"admin_public_key": PUBLIC_KEY})]
    for case, (env, cli) in token_sources(token).items():
        rc, out = runner("ansible-playbook", verify, env, cli)
        assert rc == 0, "%s: %s" % (case, out[-3000:])
        assert "Monthly cost (the API's prices): " in out and "Monthly cost: unknown" not in out, "%s: %s" % (case, out[-3000:])
        assert_no_token(out, token, WRONG)
