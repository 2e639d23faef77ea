"""Common semantics: pagination, label selectors, sort, rate limit, projects and tokens, action times,
fault injection, persistence across kill -9."""
from __future__ import annotations

import signal
import time

import pytest

from conftest import ACTION_TIME, Project, call, new_project, ssh_public_key
from localcloud.testing import start_cloud


def _keys(project, n, labels=lambda i: {}):
    return [project.ok("POST", "/ssh_keys", {"name": f"key-{i}", "public_key": ssh_public_key(f"{project.token}{i}"),
                                             "labels": labels(i)})["ssh_key"] for i in range(n)]


def _meta(answer):
    p = answer["meta"]["pagination"]
    return (p["page"], p["per_page"], p["previous_page"], p["next_page"], p["last_page"], p["total_entries"])


# --- pagination ------------------------------------------------------------------------------


def test_pagination_meta(project):
    empty = project.ok("GET", "/ssh_keys")
    assert empty["ssh_keys"] == [] and set(empty["meta"]["pagination"]) == {
        "page", "per_page", "previous_page", "next_page", "last_page", "total_entries"}
    assert _meta(empty) == (1, 25, None, None, 1, 0)
    keys = _keys(project, 7)
    assert _meta(project.ok("GET", "/ssh_keys")) == (1, 25, None, None, 1, 7)
    pages = {n: project.ok("GET", f"/ssh_keys?per_page=3&page={n}") for n in (1, 2, 3, 4)}
    assert _meta(pages[1]) == (1, 3, None, 2, 3, 7)
    assert _meta(pages[2]) == (2, 3, 1, 3, 3, 7)
    assert _meta(pages[3]) == (3, 3, 2, None, 3, 7)
    assert [k["id"] for n in (1, 2, 3) for k in pages[n]["ssh_keys"]] == [k["id"] for k in keys]
    assert pages[4]["ssh_keys"] == [] and _meta(pages[4])[:2] == (4, 3)
    assert _meta(project.ok("GET", "/ssh_keys?per_page=50")) == (1, 50, None, None, 1, 7)
    assert _meta(project.ok("GET", "/ssh_keys?per_page=1&page=7")) == (7, 1, 6, None, 7, 7)
    # catalogue lists page the same way
    assert _meta(project.ok("GET", "/locations?per_page=2")) [:4] == (1, 2, None, 2)


# --- label selectors -------------------------------------------------------------------------

LABELS = {
    "a": {"env": "prod", "tier": "web"},
    "b": {"env": "prod", "tier": "db"},
    "c": {"env": "staging", "tier": "web"},
    "d": {"tier": "web", "backup": ""},
    "e": {},
}


@pytest.fixture(scope="module")
def labelled(cloud):
    project = new_project(cloud, "labels")
    for name, labels in LABELS.items():
        project.ok("POST", "/networks", {"name": name, "ip_range": "10.0.0.0/16", "labels": labels})
    return project


@pytest.mark.parametrize("selector,expected", [
    ("env=prod", "ab"),
    ("env==prod", "ab"),
    ("env!=prod", "cde"),
    ("env in (prod,staging)", "abc"),
    ("env in (staging)", "c"),
    ("env notin (prod)", "cde"),
    ("env", "abc"),
    ("!env", "de"),
    ("backup", "d"),
    ("env=prod,tier=web", "a"),
    ("tier=web,!env", "d"),
    ("tier,env notin (staging),tier!=db", "ad"),
    ("env in (prod, staging),tier in (db)", "b"),
    ("env=nope", ""),
    ("example.com/owner", ""),
])
def test_label_selector(labelled, selector, expected):
    from urllib.parse import quote
    answer = labelled.ok("GET", f"/networks?label_selector={quote(selector)}")
    assert "".join(n["name"] for n in answer["networks"]) == expected
    assert answer["meta"]["pagination"]["total_entries"] == len(expected)


# --- sort ------------------------------------------------------------------------------------


def test_sort(project):
    for name in ("m", "z", "a", "q"):
        project.ok("POST", "/placement_groups", {"name": name, "type": "spread"})
    names = lambda q: [g["name"] for g in project.ok("GET", f"/placement_groups?{q}")["placement_groups"]]  # noqa: E731
    assert names("") == ["m", "z", "a", "q"]                    # default: id ascending
    assert names("sort=name") == ["a", "m", "q", "z"]
    assert names("sort=name:asc") == ["a", "m", "q", "z"]
    assert names("sort=name:desc") == ["z", "q", "m", "a"]
    assert names("sort=id:desc") == ["q", "a", "z", "m"]
    # created has whole seconds: the four may straddle a second, so the order follows their own stamps
    groups = project.ok("GET", "/placement_groups")["placement_groups"]
    by_created_desc_then_id = sorted(groups, key=lambda g: g["id"])
    by_created_desc_then_id.sort(key=lambda g: g["created"], reverse=True)     # stable: ties keep id order
    assert names("sort=created:desc&sort=id:asc") == [g["name"] for g in by_created_desc_then_id]
    assert names("sort=name:desc&per_page=2&page=2") == ["m", "a"]
    bad = project.call("GET", "/placement_groups?sort=size")
    assert bad.status == 422 and bad.error["details"]["fields"][0]["name"] == "sort"
    # actions sort by command/status/started
    net = project.ok("POST", "/networks", {"name": "n", "ip_range": "10.0.0.0/16"})["network"]
    for body in ({"type": "cloud", "network_zone": "eu-central", "ip_range": "10.0.1.0/24"},):
        project.wait(project.ok("POST", f"/networks/{net['id']}/actions/add_subnet", body)["action"])
    project.wait(project.ok("POST", f"/networks/{net['id']}/actions/change_protection", {"delete": False})["action"])
    commands = [a["command"] for a in project.ok("GET", f"/networks/{net['id']}/actions?sort=command:desc")["actions"]]
    assert commands == ["change_protection", "add_subnet"]


# --- rate limit ------------------------------------------------------------------------------


def test_rate_limit(tmp_path):
    limited = start_cloud(tmp_path / "limited", "--rate-limit", "10", "--action-time", str(ACTION_TIME))
    try:
        first = call(limited.endpoint, limited.token, "GET", "/ssh_keys")
        assert first.status == 200
        assert first.headers["ratelimit-limit"] == "10"
        assert first.headers["ratelimit-remaining"] == "9"
        assert int(first.headers["ratelimit-reset"]) > time.time()
        remaining = [int(call(limited.endpoint, limited.token, "GET", "/ssh_keys").headers["ratelimit-remaining"])
                     for _ in range(9)]
        assert remaining == [8, 7, 6, 5, 4, 3, 2, 1, 0]
        over = call(limited.endpoint, limited.token, "GET", "/ssh_keys")
        assert over.status == 429 and over.error["code"] == "rate_limit_exceeded"
        assert over.headers["ratelimit-remaining"] == "0"
        assert call(limited.endpoint, limited.token, "POST", "/ssh_keys",
                    {"name": "k", "public_key": ssh_public_key("rl")}).status == 429
        # the budget is per project
        other = new_project(limited, "other")
        assert other.call("GET", "/ssh_keys").status == 200
        # and refills at limit/3600 per second: raise the limit at run time and it answers again
        limited.admin("PUT", "config", {"rate_limit": 36000})
        time.sleep(0.25)
        assert call(limited.endpoint, limited.token, "GET", "/ssh_keys").status == 200
        assert call(limited.endpoint, limited.token, "GET", "/ssh_keys").headers["ratelimit-limit"] == "36000"
    finally:
        limited.stop()


# --- projects and tokens ---------------------------------------------------------------------


def test_projects_are_isolated(cloud):
    a, b = new_project(cloud, "a"), new_project(cloud, "b")
    key = a.ok("POST", "/ssh_keys", {"name": "shared-name", "public_key": ssh_public_key("iso")})["ssh_key"]
    net = a.ok("POST", "/networks", {"name": "net", "ip_range": "10.0.0.0/16"})["network"]
    assert b.ok("GET", "/ssh_keys")["ssh_keys"] == []
    assert b.ok("GET", "/networks?name=net")["networks"] == []
    assert b.call("GET", f"/ssh_keys/{key['id']}").status == 404
    assert b.call("DELETE", f"/networks/{net['id']}").status == 404
    assert b.call("POST", f"/networks/{net['id']}/actions/add_subnet",
                  {"type": "cloud", "network_zone": "eu-central", "ip_range": "10.0.1.0/24"}).status == 404
    refused = b.call("POST", "/servers", {"name": "s", "server_type": "cx23", "image": "debian-12",
                                          "location": "nbg1", "ssh_keys": [key["id"]]})
    assert refused.status == 422 and refused.error["details"]["fields"][0]["name"] == "ssh_keys"
    # names and fingerprints are unique per project only
    b.ok("POST", "/ssh_keys", {"name": "shared-name", "public_key": ssh_public_key("iso")})
    assert a.call("GET", f"/networks/{net['id']}").status == 200


def test_readonly_token(project):
    net = project.ok("POST", "/networks", {"name": "net", "ip_range": "10.0.0.0/16"})["network"]
    ro = project.readonly_token
    assert project.call("GET", "/networks", token=ro).body["networks"][0]["id"] == net["id"]
    assert project.call("GET", f"/networks/{net['id']}", token=ro).status == 200
    for method, path, body in [("POST", "/networks", {"name": "x", "ip_range": "10.1.0.0/16"}),
                               ("PUT", f"/networks/{net['id']}", {"name": "y"}),
                               ("DELETE", f"/networks/{net['id']}", None),
                               ("POST", f"/networks/{net['id']}/actions/change_protection", {"delete": True})]:
        answer = project.call(method, path, body, token=ro)
        assert (answer.status, answer.error["code"]) == (401, "token_readonly"), (method, path)
    assert project.ok("GET", f"/networks/{net['id']}")["network"]["name"] == "net"
    assert project.ok("GET", f"/networks/{net['id']}")["network"]["protection"] == {"delete": False}


def test_the_env_file_holds_the_default_projects_read_only_token(cloud):
    # For what only reads (the node_exporter role's stack cost collector): it reads the default project and
    # is refused any change.
    env = dict(line.split("=", 1) for line in (cloud.state / "env").read_text().split())
    assert env["HCLOUD_TOKEN_READONLY"] == cloud.readonly_token and cloud.readonly_token not in ("", cloud.token)
    name = f"ro-env-{time.monotonic_ns()}"
    call(cloud.endpoint, cloud.token, "POST", "/networks", {"name": name, "ip_range": "10.0.0.0/16"})
    listed = call(cloud.endpoint, cloud.readonly_token, "GET", f"/networks?name={name}")
    assert listed.status == 200 and [n["name"] for n in listed.body["networks"]] == [name]
    refused = call(cloud.endpoint, cloud.readonly_token, "POST", "/networks", {"name": name + "-x", "ip_range": "10.1.0.0/16"})
    assert (refused.status, refused.error["code"]) == (401, "token_readonly")
    network = listed.body["networks"][0]
    assert call(cloud.endpoint, cloud.token, "DELETE", f"/networks/{network['id']}").status == 204


# --- action timing ---------------------------------------------------------------------------


@pytest.fixture
def action_times(cloud):
    saved = cloud.admin("GET", "config")

    def set_times(**times):
        cloud.admin("PUT", "config", {"action_times": {**saved["action_times"], **times}})
    yield set_times
    cloud.admin("PUT", "config", {"action_times": saved["action_times"], "action_time": saved["action_time"]})


def test_actions_take_the_configured_time(project, action_times):
    action_times(create_server=1.2, start_server=0.4)
    started = time.time()
    made = project.ok("POST", "/servers", {"name": "slow", "server_type": "cx23", "image": "debian-12",
                                           "location": "nbg1"})
    assert made["action"]["status"] == "running" and made["action"]["finished"] is None
    assert made["server"]["status"] == "initializing"
    assert [a["command"] for a in made["next_actions"]] == ["start_server"]
    time.sleep(0.2)
    assert project.ok("GET", f"/actions/{made['action']['id']}")["action"]["status"] == "running"
    assert project.ok("GET", f"/servers/{made['server']['id']}")["server"]["locked"] is True
    done = project.wait(made["action"])
    assert done["status"] == "success" and done["progress"] == 100 and done["finished"] and done["error"] is None
    assert time.time() - started >= 1.2
    start = project.wait(made["next_actions"][0])
    assert start["status"] == "success"
    assert time.time() - started >= 1.6
    server = project.ok("GET", f"/servers/{made['server']['id']}")["server"]
    assert server["status"] == "running" and server["locked"] is False


# --- fault injection -------------------------------------------------------------------------


@pytest.fixture
def faults(cloud):
    cloud.admin("DELETE", "faults")
    yield lambda config: cloud.admin("PUT", "faults", config)
    cloud.admin("DELETE", "faults")


def test_fault_rates_are_reproducible(project, faults):
    config = {"seed": 42, "rates": {"429": 0.2, "502": 0.2, "503": 0.1, "504": 0.1}, "methods": ["GET"]}

    def run():
        faults(config)
        return [project.call("GET", "/ssh_keys") for _ in range(40)]
    first, second = run(), run()
    assert [a.status for a in first] == [a.status for a in second]
    statuses = {a.status for a in first}
    assert statuses >= {200, 429, 502} and statuses <= {200, 429, 502, 503, 504}
    codes = {a.status: a.error.get("code") for a in first if a.status != 200}
    assert {s: codes[s] for s in (429, 502)} == {429: "rate_limit_exceeded", 502: "bad_gateway"}
    # POST is not in "methods": never faulted
    assert project.call("POST", "/placement_groups", {"name": "pg", "type": "spread"}).status == 201
    assert project.cloud.admin("GET", "faults")["injected"]["requests"] > 0


def test_fault_script(project, faults):
    statuses = [429, 409, 502, 503, 504]
    faults({"script": [{"status": s, "method": "POST", "path": "^/v1/ssh_keys$"} for s in statuses]})
    body = {"name": "k", "public_key": ssh_public_key("script")}
    answers = [project.call("POST", "/ssh_keys", body) for _ in statuses]
    assert [(a.status, a.error["code"]) for a in answers] == [
        (429, "rate_limit_exceeded"), (409, "conflict"), (502, "bad_gateway"), (503, "unavailable"),
        (504, "timeout")]
    assert project.ok("GET", "/ssh_keys")["ssh_keys"] == []       # phase "before": nothing applied
    assert project.call("POST", "/ssh_keys", body).status == 201   # the script is spent
    assert project.cloud.admin("GET", "faults")["remaining_script"] == []


def test_fault_after_phase_applies_the_request(project, faults):
    faults({"script": [{"status": 502, "method": "POST", "path": "^/v1/networks$", "phase": "after"}]})
    lost = project.call("POST", "/networks", {"name": "net", "ip_range": "10.0.0.0/16"})
    assert lost.status == 502
    assert [n["name"] for n in project.ok("GET", "/networks")["networks"]] == ["net"]


def test_slow_answers(project, faults):
    faults({"script": [{"delay": 0.6, "path": "^/v1/networks"}]})
    started = time.time()
    assert project.call("GET", "/networks").status == 200
    assert time.time() - started >= 0.6
    faults({"slow": {"rate": 1.0, "seconds": 0.3}})
    started = time.time()
    assert project.call("GET", "/ssh_keys").status == 200
    assert time.time() - started >= 0.3


def test_failing_actions(project, faults):
    faults({"fail_actions": {"commands": {"create_server": 1}}})
    made = project.ok("POST", "/servers", {"name": "doomed", "server_type": "cx23", "image": "debian-12",
                                           "location": "nbg1"})
    failed = project.wait(made["action"])
    assert failed["status"] == "error"
    assert failed["error"]["code"] == "action_failed" and failed["error"]["message"]
    assert failed["finished"] is not None
    follow = project.wait(made["next_actions"][0])
    assert follow["status"] == "error"
    assert project.ok("GET", f"/servers/{made['server']['id']}")["server"]["status"] == "off"
    # only one was asked for: the next create succeeds
    again = project.ok("POST", "/servers", {"name": "fine", "server_type": "cx23", "image": "debian-12",
                                            "location": "nbg1"})
    assert project.wait(again["action"])["status"] == "success"
    assert project.cloud.admin("GET", "faults")["injected"]["actions"] == 1


def test_fault_settings_are_validated(cloud):
    import urllib.error
    with pytest.raises(urllib.error.HTTPError) as caught:
        cloud.admin("PUT", "faults", {"rates": {"418": 0.5}})
    assert caught.value.code == 422
    cloud.admin("DELETE", "faults")


# --- persistence -----------------------------------------------------------------------------


def test_survives_kill_9(tmp_path):
    state = tmp_path / "persist"
    first = start_cloud(state, "--action-time", "0.05", "--rate-limit", "0")
    main = Project(first, first.token, "")
    other = new_project(first, "second")
    try:
        key = main.ok("POST", "/ssh_keys", {"name": "key", "public_key": ssh_public_key("persist"),
                                            "labels": {"keep": "yes"}})["ssh_key"]
        net = main.ok("POST", "/networks", {"name": "net", "ip_range": "10.0.0.0/16", "subnets": [
            {"type": "cloud", "network_zone": "eu-central", "ip_range": "10.0.1.0/24"}]})["network"]
        fw = main.ok("POST", "/firewalls", {"name": "fw", "rules": [
            {"direction": "in", "protocol": "tcp", "port": "22", "source_ips": ["203.0.113.7/32"]}]})["firewall"]
        made = main.ok("POST", "/servers", {"name": "web", "server_type": "cx23", "image": "debian-12",
                                            "location": "nbg1", "ssh_keys": [key["id"]], "networks": [net["id"]],
                                            "firewalls": [{"firewall": fw["id"]}]})
        for action in [made["action"], *made["next_actions"]]:
            main.wait(action)
        protect = main.ok("POST", f"/networks/{net['id']}/actions/change_protection", {"delete": True})["action"]
        main.wait(protect)
        vol = other.ok("POST", "/volumes", {"name": "vol", "size": 10, "location": "nbg1"})["volume"]
        # the last acknowledged write, right before the kill
        last = main.ok("PUT", f"/ssh_keys/{key['id']}", {"name": "key-renamed"})["ssh_key"]
        before = {p: main.ok("GET", f"/{p}")[p] for p in ("servers", "networks", "firewalls", "ssh_keys")}
        # an action still running when the process dies finishes after the restart
        first.admin("PUT", "config", {"action_times": {"create_server": 1.0}})
        pending = other.ok("POST", "/servers", {"name": "pending", "server_type": "cx23", "image": "debian-12",
                                                "location": "fsn1"})
        assert pending["action"]["status"] == "running"
    finally:
        first.stop(signal.SIGKILL)
    assert first.process.returncode == -signal.SIGKILL

    second = start_cloud(state, "--action-time", "0.05", "--rate-limit", "0")
    try:
        assert second.token == first.token
        main = Project(second, second.token, "")
        after = {p: main.ok("GET", f"/{p}")[p] for p in ("servers", "networks", "firewalls", "ssh_keys")}
        assert after == before
        assert after["ssh_keys"][0]["name"] == last["name"] == "key-renamed"
        assert after["servers"][0]["status"] == "running"
        assert after["networks"][0]["protection"] == {"delete": True}
        assert main.ok("GET", f"/actions/{protect['id']}")["action"]["status"] == "success"
        other = Project(second, other.token, other.readonly_token)
        assert other.ok("GET", "/volumes")["volumes"][0]["id"] == vol["id"]
        assert other.call("POST", "/ssh_keys", {"name": "x", "public_key": ssh_public_key("x")},
                          token=other.readonly_token).error["code"] == "token_readonly"
        done = other.wait(pending["action"])
        assert done["status"] == "success"
        assert other.wait(pending["next_actions"][0])["status"] == "success"
        assert other.ok("GET", f"/servers/{pending['server']['id']}")["server"]["status"] == "running"
        # ids go on from where they were
        again = main.ok("POST", "/ssh_keys", {"name": "new", "public_key": ssh_public_key("new")})["ssh_key"]
        assert again["id"] > key["id"]
    finally:
        second.stop()
