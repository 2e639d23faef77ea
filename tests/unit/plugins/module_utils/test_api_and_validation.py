# Copyright (c) 2026, autoscale.hetzner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Error mapping, batched action waiting, execution of plans, and the expert validation helpers."""

from __future__ import annotations

import os
import sys

import pytest
from hcloud import APIException

sys.path.insert(0, os.path.dirname(__file__))
from catalog import context  # noqa: E402  pylint: disable=wrong-import-position

from ansible_collections.autoscale.hetzner.plugins.module_utils import api as api_mod  # noqa: E402
from ansible_collections.autoscale.hetzner.plugins.module_utils.api import (  # noqa: E402
    HetznerApi, HetznerError, describe_api_error,
)
from ansible_collections.autoscale.hetzner.plugins.module_utils.planners import plan  # noqa: E402
from ansible_collections.autoscale.hetzner.plugins.module_utils.reconcile import (  # noqa: E402
    Context, Resolver, Ref, run_plan, start_phase,
)
from ansible_collections.autoscale.hetzner.plugins.module_utils import validation as v  # noqa: E402


class ScriptedClient:
    """Answers requests from a function and logs them."""

    def __init__(self, answer):
        self.answer = answer
        self.log = []

    def request(self, method, url, **kwargs):
        self.log.append((method, url, kwargs))
        return self.answer(method, url, kwargs)


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch):
    monkeypatch.setattr(api_mod.time, "sleep", lambda _s: None)


def test_describe_api_error_names_fields_and_hint():
    exc = APIException(code="invalid_input", message="invalid input in field 'ip_range'",
                       details={"fields": [{"name": "ip_range", "messages": ["is too small"]}]})
    err = describe_api_error(exc, "creating network 'n'")
    assert err.code == "invalid_input" and err.field == "ip_range"
    assert str(err).startswith("creating network 'n' failed:") and "field 'ip_range': is too small" in str(err)
    err = describe_api_error(APIException(code="protected", message="protected", details=None))
    assert "fix:" in str(err) and "delete_protection" in str(err)


def test_wait_polls_many_actions_in_chunks_of_25_and_reports_failures():
    polls = []

    def answer(method, url, kwargs):
        ids = kwargs["params"]["id"]
        polls.append(len(ids))
        return {"actions": [{"id": i, "status": "success" if i != 7 else "error", "command": "attach_to_network",
                             "resources": [{"id": 1, "type": "server"}],
                             "error": {"code": "action_failed", "message": "boom"} if i == 7 else None}
                            for i in ids]}
    api = HetznerApi(ScriptedClient(answer))
    running = [{"id": i, "status": "running"} for i in range(30)]
    with pytest.raises(HetznerError) as info:
        api.wait(running)
    assert polls == [25, 5]
    assert "attach_to_network#7" in str(info.value) and "boom" in str(info.value)
    assert info.value.action["id"] == 7


def test_wait_returns_at_once_for_finished_actions():
    client = ScriptedClient(lambda *a: pytest.fail("no poll needed"))
    assert HetznerApi(client).wait([{"id": 1, "status": "success"}]) == [{"id": 1, "status": "success"}]


def test_api_get_returns_none_on_not_found_and_list_follows_pages():
    def answer(method, url, kwargs):
        if url == "/servers/9":
            raise APIException(code="not_found", message="not found", details=None)
        page = kwargs["params"]["page"]
        return {"servers": [{"id": page}], "meta": {"pagination": {"next_page": page + 1 if page < 3 else None}}}
    api = HetznerApi(ScriptedClient(answer))
    assert api.get("server", 9) is None
    assert [s["id"] for s in api.list("server")] == [1, 2, 3]


def test_run_plan_resolves_refs_of_objects_created_in_the_same_run():
    created = {}

    def answer(method, url, kwargs):
        if method == "POST" and url == "/servers":
            created["server"] = {"id": 42, "name": "web-1"}
            return {"server": created["server"], "action": {"id": 1, "status": "running"}, "next_actions": []}
        if url == "/actions":
            return {"actions": [{"id": i, "status": "success"} for i in kwargs["params"]["id"]]}
        if method == "POST" and url.startswith("/firewalls/7/actions/"):
            return {"actions": [{"id": 2, "status": "running"}]}
        if url == "/servers/42":
            return {"server": created["server"]}
        if url == "/firewalls/7":
            return {"firewall": {"id": 7, "name": "fw"}}
        raise AssertionError((method, url))
    client = ScriptedClient(answer)
    api = HetznerApi(client)
    ctx = context(server=[])
    ctx.pending.add(("server", "web-1"))
    firewall_plan = plan("firewall", {"name": "fw", "state": "present", "apply_to_servers": ["web-1"]},
                         ctx.by_name("firewall", "fw"), ctx)
    assert firewall_plan.phases[-1][0].body["apply_to"][0]["server"]["id"] == Ref("server", "web-1")
    server_plan = plan("server", {"name": "web-1", "server_type": "cx23", "image": "debian-12", "location": "fsn1",
                                  "state": "present"}, None, ctx)
    resolver = Resolver(api, ctx)
    actions = start_phase(api, server_plan, 0, resolver)
    api.wait(actions)
    run_plan(api, firewall_plan, resolver)
    apply = [c for c in client.log if c[1] == "/firewalls/7/actions/apply_to_resources"][0]
    assert apply[2]["json"] == {"apply_to": [{"type": "server", "server": {"id": 42}}]}


def test_start_phase_refuses_plans_with_errors():
    p = plan("network", {"name": "x", "ip_range": "8.8.8.0/24", "state": "present"}, None, Context())
    with pytest.raises(HetznerError):
        start_phase(None, p, 0, None)


def test_orderable_and_successor():
    ctx = context()
    cx22 = ctx.by_name("server_type", "cx22")
    assert v.orderable_in(cx22, "fsn1")[0] is False
    assert v.orderable_in(ctx.by_name("server_type", "cx23"), "fsn1") == (True, None)
    assert v.successor_candidates("cpx21") == ["cpx22", "cpx23"]
    assert v.suggest_server_type(cx22, "cx22", "fsn1", ctx) == "cx23"


def test_duplicate_names():
    errors = []
    v.check_duplicate_names([{"name": "a"}, {"name": "b"}, {"name": "a"}], "server", errors)
    assert errors == ["server: name 'a' is used twice; names must be unique per resource type"]


def test_firewall_warnings_port_ranges_and_out_rules():
    assert v.firewall_rule_warnings([{"direction": "in", "protocol": "tcp", "port": "1-1024",
                                      "source_ips": ["::/0"]}])
    assert not v.firewall_rule_warnings([{"direction": "in", "protocol": "tcp", "port": "23-80",
                                          "source_ips": ["0.0.0.0/0"]}])
    assert not v.firewall_rule_warnings([{"direction": "out", "protocol": "tcp", "port": "22",
                                          "destination_ips": ["0.0.0.0/0"]}])
