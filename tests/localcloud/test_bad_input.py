"""Table of invalid requests: each answers the real status, code and a message naming the field,
and changes nothing (every list endpoint, and every action list, is the same before and after)."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

import pytest

from conftest import call, new_project, ssh_public_key

LISTS = ("servers", "networks", "firewalls", "ssh_keys", "volumes", "floating_ips", "primary_ips",
         "placement_groups", "load_balancers")
ACTION_LISTS = ("servers", "networks", "firewalls", "volumes", "floating_ips", "primary_ips", "load_balancers")


@dataclass
class Case:
    id: str
    method: str
    path: str                       # formatted with the world's ids, e.g. "/servers/{web}"
    body: Any = None
    status: int = 422
    code: str = "invalid_input"
    field: str | None = None        # must appear in details.fields[].name or in the message
    text: str | None = None         # must appear in the message
    raw: bytes | None = None        # sent instead of body
    token: str = "rw"               # rw | ro | bad | none
    setup: Callable | None = None   # (project, world) -> teardown callable


def _fmt(value, world):
    if isinstance(value, str):
        return value.format(**world)
    if isinstance(value, list):
        return [_fmt(v, world) for v in value]
    if isinstance(value, dict):
        return {k: _fmt(v, world) for k, v in value.items()}
    return value


def _int(key):
    """Body placeholder for an integer id of the world."""
    return ("__id__", key)


def _resolve(value, world):
    if isinstance(value, tuple) and value[:1] == ("__id__",):
        return int(world[value[1]])
    if isinstance(value, list):
        return [_resolve(v, world) for v in value]
    if isinstance(value, dict):
        return {k: _resolve(v, world) for k, v in value.items()}
    return _fmt(value, world)


def _lock_server(project, world):
    """Make stop_server long, power off 'lockme': while it runs the server is locked."""
    cloud = project.cloud
    before = cloud.admin("GET", "config")
    cloud.admin("PUT", "config", {"action_times": {**before["action_times"], "stop_server": 6}})
    action = project.ok("POST", f"/servers/{world['lockme']}/actions/poweroff")["action"]
    cloud.admin("PUT", "config", {"action_times": before["action_times"]})

    def teardown():
        project.wait(action, timeout=20)
        project.wait(project.ok("POST", f"/servers/{world['lockme']}/actions/poweron")["action"])
    return teardown


LONG = "a" * 64
SERVER = {"name": "new-server", "server_type": "cx23", "image": "debian-12", "location": "nbg1"}
RULE = {"direction": "in", "protocol": "tcp", "port": "80", "source_ips": ["0.0.0.0/0"]}

CASES = [
    # --- JSON and types
    Case("malformed-json", "POST", "/ssh_keys", raw=b'{"name": "k", ', status=400, code="json_error", text="JSON"),
    Case("json-array-body", "POST", "/networks", raw=b'[1, 2]', status=400, code="json_error", text="object"),
    Case("name-wrong-type", "POST", "/ssh_keys", {"name": 5, "public_key": ssh_public_key("x1")}, field="name"),
    Case("missing-public-key", "POST", "/ssh_keys", {"name": "k2"}, field="public_key", text="required"),
    Case("invalid-public-key", "POST", "/ssh_keys", {"name": "k2", "public_key": "ssh-rsa nope"}, field="public_key"),
    Case("duplicate-ssh-key-name", "POST", "/ssh_keys", {"name": "key", "public_key": ssh_public_key("x2")},
         status=409, code="uniqueness_error", field="name", text="key"),
    Case("duplicate-fingerprint", "POST", "/ssh_keys", {"name": "other", "public_key": ssh_public_key("world")},
         status=409, code="uniqueness_error", field="public_key", text="fingerprint"),
    Case("volume-size-string", "POST", "/volumes", {"name": "v", "size": "10", "location": "nbg1"}, field="size"),
    Case("volume-size-too-small", "POST", "/volumes", {"name": "v", "size": 5, "location": "nbg1"}, field="size"),
    Case("missing-server-type", "POST", "/servers", {"name": "s", "image": "debian-12"}, field="server_type"),
    Case("missing-name", "POST", "/networks", {"ip_range": "10.9.0.0/16"}, field="name", text="required"),
    # --- networks and subnets
    Case("invalid-cidr", "POST", "/networks", {"name": "n", "ip_range": "10.0.0.0/33"}, field="ip_range"),
    Case("not-a-cidr", "POST", "/networks", {"name": "n", "ip_range": "ten.zero"}, field="ip_range"),
    Case("duplicate-network-name", "POST", "/networks", {"name": "net", "ip_range": "10.9.0.0/16"},
         status=409, code="uniqueness_error", field="name"),
    Case("subnet-out-of-range", "POST", "/networks/{net}/actions/add_subnet",
         {"type": "cloud", "network_zone": "eu-central", "ip_range": "10.5.0.0/24"}, field="ip_range"),
    Case("subnet-overlap", "POST", "/networks/{net}/actions/add_subnet",
         {"type": "cloud", "network_zone": "eu-central", "ip_range": "10.0.1.0/25"}, field="ip_range",
         text="10.0.1.0/24"),
    Case("subnet-bad-zone", "POST", "/networks/{net}/actions/add_subnet",
         {"type": "cloud", "network_zone": "mars-1", "ip_range": "10.0.7.0/24"}, field="network_zone"),
    Case("subnet-bad-type", "POST", "/networks/{net}/actions/add_subnet",
         {"type": "galactic", "network_zone": "eu-central", "ip_range": "10.0.7.0/24"}, field="type"),
    Case("subnet-other-zone", "POST", "/networks/{net}/actions/add_subnet",
         {"type": "cloud", "network_zone": "us-east", "ip_range": "10.0.7.0/24"}, field="network_zone",
         text="eu-central"),
    Case("network-public-range", "POST", "/networks", {"name": "n", "ip_range": "8.8.0.0/16"}, field="ip_range"),
    Case("network-too-small", "POST", "/networks", {"name": "n", "ip_range": "10.9.0.0/28"}, field="ip_range"),
    Case("subnet-in-use-delete", "POST", "/networks/{net}/actions/delete_subnet", {"ip_range": "10.0.1.0/24"},
         code="resource_in_use", text="10.0.1.0/24"),
    Case("subnet-overlap-on-create", "POST", "/networks", {"name": "n2", "ip_range": "10.8.0.0/16", "subnets": [
        {"type": "cloud", "network_zone": "eu-central", "ip_range": "10.8.1.0/24"},
        {"type": "cloud", "network_zone": "eu-central", "ip_range": "10.8.1.128/25"}]}, field="subnets[1].ip_range"),
    Case("change-ip-range-excludes-subnet", "POST", "/networks/{net}/actions/change_ip_range",
         {"ip_range": "10.0.0.0/24"}, field="ip_range"),
    Case("route-gateway-outside", "POST", "/networks/{net}/actions/add_route",
         {"destination": "10.100.0.0/24", "gateway": "192.168.0.1"}, field="gateway"),
    # --- servers
    Case("unknown-server-type", "POST", "/servers", {**SERVER, "server_type": "cx999"}, field="server_type",
         text="cx999"),
    Case("unknown-image", "POST", "/servers", {**SERVER, "image": "windows-95"}, field="image", text="windows-95"),
    Case("unknown-location", "POST", "/servers", {**SERVER, "location": "mars1"}, field="location", text="mars1"),
    Case("deprecated-cx22", "POST", "/servers", {**SERVER, "server_type": "cx22"}, field="server_type",
         text="cx23"),
    Case("invalid-hostname", "POST", "/servers", {**SERVER, "name": "bad_name!"}, field="name"),
    Case("duplicate-server-name", "POST", "/servers", {**SERVER, "name": "web"}, status=409, code="uniqueness_error",
         field="name", text="web"),
    Case("unknown-ssh-key", "POST", "/servers", {**SERVER, "ssh_keys": ["nope"]}, field="ssh_keys", text="nope"),
    Case("networks-wrong-type", "POST", "/servers", {**SERVER, "networks": ["net"]}, field="networks[0]"),
    Case("network-other-zone", "POST", "/servers", {**SERVER, "server_type": "ccx13", "location": "ash", "networks": [_int("net")]},
         field="networks", text="zone"),
    Case("private-only-with-firewall", "POST", "/servers", {
        **SERVER, "networks": [_int("net")], "firewalls": [{"firewall": _int("fw")}],
        "public_net": {"enable_ipv4": False, "enable_ipv6": False}}, code="private_net_only_server",
        text="public"),
    Case("fixed-ip-outside-subnet", "POST", "/servers/{web}/actions/attach_to_network",
         {"network": _int("net2"), "ip": "10.1.200.1"}, field="ip", text="10.1.200.1"),
    Case("taken-ip", "POST", "/servers/{web}/actions/attach_to_network",
         {"network": _int("net2"), "ip": "{other_ip}"}, code="ip_not_available", text="{other_ip}"),
    Case("change-type-while-running", "POST", "/servers/{web}/actions/change_type",
         {"server_type": "cx33", "upgrade_disk": False}, code="server_not_stopped", text="web"),
    Case("locked-server", "POST", "/servers/{lockme}/actions/poweron", status=423, code="locked", text="locked",
         setup=_lock_server),
    Case("protected-server-delete", "DELETE", "/servers/{other}", status=423, code="protected", text="protected"),
    Case("protected-network-delete", "DELETE", "/networks/{net_protected}", status=423, code="protected",
         text="protected"),
    # --- firewalls
    Case("firewall-in-use", "DELETE", "/firewalls/{fw}", code="resource_in_use", text="is still in use"),
    Case("firewall-on-private-only-server", "POST", "/firewalls/{fw2}/actions/apply_to_resources",
         {"apply_to": [{"type": "server", "server": {"id": _int("private")}}]}, code="private_net_only_server"),
    Case("port-out-of-range", "POST", "/firewalls", {"name": "f", "rules": [{**RULE, "port": "70000"}]},
         field="rules[0].port", text="70000"),
    Case("port-range-descending", "POST", "/firewalls/{fw2}/actions/set_rules", {"rules": [{**RULE, "port": "90-80"}]},
         field="rules[0].port"),
    Case("bad-protocol", "POST", "/firewalls", {"name": "f", "rules": [{**RULE, "protocol": "sctp"}]},
         field="rules[0].protocol"),
    Case("bad-source-ip", "POST", "/firewalls", {"name": "f", "rules": [{**RULE, "source_ips": ["999.0.0.0/8"]}]},
         field="rules[0].source_ips", text="999.0.0.0/8"),
    Case("inbound-without-sources", "POST", "/firewalls", {"name": "f", "rules": [{**RULE, "source_ips": []}]},
         field="rules[0].source_ips"),
    Case("duplicate-firewall-name", "POST", "/firewalls", {"name": "fw"}, status=409, code="uniqueness_error",
         field="name"),
    # --- IPs, volumes, groups, load balancers
    Case("delete-assigned-floating-ip", "DELETE", "/floating_ips/{fip}", code="must_be_unassigned"),
    Case("floating-ip-bad-type", "POST", "/floating_ips", {"type": "ipv5", "home_location": "nbg1"}, field="type"),
    Case("primary-ip-bad-type", "POST", "/primary_ips", {"name": "p", "type": "ipv5", "assignee_type": "server",
                                                          "location": "nbg1"}, field="type"),
    Case("placement-group-bad-type", "POST", "/placement_groups", {"name": "pg", "type": "cluster"}, field="type"),
    Case("unknown-lb-type", "POST", "/load_balancers", {"name": "lb", "load_balancer_type": "lb99",
                                                        "location": "nbg1"}, field="load_balancer_type"),
    # --- labels
    Case("label-value-too-long", "POST", "/ssh_keys", {"name": "k3", "public_key": ssh_public_key("x3"),
                                                        "labels": {"env": LONG}}, field="labels"),
    Case("label-key-invalid", "PUT", "/servers/{web}", {"labels": {"-bad": "x"}}, field="labels", text="-bad"),
    Case("label-reserved-prefix", "PUT", "/networks/{net}", {"labels": {"hetzner.cloud/x": "y"}}, field="labels",
         text="reserved"),
    Case("label-value-not-string", "PUT", "/firewalls/{fw}", {"labels": {"n": 1}}, field="labels"),
    Case("rename-to-taken-name", "PUT", "/networks/{net2}", {"name": "net"}, status=409, code="uniqueness_error",
         field="name"),
    # --- query parameters
    Case("malformed-label-selector", "GET", "/servers?label_selector=tier%20in%20(web", field="label_selector"),
    Case("label-selector-bad-key", "GET", "/networks?label_selector=%3Dweb", field="label_selector"),
    Case("per-page-over-50", "GET", "/ssh_keys?per_page=51", field="per_page", text="50"),
    Case("page-zero", "GET", "/servers?page=0", field="page"),
    Case("bad-sort", "GET", "/servers?sort=bogus:up", field="sort"),
    Case("actions-without-id", "GET", "/actions", field="id"),
    # --- auth and routes
    Case("readonly-token-post", "POST", "/ssh_keys", {"name": "k4", "public_key": ssh_public_key("x4")},
         status=401, code="token_readonly", token="ro"),
    Case("bad-token", "GET", "/servers", status=401, code="unauthorized", token="bad"),
    Case("no-token", "POST", "/networks", {"name": "n", "ip_range": "10.9.0.0/16"}, status=401, code="unauthorized",
         token="none"),
    Case("unknown-route", "GET", "/no_such_thing", status=404, code="not_found", text="/v1/no_such_thing"),
    Case("unknown-server", "GET", "/servers/987654321", status=404, code="not_found", text="987654321"),
    Case("method-not-allowed", "PATCH", "/servers", status=405, code="method_not_allowed"),
]


@pytest.fixture(scope="module")
def world(cloud):
    project = new_project(cloud, "bad-input")
    ok = project.ok
    w = {}
    w["key"] = ok("POST", "/ssh_keys", {"name": "key", "public_key": ssh_public_key("world")})["ssh_key"]["id"]
    w["net"] = ok("POST", "/networks", {"name": "net", "ip_range": "10.0.0.0/16", "subnets": [
        {"type": "cloud", "network_zone": "eu-central", "ip_range": "10.0.1.0/24"}]})["network"]["id"]
    w["net2"] = ok("POST", "/networks", {"name": "net2", "ip_range": "10.1.0.0/16", "subnets": [
        {"type": "cloud", "network_zone": "eu-central", "ip_range": "10.1.0.0/24"}]})["network"]["id"]
    w["net_protected"] = ok("POST", "/networks", {"name": "net-protected", "ip_range": "10.2.0.0/16"})["network"]["id"]
    project.wait(ok("POST", f"/networks/{w['net_protected']}/actions/change_protection", {"delete": True})["action"])
    w["fw"] = ok("POST", "/firewalls", {"name": "fw", "rules": [RULE]})["firewall"]["id"]
    w["fw2"] = ok("POST", "/firewalls", {"name": "fw2"})["firewall"]["id"]
    servers = {
        "web": {"networks": [w["net"]], "firewalls": [{"firewall": w["fw"]}], "labels": {"tier": "web"}},
        "other": {"networks": [w["net2"]]},
        "lockme": {},
        "private": {"networks": [w["net"]], "public_net": {"enable_ipv4": False, "enable_ipv6": False}},
    }
    for name, extra in servers.items():
        made = ok("POST", "/servers", {**SERVER, "name": name, "ssh_keys": [w["key"]], **extra})
        w[name] = made["server"]["id"]
        for action in [made["action"], *made["next_actions"]]:
            project.wait(action)
    w["other_ip"] = ok("GET", f"/servers/{w['other']}")["server"]["private_net"][0]["ip"]
    project.wait(ok("POST", f"/servers/{w['other']}/actions/change_protection",
                    {"delete": True, "rebuild": True})["action"])
    fip = ok("POST", "/floating_ips", {"type": "ipv4", "home_location": "nbg1", "server": w["web"]})
    w["fip"] = fip["floating_ip"]["id"]
    project.wait(fip["action"])
    return project, w


def snapshot(project) -> dict:
    state = {}
    for plural in LISTS:
        items, page = [], 1
        while page:
            answer = project.ok("GET", f"/{plural}?per_page=50&page={page}")
            items += answer[plural]
            page = answer["meta"]["pagination"]["next_page"]
        state[plural] = items
    for plural in ACTION_LISTS:
        answer = project.ok("GET", f"/{plural}/actions?per_page=50&sort=id:desc")
        state[f"{plural}/actions"] = [(a["id"], a["command"]) for a in answer["actions"]]
        state[f"{plural}/actions/total"] = answer["meta"]["pagination"]["total_entries"]
    return state


def test_enough_cases():
    assert len(CASES) >= 40
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_bad_input(case, world):
    project, w = world
    teardown = case.setup(project, w) if case.setup else None
    try:
        before = snapshot(project)
        token = {"rw": project.token, "ro": project.readonly_token, "bad": "0" * 64, "none": None}[case.token]
        body = _resolve(case.body, w) if case.body is not None else None
        answer = call(project.endpoint, token, case.method, _fmt(case.path, w), body, raw=case.raw)
        where = f"{case.method} {case.path} {body} -> {answer.status} {answer.body}"
        assert answer.status == case.status, where
        error = answer.error
        assert error.get("code") == case.code, where
        assert isinstance(error.get("message"), str) and len(error["message"]) > 10, where
        assert "details" in error, where
        if case.field:
            fields = [f["name"] for f in ((error.get("details") or {}).get("fields") or [])]
            assert case.field in fields or f"'{case.field}'" in error["message"], where
        if case.text:
            assert _fmt(case.text, w) in error["message"], where
        if case.code == "invalid_input":
            assert error["details"]["fields"], where
            assert all(f["messages"] for f in error["details"]["fields"]), where
        after = snapshot(project)
        assert after == before, f"{case.id} changed the state"
    finally:
        if teardown:
            teardown()
