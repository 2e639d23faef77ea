# Copyright (c) 2026, autoscale.hetzner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The modules run as Ansible runs them, against an in-memory fake of hcloud.Client with a request log."""

from __future__ import annotations

import json
import os
import sys

import pytest

from ansible.module_utils.testing import patch_module_args

sys.path.insert(0, os.path.dirname(__file__))
from fake_client import FakeClient  # noqa: E402  pylint: disable=wrong-import-position

from ansible_collections.autoscale.hetzner.plugins.module_utils import api as api_mod  # noqa: E402
from ansible_collections.autoscale.hetzner.plugins.module_utils import hetzner_module  # noqa: E402
from ansible_collections.autoscale.hetzner.plugins.modules import (  # noqa: E402
    firewall, network, server, ssh_key, ssh_key_info,
)

REAL_BUILD_CLIENT = api_mod.build_client
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGaW2PdrW0F0m1H4k0Plm9bmjRq0ZbYyqVt5w4jK9mVJ me@x"


@pytest.fixture
def fake(monkeypatch):
    client = FakeClient()
    monkeypatch.setattr(api_mod, "build_client", lambda token, endpoint=None, **_kw: client)
    monkeypatch.setattr(api_mod.time, "sleep", lambda _s: None)
    return client


def run(module, capsys, check_mode=False, diff=False, **args):
    args.setdefault("api_token", "unit-test-token-0123456789")
    if check_mode:
        args["_ansible_check_mode"] = True
    if diff:
        args["_ansible_diff"] = True
    with patch_module_args(args):
        with pytest.raises(SystemExit):
            module.main()
    out = capsys.readouterr().out
    return json.loads(out)


def test_ssh_key_check_mode_sends_nothing_and_returns_the_planned_key(fake, capsys):
    result = run(ssh_key, capsys, check_mode=True, name="admin", public_key=KEY, labels={"a": "b"})
    assert result["changed"] and result["hcloud_ssh_key"]["name"] == "admin"
    assert result["hcloud_ssh_key"]["id"] is None
    assert fake.mutations() == []


def test_ssh_key_create_rerun_and_one_put_for_all_changes(fake, capsys):
    created = run(ssh_key, capsys, name="admin", public_key=KEY)
    assert created["changed"] and created["hcloud_ssh_key"]["id"]
    assert [m[0] for m in fake.mutations()] == ["POST"]
    rerun = run(ssh_key, capsys, name="admin", public_key=KEY)
    assert not rerun["changed"] and len(fake.mutations()) == 1
    changed = run(ssh_key, capsys, name="admin", labels={"a": "1", "b": "2"})
    assert changed["changed"]
    assert fake.mutations()[-1] == ("PUT", "/ssh_keys/%s" % created["hcloud_ssh_key"]["id"],
                                    {"labels": {"a": "1", "b": "2"}})
    assert changed["diff"]["before"]["labels"] == {} and changed["diff"]["after"]["labels"] == {"a": "1", "b": "2"}


def test_ssh_key_info_lists_in_the_module_form(fake, capsys):
    run(ssh_key, capsys, name="admin", public_key=KEY)
    info = run(ssh_key_info, capsys, name="admin")
    assert info["hcloud_ssh_key_info"][0]["public_key"] == " ".join(KEY.split()[:2])


def test_api_error_names_the_field_and_the_fix(fake, capsys):
    from hcloud import APIException
    fake.failures.append(APIException(code="uniqueness_error",
                                      message="SSH key with the same fingerprint already exists",
                                      details={"fields": [{"name": "public_key"}]}))
    result = run(ssh_key, capsys, name="admin", public_key=KEY)
    assert result["failed"]
    assert "field 'public_key'" in result["msg"] and "uniqueness_error" in result["msg"] and "fix:" in result["msg"]
    assert result["failure"]["code"] == "uniqueness_error" and result["failure"]["field"] == "public_key"


def test_missing_hcloud_library_fails_cleanly(fake, capsys, monkeypatch):
    monkeypatch.setattr(api_mod, "build_client", REAL_BUILD_CLIENT)
    monkeypatch.setattr(api_mod, "HAS_HCLOUD", False)
    result = run(ssh_key, capsys, name="admin", public_key=KEY)
    assert result["failed"] and "pip install hcloud" in result["msg"]


def test_network_add_subnet_waits_for_the_action_in_a_batch(fake, capsys):
    subnets = [{"ip_range": "10.0.1.0/24"}]
    run(network, capsys, name="net", ip_range="10.0.0.0/16", subnets=subnets)
    subnets.append({"ip_range": "10.0.2.0/24"})
    result = run(network, capsys, name="net", ip_range="10.0.0.0/16", subnets=subnets)
    assert result["changed"] and [p["command"] for phase in result["plan"]["phases"] for p in phase] == ["add_subnet"]
    polls = [entry for entry in fake.log if entry[1] == "/actions"]
    assert polls, "actions are polled through GET /actions?id="
    assert len(result["hcloud_network"]["subnets"]) == 2
    rerun = run(network, capsys, name="net", ip_range="10.0.0.0/16", subnets=subnets)
    assert not rerun["changed"]


def test_network_validation_fails_before_any_request_that_changes(fake, capsys):
    result = run(network, capsys, name="net", ip_range="10.0.0.0/16", subnets=[{"ip_range": "10.1.0.0/24"}])
    assert result["failed"] and "subnets[0].ip_range" in result["msg"]
    assert fake.mutations() == []


def test_firewall_warnings_reach_the_user(fake, capsys, monkeypatch):
    warned = []
    original = hetzner_module.AnsibleModule.warn
    monkeypatch.setattr(hetzner_module.AnsibleModule, "warn",
                        lambda self, msg: (warned.append(msg), original(self, msg))[1])
    rules = [{"protocol": "tcp", "port": "22", "source_ips": ["0.0.0.0/0"]},
             {"protocol": "tcp", "port": "5432", "source_ips": ["10.0.0.0/8"]}]
    result = run(firewall, capsys, name="fw", rules=rules)
    assert any("SSH" in w for w in warned) and any("private" in w for w in warned)
    assert result["plan"]["warnings"] == warned
    rerun = run(firewall, capsys, name="fw", rules=rules)
    assert not rerun["changed"]


def test_server_deprecated_type_fails_with_successor_and_changes_nothing(fake, capsys):
    result = run(server, capsys, name="web-1", server_type="cx22", image="debian-12", location="fsn1")
    assert result["failed"] and "cx23" in result["msg"] and "server_type" in result["msg"]
    assert fake.mutations() == []


def test_server_check_mode_returns_the_planned_server(fake, capsys):
    result = run(server, capsys, check_mode=True, name="web-1", server_type="cx23", image="debian-12",
                 location="fsn1", labels={"role": "web"})
    assert result["changed"] and result["hcloud_server"]["server_type"] == "cx23"
    assert result["hcloud_server"]["status"] == "running" and fake.mutations() == []
    create = result["plan"]["phases"][0][0]
    assert create["op"] == "create" and create["body"]["image"] == 1001


def test_server_state_rebuilt_is_a_deprecated_alias_of_rebuild(fake, capsys, monkeypatch):
    deprecations = []
    monkeypatch.setattr(hetzner_module.HetznerModule, "deprecate",
                        lambda self, msg, version=None, **kw: deprecations.append((msg, version)))
    run(server, capsys, name="web-1", server_type="cx23", image="debian-12", location="fsn1")
    before = len(fake.mutations())
    for state in ("rebuild", "rebuilt"):
        result = run(server, capsys, check_mode=True, name="web-1", image="debian-12", state=state)
        commands = [step.get("command") for phase in result["plan"]["phases"] for step in phase]
        assert result["changed"] and commands == ["rebuild"], state
        if state == "rebuild":
            assert deprecations == []
    assert deprecations == [("state: rebuilt is renamed rebuild (the name hetzner.hcloud uses for the same thing); "
                             "write state: rebuild", "1.0.0")]
    assert len(fake.mutations()) == before


# Every resource module: check mode plans a create and sends nothing; the real run creates with
# one POST; a rerun changes nothing; its _info twin lists the object in the module's form.
RESOURCE_CASES = {
    "ssh_key": dict(name="admin", public_key=KEY),
    "network": dict(name="prod", ip_range="10.0.0.0/16",
                    subnets=[{"ip_range": "10.0.1.0/24", "network_zone": "eu-central"}]),
    "firewall": dict(name="web", rules=[{"direction": "in", "protocol": "tcp", "port": "443",
                                         "source_ips": ["0.0.0.0/0", "::/0"]}]),
    "server": dict(name="web-1", server_type="cx23", image="debian-12", location="fsn1"),
    "volume": dict(name="pgdata", size=20, location="fsn1"),
    "floating_ip": dict(name="vip", type="ipv4", home_location="fsn1"),
    "placement_group": dict(name="web-spread"),
    "load_balancer": dict(name="web-lb", load_balancer_type="lb11", location="fsn1",
                          services=[{"protocol": "tcp", "listen_port": 80, "destination_port": 80}]),
}


@pytest.mark.parametrize("kind", sorted(RESOURCE_CASES))
def test_every_resource_module_plans_creates_converges_and_lists(kind, fake, capsys):
    import importlib
    module = importlib.import_module("ansible_collections.autoscale.hetzner.plugins.modules." + kind)
    info = importlib.import_module("ansible_collections.autoscale.hetzner.plugins.modules." + kind + "_info")
    args = RESOURCE_CASES[kind]
    planned = run(module, capsys, check_mode=True, **args)
    assert planned["changed"] and planned["hcloud_" + kind]["name"] == args["name"]
    assert fake.mutations() == []
    created = run(module, capsys, **args)
    assert created["changed"] and created["hcloud_" + kind]["id"]
    posts = [m for m in fake.mutations() if m[0] == "POST" and "/actions/" not in m[1]]
    assert len(posts) == 1
    rerun = run(module, capsys, **args)
    assert not rerun["changed"], rerun.get("plan")
    listed = run(info, capsys, name=args["name"])
    assert [item["name"] for item in listed["hcloud_" + kind + "_info"]] == [args["name"]]


def test_a_nested_typo_names_its_path_and_the_fix_and_sends_nothing(fake, capsys):
    result = run(firewall, capsys, name="fw", rules=[{"protocol": "tcp", "port": "22", "src_ips": ["0.0.0.0/0"]},
                                                     {"protocol": "tcpp", "port": "22", "source_ips": ["0.0.0.0/0"]}])
    assert result["failed"] and result["changed"] is False
    assert "rules[0].src_ips: unknown key; did you mean source_ips?" in result["msg"]
    assert "rules[1].protocol: 'tcpp' is not allowed; use one of tcp, udp, icmp, esp, gre; did you mean tcp?" in \
        result["msg"]
    assert fake.log == []


def test_values_the_api_would_refuse_fail_before_any_request(fake, capsys):
    result = run(network, capsys, name="n", ip_range="10.0.0.0/16", subnets=[{"ip_range": "10.0.1.0/33"}])
    assert result["failed"] and result["changed"] is False
    assert result["errors"] == ["subnets[0].ip_range: '10.0.1.0/33' is not a network in CIDR notation; write it "
                                "like 10.0.1.0/24"]
    assert fake.log == []
