# Copyright (c) 2026, autoscale.hetzner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The stack layer without an API: declaration -> desired specs -> plans -> text, plus the
ownership, validation, pruning and lost-answer rules. The end-to-end behaviour against the local
cloud is in tests/integration/test_stack.py."""

from __future__ import annotations

import copy
import os
import sys

import pytest

from ansible_collections.autoscale.hetzner.plugins.module_utils.api import HetznerError
from ansible_collections.autoscale.hetzner.plugins.module_utils.reconcile import (
    Context, Ref, Resolver, Step, execute_step,
)
from ansible_collections.autoscale.hetzner.plugins.module_utils.stack import (
    adopter,
    catalogue_needs,
    check_declaration,
    expand,
    expand_topology,
    harvest_catalogue,
    plan_entries,
    plan_level,
    plan_stack,
    render_plan,
    static_errors,
)
from ansible_collections.autoscale.hetzner.plugins.modules.stack import argument_spec

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", ".."))
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPxVf7L/6fLNm6rfdpaJnp0rD7mA4X61GgFWQSvbD24B test"
EU = [{"id": 1, "name": "fsn1", "network_zone": "eu-central"}, {"id": 2, "name": "nbg1", "network_zone": "eu-central"}]


def server_type(ident, name, cores, deprecated=False):
    deprecation = {"announced": "2025-10-16T00:00:00Z", "unavailable_after": "2025-12-31T23:59:59Z"} \
        if deprecated else None
    return {"id": ident, "name": name, "cores": cores, "memory": 4.0, "disk": 40, "architecture": "x86",
            "cpu_type": "dedicated" if name.startswith("ccx") else "shared", "deprecation": None,
            "locations": [{"id": loc["id"], "name": loc["name"], "deprecation": deprecation,
                           "available": not deprecated, "recommended": False} for loc in EU]}


CATALOGUE = {
    "location": EU,
    "server_type": [server_type(104, "cx22", 2, deprecated=True), server_type(120, "cx23", 2),
                    server_type(109, "cpx22", 2), server_type(110, "cpx32", 4), server_type(130, "ccx23", 4),
                    server_type(131, "ccx33", 8)],
    "image": [{"id": 1001, "name": "debian-12", "type": "system", "architecture": "x86", "deprecated": None}],
    "load_balancer_type": [{"id": 1, "name": "lb11"}],
}


def production_params():
    """inventories/production as the module receives it (templates resolved)."""
    if os.path.join(ROOT, "tests") not in sys.path:
        sys.path.insert(0, os.path.join(ROOT, "tests"))
    from scenarios import scenario  # pylint: disable=import-outside-toplevel
    stack = scenario("production", admin_public_key=KEY)
    params = {"name": stack["name"], "location": stack["location"], "labels": stack["labels"]}
    for key in ("ssh_keys", "networks", "firewalls", "placement_groups", "tiers", "volumes", "load_balancers",
                "floating_ips"):
        params[key] = stack.get(key) or []
    return params


def empty_context():
    objects = {kind: [] for kind in ("ssh_key", "network", "firewall", "placement_group", "server", "volume",
                                     "load_balancer", "floating_ip")}
    objects.update(copy.deepcopy(CATALOGUE))
    return Context(objects)


def created_state(stack_name):
    """An existing production stack as the API lists it (only what the planners compare)."""
    params = production_params()
    desired = expand_topology(params)
    ctx = empty_context()

    def labels(spec):
        return dict(spec["labels"])

    ctx.add("network", {"id": 10, "name": "autoscale-prod-network", "ip_range": "10.0.0.0/16",
                        "labels": labels(desired["network"][0]), "protection": {"delete": False},
                        "expose_routes_to_vswitch": False, "routes": [],
                        "subnets": [dict(s, gateway="10.0.0.1", vswitch_id=None) for s in desired["network"][0]["subnets"]]})
    for i, spec in enumerate(desired["server"]):
        stype = next(t for t in CATALOGUE["server_type"] if t["name"] == spec["server_type"])
        ctx.add("server", {
            "id": 100 + i, "name": spec["name"], "status": "running", "server_type": stype, "location": EU[1],
            "image": CATALOGUE["image"][0], "labels": labels(spec), "backup_window": None,
            "public_net": {"ipv4": {"ip": "203.0.113.%d" % i}, "ipv6": {"ip": "2001:db8::/64"}, "firewalls": []},
            "private_net": [{"network": 10, "ip": spec["networks"][0]["ip"], "alias_ips": []}],
            "placement_group": {"id": 300, "name": spec["placement_group"]} if spec.get("placement_group") else None,
            "protection": {"delete": bool(spec.get("delete_protection")), "rebuild": bool(spec.get("delete_protection"))}})
    return params, ctx


def test_expand_labels_every_resource_and_targets_the_web_tier_by_selector():
    desired = expand_topology(production_params())
    assert [s["name"] for s in desired["server"]] == [
        "autoscale-prod-web-1", "autoscale-prod-web-2", "autoscale-prod-web-3", "autoscale-prod-app-1",
        "autoscale-prod-app-2", "autoscale-prod-db-1", "autoscale-prod-db-2", "autoscale-prod-mon-1"]
    for kind, specs in desired.items():
        for spec in specs:
            assert spec["labels"]["managed-by"] == "autoscale.hetzner.stack", kind
            assert spec["labels"]["stack"] == "autoscale-prod", kind
    db1 = next(s for s in desired["server"] if s["name"] == "autoscale-prod-db-1")
    assert db1["labels"]["tier"] == "db" and db1["labels"]["role"] == "primary"
    assert db1["networks"] == [{"network": "autoscale-prod-network", "ip": "10.0.3.10"}]
    assert db1["delete_protection"] is True and db1["rebuild_protection"] is True
    assert desired["load_balancer"][0]["targets"] == [{
        "type": "label_selector", "use_private_ip": True,
        "label_selector": "managed-by=autoscale.hetzner.stack,stack=autoscale-prod,tier=web"}]


def test_empty_project_plans_every_creation_in_dependency_order():
    stack_plan = plan_stack("autoscale-prod", expand_topology(production_params()), empty_context())
    assert stack_plan.errors == []
    entries = plan_entries(stack_plan)
    assert {e["action"] for e in entries} == {"create"}
    kinds = [e["type"] for e in entries]
    assert kinds.index("server") > kinds.index("network") and kinds.index("volume") > kinds.index("server")
    assert len(entries) == 18
    text = render_plan("autoscale-prod", entries)
    assert text.startswith("Stack autoscale-prod: 18 to create, 0 to update, 0 to delete")
    assert "+ load_balancer autoscale-prod-web-lb" in text


def test_levels_put_selector_targeted_load_balancers_beside_the_servers():
    stack_plan = plan_stack("autoscale-prod", expand_topology(production_params()), empty_context())
    levels = {(p.kind, p.name): plan_level(p) for p in stack_plan.plans}
    assert levels[("network", "autoscale-prod-network")] == 0
    assert levels[("server", "autoscale-prod-web-1")] == 1
    assert levels[("load_balancer", "autoscale-prod-web-lb")] == 1
    assert levels[("volume", "autoscale-prod-db-1-data")] == 2


def test_existing_stack_needs_no_catalogue_and_plans_nothing():
    params, ctx = created_state("autoscale-prod")
    params = dict(params, volumes=[], load_balancers=[], ssh_keys=[], firewalls=[])
    for tier in params["tiers"]:
        tier["firewalls"] = []
    desired = expand_topology(params)
    for spec in desired["placement_group"]:
        ctx.add("placement_group", {"id": 300 + len(ctx.all("placement_group")), "name": spec["name"],
                                    "type": "spread", "labels": dict(spec["labels"])})
    # what the lists embed (server types, locations, images) is enough to plan an unchanged stack
    listed_only = Context({kind: ctx.all(kind) for kind in ("network", "server", "placement_group")})
    harvest_catalogue(listed_only)
    assert catalogue_needs(desired, listed_only) == {}
    stack_plan = plan_stack("autoscale-prod", desired, listed_only)
    assert stack_plan.errors == []
    assert [(p.kind, p.name, p.to_dict()["phases"]) for p in stack_plan.plans if p.changed] == []


def test_expert_validation_collects_every_problem_before_anything_runs():
    params = production_params()
    params["tiers"][0]["server_type"] = "cx22"
    params["tiers"][1]["servers"][0]["ip"] = "10.0.9.10"
    params["tiers"][2]["servers"][1]["ip"] = "10.0.3.10"
    params["ssh_keys"][0]["public_key"] = "not a key"
    declaration_errors, _warnings = check_declaration(params)
    stack_plan = plan_stack("autoscale-prod", expand_topology(params), empty_context())
    text = "\n".join(declaration_errors + static_errors(expand(params)) + stack_plan.errors)
    assert "cx22" in text and "cx23" in text
    assert "10.0.9.10" in text and "outside every subnet" in text
    assert "10.0.3.10" in text and "also declared" in text
    assert "public_key" in text


def test_names_taken_by_foreign_resources_are_refused():
    ctx = empty_context()
    ctx.add("network", {"id": 9, "name": "autoscale-prod-network", "ip_range": "10.0.0.0/16", "labels": {},
                        "subnets": [], "routes": []})
    stack_plan = plan_stack("autoscale-prod", expand_topology(production_params()), ctx)
    assert any("not managed by stack 'autoscale-prod'" in e for e in stack_plan.errors)
    assert not any(p.kind == "network" for p in stack_plan.plans)


def test_prune_deletes_only_owned_undeclared_resources_and_honours_protection():
    params, ctx = created_state("autoscale-prod")
    ctx.add("server", {"id": 999, "name": "someone-elses", "labels": {"stack": "other"}, "status": "running"})
    params["tiers"] = [t for t in params["tiers"] if t["name"] != "app"]
    desired = expand_topology(params)
    without_prune = plan_stack("autoscale-prod", desired, ctx, prune=False)
    assert without_prune.deletions == []
    pruned = plan_stack("autoscale-prod", desired, ctx, prune=True)
    assert sorted(p.name for p in pruned.deletions) == ["autoscale-prod-app-1", "autoscale-prod-app-2"]
    params["tiers"] = []
    everything = plan_stack("autoscale-prod", expand_topology(params), ctx, prune=True)
    assert any("autoscale-prod-db-1" in e and "delete-protected" in e for e in everything.errors)
    assert "someone-elses" not in [p.name for p in everything.deletions]


class FakeApi:
    def __init__(self, error, existing=None, running=()):
        self.error = error
        self.existing = existing
        self.running = list(running)
        self.calls = []

    def create(self, kind, body):
        self.calls.append(("create", kind))
        raise self.error

    def delete(self, kind, ident):
        raise self.error

    def find(self, kind, name):
        self.calls.append(("find", kind, name))
        return self.existing

    def running_actions(self, kind, ident):
        self.calls.append(("running", kind, ident))
        return self.running


def test_a_lost_create_answer_adopts_our_own_object_and_waits_for_its_actions():
    mine = {"id": 5, "name": "web-1", "labels": {"managed-by": "autoscale.hetzner.stack", "stack": "s"}}
    api = FakeApi(HetznerError("taken", code="uniqueness_error"), existing=mine, running=[{"id": 77}])
    resolver = Resolver(api, Context())
    step = Step("create", "server", Ref("server", "web-1"), body={"name": "web-1"})
    assert execute_step(api, step, resolver, adopt=adopter(api, "s")) == [{"id": 77}]
    assert resolver.id_of(Ref("server", "web-1")) == 5
    foreign = dict(mine, labels={})
    api = FakeApi(HetznerError("taken", code="uniqueness_error"), existing=foreign)
    with pytest.raises(HetznerError):
        execute_step(api, step, Resolver(api, Context()), adopt=adopter(api, "s"))
    api = FakeApi(HetznerError("gone", code="not_found"))
    assert execute_step(api, Step("delete", "volume", 3), Resolver(api, Context())) == []


def test_the_spec_is_complete_and_shared_with_the_resource_modules():
    spec = argument_spec()
    assert spec["api_token"]["no_log"] is True
    assert spec["prune"]["default"] is False and spec["prune_max"]["default"] == 5
    rules = spec["firewalls"]["options"]["rules"]["options"]
    from ansible_collections.autoscale.hetzner.plugins.modules import firewall, load_balancer
    assert rules == firewall.ARGUMENT_SPEC["rules"]["options"]
    assert spec["load_balancers"]["options"]["services"]["options"] == load_balancer.ARGUMENT_SPEC["services"]["options"]
