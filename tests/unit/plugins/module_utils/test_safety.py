# Copyright (c) 2026, autoscale.hetzner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The safety layer without an API: path-aware option errors, the transport's retries, the lazy and
thread-safe Context, waiting for locked resources, the stack lock, prune guards, failure isolation."""

from __future__ import annotations

import copy
import threading

import pytest
from hcloud import APIException
from requests.exceptions import ConnectionError as RequestsConnectionError

from ansible_collections.autoscale.hetzner.plugins.module_utils import api as api_mod
from ansible_collections.autoscale.hetzner.plugins.module_utils import reconcile
from ansible_collections.autoscale.hetzner.plugins.module_utils import specs
from ansible_collections.autoscale.hetzner.plugins.module_utils import stack as stack_mod
from ansible_collections.autoscale.hetzner.plugins.module_utils.api import HetznerApi, HetznerError, Transport
from ansible_collections.autoscale.hetzner.plugins.module_utils.planners import plan
from ansible_collections.autoscale.hetzner.plugins.module_utils.reconcile import (
    Context, Resolver, Step, execute_step,
)
from ansible_collections.autoscale.hetzner.plugins.module_utils.stack import (
    ApplyReport, Expansion, StackLock, apply_plans, check_declaration, expand, owned_by, plan_stack,
)


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch):
    monkeypatch.setattr(api_mod.time, "sleep", lambda _s: None)
    monkeypatch.setattr(reconcile.time, "sleep", lambda _s: None)
    monkeypatch.setattr(stack_mod.time, "sleep", lambda _s: None)


# --------------------------------------------------------------------------- option specs


def test_nested_problems_name_the_element_the_key_and_the_fix():
    declaration = {"name": "s", "tier": [], "tiers": [
        {"name": "web", "servers": [{"name": "a"}, {"name": "b", "ipp": "10.0.1.5", "state": "runing"}, "c"]}],
        "networks": [{"name": "n", "ip_range": "10.0.0.0/16", "subnets": [{"ip_range": "10.0.1.0/24", "zone": "x"}]}],
        "volumes": [{"name": "v", "size": "big"}]}
    _validated, problems = specs.validate(specs.STACK_DECLARATION, declaration)
    text = "\n".join(problems)
    assert "tier: unknown key; did you mean tiers?" in text
    assert "tiers[0].servers[1].ipp: unknown key; did you mean ip?" in text
    assert "tiers[0].servers[1].state: 'runing' is not allowed; use one of started, stopped, present" in text
    assert "tiers[0].servers[2]: must be a mapping" in text
    assert "networks[0].subnets[0].zone: unknown key; did you mean network_zone?" in text
    assert "volumes[0].size: must be an integer, got a string 'big'" in text


def test_valid_declarations_get_their_nested_defaults():
    validated, problems = specs.validate(specs.STACK_DECLARATION, {
        "name": "s", "firewalls": [{"name": "f", "rules": [{"protocol": "tcp", "port": 22, "source_ips": "1.2.3.4/32"}]}]})
    assert problems == []
    rule = validated["firewalls"][0]["rules"][0]
    assert rule["direction"] == "in" and rule["port"] == "22" and rule["source_ips"] == ["1.2.3.4/32"]


def test_static_checks_catch_what_the_api_would_refuse():
    errors = plan("firewall", {"name": "f", "rules": [
        {"direction": "in", "protocol": "tcp", "port": "70000", "source_ips": ["300.1.1.0/24"]},
        {"direction": "in", "protocol": "icmp", "port": "1", "source_ips": ["0.0.0.0/0"]},
        {"direction": "out", "protocol": "udp", "port": "53", "source_ips": ["0.0.0.0/0"]}]}, None, Context()).errors
    text = "\n".join(errors)
    assert "rules[0].port: 70000 is out of range" in text
    assert "rules[0].source_ips[0]: '300.1.1.0/24' is not an IP address or CIDR range" in text
    assert "rules[1].port: protocol icmp has no ports" in text
    assert "rules[2].destination_ips: an outbound rule needs destination_ips" in text
    assert "rules[2].source_ips: not allowed on an outbound rule" in text
    lb = plan("load_balancer", {"name": "lb", "services": [
        {"protocol": "http", "listen_port": 80, "health_check": {"interval": 5, "timeout": 9}},
        {"protocol": "tcp", "listen_port": 80}]}, None, Context()).errors
    assert any("services[0].health_check.timeout: 9s is longer than the interval" in e for e in lb)
    assert any("services[1].listen_port: port 80 is already used by services[0]" in e for e in lb)
    assert plan("volume", {"name": "v", "size": 5}, None, Context()).errors == [
        "size: 5 is out of range; a volume has 10 to 10240"]
    network = plan("network", {"name": "n", "ip_range": "10.0.0.0/16", "subnets": [
        {"ip_range": "10.0.1.5/24", "type": "cloud"}, {"ip_range": "10.0.2.0/24", "type": "vswitch"}]},
        None, Context()).errors
    assert network == ["subnets[0].ip_range: 10.0.1.5/24 has host bits set; the network is 10.0.1.0/24",
                       "subnets[1].vswitch_id: required for a vswitch subnet; give the ID of the Robot vSwitch"]


# --------------------------------------------------------------------------- transport


class Flaky:
    """Fails the first ``failures`` requests with ``error``, then answers ``{"ok": n}``."""

    def __init__(self, error, failures):
        self.error = error
        self.failures = failures
        self.calls = 0

    def request(self, method, url, **kwargs):
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return {"ok": self.calls}


@pytest.mark.parametrize("error", [APIException(code="unavailable", message="503", details=None),
                                   RequestsConnectionError("refused")])
def test_503_and_refused_connections_are_retried_and_counted(error):
    client = Flaky(error, 3)
    api = HetznerApi(Transport(lambda: client))
    assert api.request("GET", "/servers") == {"ok": 4}
    assert api.requests == 4


def test_retries_end_and_other_errors_are_not_retried():
    api = HetznerApi(Transport(lambda: Flaky(APIException(code="unavailable", message="503", details=None), 99),
                               retries=2))
    with pytest.raises(HetznerError) as caught:
        api.request("GET", "/servers")
    assert caught.value.code == "unavailable" and api.requests == 3
    client = Flaky(APIException(code="invalid_input", message="bad", details=None), 1)
    api = HetznerApi(Transport(lambda: client))
    with pytest.raises(HetznerError):
        api.request("POST", "/servers", body={})
    assert client.calls == 1


def test_one_client_per_thread():
    made = []
    transport = Transport(lambda: made.append(object()) or made[-1])
    clients = []
    threads = [threading.Thread(target=lambda: clients.append(transport.client())) for _thread in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(map(id, clients))) == 4 and transport.client() is transport.client()


def test_list_fetches_the_other_pages_at_once_when_page_one_tells_how_many():
    pages = []

    class Paged:
        def request(self, method, url, params=None, **kwargs):
            pages.append(params["page"])
            return {"servers": [{"id": params["page"]}],
                    "meta": {"pagination": {"page": params["page"], "last_page": 4, "next_page": None}}}

    assert [s["id"] for s in HetznerApi(Paged(), parallel=3).list("server")] == [1, 2, 3, 4]
    assert sorted(pages) == [1, 2, 3, 4]


# --------------------------------------------------------------------------- context


class CountingLoader:
    def __init__(self, objects):
        self.objects = objects
        self.calls = []

    def list(self, kind):
        self.calls.append(("list", kind))
        return list(self.objects.get(kind, []))

    def by_name(self, kind, name):
        self.calls.append(("name", kind, name))
        return next((o for o in self.objects.get(kind, []) if o["name"] == name), None)

    def by_id(self, kind, ident):
        self.calls.append(("id", kind, ident))
        return next((o for o in self.objects.get(kind, []) if o["id"] == ident), None)

    def images(self, name):
        return []


def test_a_lazy_context_reads_each_object_once_and_lists_when_many_are_needed():
    loader = CountingLoader({"network": [{"id": i, "name": "n%d" % i} for i in range(10)],
                             "location": [{"id": 1, "name": "fsn1"}]})
    ctx = Context(loader=loader)
    assert ctx.by_name("network", "n1")["id"] == 1
    assert ctx.name_of("network", 1) == "n1"          # known already: no request
    assert ctx.by_name("network", "ghost") is None
    assert ctx.by_name("network", "ghost") is None     # a miss is remembered
    assert loader.calls == [("name", "network", "n1"), ("name", "network", "ghost")]
    for ident in (2, 3, 4, 5):
        ctx.by_id("network", ident)
    assert loader.calls[-1] == ("list", "network")     # the fourth miss lists the kind instead
    ctx.by_id("network", 9)
    assert loader.calls[-1] == ("list", "network")
    assert ctx.lookup("location", "fsn1")["id"] == 1 and ("list", "location") in loader.calls
    assert Context({"network": []}).by_name("network", "n1") is None  # no loader: pure data


def test_context_is_safe_to_share_between_threads():
    ctx = Context({"server": []})

    def record(start):
        for ident in range(start, start + 200):
            ctx.add("server", {"id": ident, "name": "s%d" % ident})
            ctx.by_name("server", "s%d" % ident)

    threads = [threading.Thread(target=record, args=(n * 1000,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(ctx.all("server")) == 1600


# --------------------------------------------------------------------------- locked resources


class LockedOnce:
    """An API whose first action answers `locked` while an action of an earlier run is running."""

    def __init__(self):
        self.calls = []
        self.locked = True

    def action(self, kind, ident, command, body=None):
        self.calls.append(("action", kind, ident, command))
        if self.locked:
            raise HetznerError("server 5 is locked", code="locked")
        return [{"id": 99, "status": "running"}]

    def running_actions(self, kind, ident):
        self.calls.append(("running", kind, ident))
        return [{"id": 7, "status": "running"}] if kind == "server" else []

    def wait(self, actions, timeout=0, raise_on_error=True):
        self.calls.append(("wait", [a["id"] for a in actions]))
        self.locked = False
        return actions


def test_a_locked_resource_is_changed_once_its_running_actions_are_done():
    api = LockedOnce()
    step = Step("action", "server", 5, "attach_to_network", {"network": 3, "ip": "10.0.1.10"})
    assert execute_step(api, step, Resolver(api, Context())) == [{"id": 99, "status": "running"}]
    assert api.calls == [("action", "server", 5, "attach_to_network"), ("running", "network", 3),
                         ("running", "server", 5), ("wait", [7]), ("action", "server", 5, "attach_to_network")]


# --------------------------------------------------------------------------- the stack lock


class PlacementGroups:
    """Just enough of the API for StackLock: unique names, find, delete, update."""

    def __init__(self):
        self.groups = {}
        self.next_id = 1

    def create(self, kind, body):
        if body["name"] in {g["name"] for g in self.groups.values()}:
            raise HetznerError("name is already used", code="uniqueness_error")
        group = dict(body, id=self.next_id)
        self.groups[self.next_id] = group
        self.next_id += 1
        return {"placement_group": group}

    def find(self, kind, name):
        return next((g for g in self.groups.values() if g["name"] == name), None)

    def delete(self, kind, ident):
        if self.groups.pop(ident, None) is None:
            raise HetznerError("gone", code="not_found")

    def update(self, kind, ident, body):
        self.groups[ident].update(body)


def test_the_lock_serializes_runs_and_takes_over_only_from_dead_holders():
    api = PlacementGroups()
    first = StackLock(api, "prod", ttl=90).acquire(wait=0)
    assert [g["name"] for g in api.groups.values()] == ["autoscale-stack-lock.prod"]
    second = StackLock(api, "prod")
    with pytest.raises(HetznerError) as caught:
        second.acquire(wait=0)
    assert caught.value.code == "stack_locked" and "another run is in progress on stack prod" in caught.value.message
    assert "Nothing was changed" in caught.value.message
    first.release()
    assert api.groups == {}
    second.acquire(wait=0)
    second.release()

    # a holder on this machine whose process is gone (kill -9): taken over at once
    dead = StackLock(api, "prod")
    dead.acquire(wait=0)
    dead._stop.set()
    api.groups[dead.obj["id"]]["labels"]["pid"] = "999999999"
    third = StackLock(api, "prod").acquire(wait=0)
    assert third.contended and "no longer exists" in third.taken_over[0]
    third.release()

    # a holder on another machine: only once its lock expired
    other = StackLock(api, "prod").acquire(wait=0)
    other._stop.set()
    api.groups[other.obj["id"]]["labels"].update(machine="elsewhere", expires="1")
    fourth = StackLock(api, "prod").acquire(wait=0)
    assert "expired" in fourth.taken_over[0]
    fourth.release()


def test_a_lost_answer_of_the_lock_create_is_our_own_lock():
    api = PlacementGroups()
    lock = StackLock(api, "prod")
    api.create("placement_group", {"name": lock.name, "labels": lock.labels()})  # went through, answer lost
    lock.acquire(wait=0)
    assert not lock.contended
    lock.release()
    assert api.groups == {}


# --------------------------------------------------------------------------- declaration and prune guards


def declaration(**extra):
    base = {"name": "prod", "location": "nbg1", "labels": {},
            "networks": [{"name": "net", "ip_range": "10.0.0.0/16", "subnets": [{"ip_range": "10.0.1.0/24"}]}],
            "tiers": [{"name": "web", "server_type": "cx23", "image": "debian-12", "network": "net",
                       "servers": [{"name": "web-1", "ip": "10.0.1.10"}, {"name": "web-2", "ip": "10.0.1.11"}]},
                      {"name": "db", "server_type": "cx23", "image": "debian-12",
                       "servers": [{"name": "db-1"}]}],
            "volumes": [], "load_balancers": [], "ssh_keys": [], "firewalls": [], "placement_groups": [],
            "floating_ips": []}
    base.update(extra)
    return base


def test_declaration_checks_name_paths():
    params = declaration(labels={"stack": "x"}, volumes=[{"name": "v", "size": 10, "server": "db-1",
                                                         "location": "fsn1"}],
                         load_balancers=[{"name": "lb", "load_balancer_type": "lb11",
                                          "targets": [{"tier": "webb"}, {"tier": "web", "server": "web-1"}]}])
    errors, warnings = check_declaration(params)
    text = "\n".join(errors)
    assert "labels.stack: 'stack' is a label the stack sets itself" in text
    assert "volumes[0].location: fsn1, but its server 'db-1' is in nbg1" in text
    assert "load_balancers[0].targets[0].tier: this stack has no tier 'webb'; did you mean web?" in text
    assert "load_balancers[0].targets[1]: give exactly one of tier, server or label_selector" in text
    assert warnings == []
    empty = {"name": "prod"}
    assert check_declaration(empty)[1] and not check_declaration(empty)[0]
    assert "use state: absent" in check_declaration(empty, prune=True)[0][0]


def test_planner_messages_point_into_the_declaration():
    expansion = expand(declaration())
    assert expansion.locate("server", "web-1", "networks[0].ip: 10.0.9.1 is outside") == \
        "tiers[0].servers[0].ip: 10.0.9.1 is outside"
    assert expansion.locate("server", "web-1", "server_type: cx22 cannot be ordered") == \
        "tiers[0].server_type: cx22 cannot be ordered"
    assert expansion.locate("server", "db-1", "location: unknown location") == "location: unknown location"
    assert expansion.locate("server", "web-1", "a sentence without option") == \
        "tiers[0].servers[0] (server web-1): a sentence without option"
    assert isinstance(expansion, Expansion)


def owned_servers(params, names_tiers):
    ctx = Context({kind: [] for kind in stack_mod.KINDS})
    for ident, (name, tier) in enumerate(names_tiers):
        ctx.add("server", {"id": ident + 1, "name": name, "status": "running",
                           "labels": {"managed-by": "autoscale.hetzner.stack", "stack": params["name"], "tier": tier}})
    return ctx


def test_prune_deletes_at_most_prune_max_and_never_a_whole_tier_unless_told():
    params = declaration()
    ctx = owned_servers(params, [("web-1", "web"), ("web-2", "web"), ("db-1", "db"), ("app-1", "app"),
                                 ("app-2", "app"), ("old-1", "web")])
    desired = expand(params).desired
    kept = plan_stack("prod", desired, ctx, prune=False, prune_max=5)
    assert kept.undeclared == [("server", "app-1"), ("server", "app-2"), ("server", "old-1")]
    assert kept.deletions == []
    refused = plan_stack("prod", desired, ctx, prune=True, prune_max=5)
    assert ["prune: tier 'app' would lose all its servers (app-1, app-2); if the tier is meant to go, add it to "
            "prune_tiers: [app]"] == [e for e in refused.errors if e.startswith("prune:")]
    allowed = plan_stack("prod", desired, ctx, prune=True, prune_max=5, prune_tiers=["app"])
    assert [e for e in allowed.errors if e.startswith("prune:")] == []
    assert sorted(p.name for p in allowed.deletions) == ["app-1", "app-2", "old-1"]
    too_many = plan_stack("prod", desired, ctx, prune=True, prune_max=2, prune_tiers=["app"])
    assert any("3 resources would be deleted, more than prune_max (2)" in e for e in too_many.errors)
    teardown = plan_stack("prod", {k: [] for k in desired}, ctx, prune=True, prune_max=0, teardown=True)
    assert not [e for e in teardown.errors if e.startswith("prune:")] and len(teardown.deletions) == 6


def test_a_server_that_is_off_is_powered_on():
    params = declaration()
    spec = expand(params).desired["server"][2]
    assert spec["state"] == "started"
    actual = {"id": 7, "name": "db-1", "status": "off", "labels": spec["labels"], "server_type": {"name": "cx23"},
              "image": {"name": "debian-12"}, "location": {"id": 2, "name": "nbg1", "network_zone": "eu-central"},
              "public_net": {"ipv4": {"ip": "1.2.3.4"}, "ipv6": {"ip": "2001:db8::/64"}, "firewalls": []},
              "private_net": [], "protection": {"delete": False, "rebuild": False}}
    ctx = Context({"server": [actual], "location": [actual["location"]], "firewall": [],
                   "server_type": [{"id": 1, "name": "cx23"}]})
    result = plan("server", spec, actual, ctx)
    assert [s.command for s in result.steps()] == ["poweron"]


# --------------------------------------------------------------------------- failure isolation


class OneFailingAction:
    """create answers, actions of ``failing`` finish with an error; everything is logged."""

    def __init__(self, failing):
        self.failing = failing
        self.log = []
        self.next_id = 100

    def create(self, kind, body):
        self.log.append(("create", kind, body["name"]))
        self.next_id += 1
        obj = {"id": self.next_id, "name": body["name"], "labels": body.get("labels", {})}
        return {kind: obj, "action": {"id": self.next_id, "command": "create_" + kind, "status": "running",
                                      "_name": body["name"]}}

    def action(self, kind, ident, command, body=None):
        self.log.append(("action", kind, ident, command))
        return []

    def running_actions(self, kind, ident):
        return []

    def wait(self, actions, timeout=0, raise_on_error=True):
        done = []
        for action in actions:
            failed = action.get("_name") in self.failing
            done.append(dict(action, status="error" if failed else "success",
                             error={"code": "action_failed", "message": "Action failed"} if failed else None))
        return done


def test_a_failed_action_stops_its_resource_and_what_depends_on_it_only():
    params = declaration(networks=[], volumes=[{"name": "data", "size": 10, "server": "web-1"}])
    for tier in params["tiers"]:
        tier.pop("network", None)
        for server in tier["servers"]:
            server.pop("ip", None)
    desired = expand(params).desired
    ctx = Context(copy.deepcopy({kind: [] for kind in stack_mod.KINDS}))
    ctx.objects.update({"location": [{"id": 2, "name": "nbg1", "network_zone": "eu-central"}],
                        "server_type": [{"id": 1, "name": "cx23", "architecture": "x86", "cores": 2,
                                         "locations": [{"name": "nbg1", "available": True}]}],
                        "image": [{"id": 9, "name": "debian-12", "architecture": "x86", "type": "system"}]})
    stack_plan = plan_stack("prod", desired, ctx)
    assert stack_plan.errors == []
    api = OneFailingAction({"web-1"})
    report = ApplyReport()
    resolver = Resolver(api, ctx)
    servers = [p for p in stack_plan.plans if p.kind == "server"]
    volumes = [p for p in stack_plan.plans if p.kind == "volume"]
    apply_plans(api, servers, resolver, report, stack_name="prod")
    apply_plans(api, volumes, resolver, report, stack_name="prod")
    assert list(report.failed) == [("server", "web-1")]
    assert report.skipped == [("volume", "data", ("server", "web-1"))]
    assert [entry for entry in api.log if entry[0] == "create"] == [
        ("create", "server", "web-1"), ("create", "server", "web-2"), ("create", "server", "db-1")]
    assert "server 'web-1': create_server failed: Action failed (action_failed)" in report.messages
    assert owned_by({"labels": desired["server"][0]["labels"]}, "prod")


def test_after_an_apply_only_what_actions_changed_is_read_again():
    params = declaration(volumes=[{"name": "data", "size": 10, "server": "db-1"}])
    desired = expand(params).desired
    ctx = Context({kind: [] for kind in stack_mod.KINDS})
    ctx.objects.update({"location": [{"id": 2, "name": "nbg1", "network_zone": "eu-central"}],
                        "server_type": [{"id": 1, "name": "cx23", "architecture": "x86", "cores": 2,
                                         "locations": [{"name": "nbg1", "available": True}]}],
                        "image": [{"id": 9, "name": "debian-12", "architecture": "x86", "type": "system"}]})
    stack_plan = plan_stack("prod", desired, ctx)
    kept = stack_mod.unaffected(ctx, stack_plan, ApplyReport())
    # networks are created whole; servers, volumes (attach follows) and firewalls (servers apply them) are read again
    assert sorted(kept.objects) == ["floating_ip", "image", "load_balancer", "location", "network",
                                    "placement_group", "server_type", "ssh_key"]
    report = ApplyReport()
    report.failed[("network", "net")] = "network 'net': failed"
    assert "network" not in stack_mod.unaffected(ctx, stack_plan, report).objects


def test_polls_grow_apart_until_something_finishes_then_look_again_soon(monkeypatch):
    sleeps = []
    monkeypatch.setattr(api_mod.time, "sleep", sleeps.append)
    polls = []

    class Actions:
        def request(self, method, url, params=None, **kwargs):
            polls.append(list(params["id"]))
            number = len(polls)
            return {"actions": [{"id": 1, "status": "success" if number >= 3 else "running"},
                                {"id": 2, "status": "success" if number >= 4 else "running"}][:len(params["id"])]
                    if params["id"] == [1, 2] else [{"id": 2, "status": "success" if number >= 4 else "running"}]}

    api = HetznerApi(Actions(), poll_interval=0.5, poll_max_interval=2.0)
    api.wait([{"id": 1, "status": "running"}, {"id": 2, "status": "running"}])
    assert sleeps == [0.5, 0.75, 1.125, 0.5]  # create done at poll 3: its successor is looked for 0.5 s later
