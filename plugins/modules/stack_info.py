#!/usr/bin/python
# Copyright: (c) 2026, autoscale.hetzner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: stack_info
short_description: The status of a stack declared for M(autoscale.hetzner.stack) - what exists, its cost, drift and health
version_added: 0.2.0
description:
  - Reads the project once (the same list requests and C(GET /pricing) as M(autoscale.hetzner.stack)) and plans the
    declaration exactly as M(autoscale.hetzner.stack) does in check mode, without changing anything.
  - Returns every resource of the stack with its state, details and monthly cost (from C(GET /pricing), the same code
    that prices the stack's plan), the drift and the health; C(playbooks/status.yml) turns it into tables and a report
    with a diagram.
  - Drift is the plan itself. C(missing) is a declared resource that the plan would create, C(changed) one it would
    update (with the fields), C(undeclared) a resource carrying the stack's labels that the declaration no longer
    has, C(outside) a resource of the project without any stack's labels (a server created by hand, for example).
    Resources of other stacks are not this stack's drift and are left out.
  - Health is what the API says. A server is healthy when its status is C(running), a load balancer target when its
    health check reports C(healthy) on every service. With O(prometheus), also every service Prometheus scrapes
    (each exporter on each server) is up.
author:
  - autoscale.hetzner contributors (@autoscale)
extends_documentation_fragment:
  - autoscale.hetzner.hcloud
attributes:
  check_mode:
    support: full
    description: Reads only, in check mode too.
options:
  declaration:
    description:
      - The stack's declaration, the same value M(autoscale.hetzner.stack) gets in O(autoscale.hetzner.stack#module:declaration)
        (C(hetzner_stack) of the inventory's group_vars). It is checked the same way; an invalid declaration fails with
        every problem and the path of its key.
    type: dict
    required: true
  prometheus:
    description:
      - What Prometheus answered about the stack's services, asked on the monitoring host (Prometheus listens on its
        private address only; C(playbooks/status.yml) asks it there). RV(health) (its C(prometheus)) turns it into one row
        per server and service; when it is not given, or gives O(prometheus.problem), it says
        there is no service health and why.
    type: dict
    suboptions:
      host:
        description: The monitoring host Prometheus was asked on.
        type: str
      url:
        description: Prometheus's address there (C(http://10.0.0.2:9090)).
        type: str
      targets:
        description: The JSON answer of C(GET /api/v1/targets?state=active).
        type: dict
      alerts:
        description: The JSON answer of C(GET /api/v1/alerts).
        type: dict
      problem:
        description: Why there is no answer (no monitoring host, the host unreachable, Prometheus not answering).
        type: str
"""

EXAMPLES = r"""
- name: Status of the stack of this inventory
  autoscale.hetzner.stack_info:
    declaration: "{{ hetzner_stack }}"
  register: status

- name: Fail when anything drifted
  ansible.builtin.assert:
    that: status.in_sync and status.drift.outside | length == 0
"""

RETURN = r"""
stack:
  description: Name of the stack.
  returned: success
  type: str
  sample: autoscale-min
resources:
  description:
    - One row per resource of the stack, per declared resource that is missing and per resource outside any stack,
      ordered servers, networks, volumes, load balancers, firewalls, floating IPs, placement groups, SSH keys.
  returned: success
  type: list
  elements: dict
  contains:
    type:
      description: Resource type (V(server), V(network), ...).
      type: str
    name:
      description: Name.
      type: str
    id:
      description: ID, null for a missing resource.
      type: int
    state:
      description: What the API says (a server's status, V(assigned) for a floating IP, ...), V(missing) when it does not exist.
      type: str
    tier:
      description: A server's tier (its C(tier) label).
      type: str
    details:
      description: Type, location, addresses, size, ports, as one line.
      type: str
    monthly:
      description: Monthly cost of the resource (C(net) and C(gross), decimal strings), null when a price is missing.
      type: dict
    drift:
      description: Null when it matches the declaration, else V(missing), V(changed), V(undeclared) or V(outside).
      type: str
    changes:
      description: For V(changed), the fields with C(before) and C(after).
      type: dict
    links:
      description: The resources it uses, C([type, name, label]) (the diagram's edges).
      type: list
      elements: list
  sample: [{"type": "server", "name": "autoscale-min-web-1", "id": 3, "state": "running", "tier": "web",
            "details": "cx23 in nbg1, 198.18.0.5", "monthly": {"net": "4.49", "gross": "5.3431"}, "drift": null,
            "changes": {}, "links": [["firewall", "autoscale-min-web", ""]]}]
drift:
  description: The rows with drift, by kind (V(missing), V(changed) with C(changes), V(undeclared), V(outside)).
  returned: success
  type: dict
  sample: {"missing": [], "changed": [], "undeclared": [], "outside": [{"type": "server", "name": "by-hand"}]}
in_sync:
  description: Nothing missing, changed or undeclared (resources outside any stack do not count).
  returned: success
  type: bool
health:
  description:
    - C(servers) (name, status, tier, healthy); C(targets) (load_balancer, target, listen_port, status, healthy), the
      health check of each load balancer target per service; C(prometheus), the services Prometheus scrapes;
      C(healthy), all of them healthy (firing alerts do not count, they are listed); C(run_in_progress), a stack run
      holds the lock.
    - C(prometheus) is C(available) (false with C(problem) saying why, for example no monitoring host in the
      inventory), C(host) and C(url) it was asked at, C(services) one row per active target (C(server), its
      C(instance) label; C(service), its C(job); C(health) V(up), V(down) or V(unknown); C(up); C(last_error);
      C(last_scrape); C(scrape_url); C(tier)), C(down) the services not up as C(job/instance), C(alerts) the firing
      and pending alerts (C(name), C(state), C(severity), C(instance), C(since), C(summary)), C(firing) their
      number, C(healthy) every service up.
  returned: success
  type: dict
  sample: {"servers": [{"name": "autoscale-min-db-1", "status": "running", "tier": "db", "healthy": true}],
           "targets": [], "healthy": true, "run_in_progress": false,
           "prometheus": {"available": true, "host": "autoscale-min-db-1", "url": "http://10.0.1.20:9090", "problem": null,
                          "services": [{"server": "autoscale-min-db-1", "service": "postgres", "health": "up", "up": true,
                                        "last_error": "", "last_scrape": "2026-12-03T05:40:01.2Z",
                                        "scrape_url": "http://10.0.1.20:9187/metrics", "tier": "db"}],
                          "down": [], "alerts": [], "firing": 0, "healthy": true}}
cost:
  description:
    - What the stack costs per month now (C(monthly), C(hourly), C(breakdown) per resource type, type and location,
      C(net) and C(gross)), C(declared) once the declaration is applied, C(outside) what the resources outside any
      stack cost, C(budget) and C(over_budget) against the declaration's budget. Null when a price is missing
      (RV(cost_problem) says which).
  returned: success
  type: dict
cost_problem:
  description: Why the cost is unknown, null when it is known.
  returned: success
  type: str
errors:
  description: What would stop M(autoscale.hetzner.stack) from applying the declaration (a name taken by a foreign resource, ...).
  returned: success
  type: list
  elements: str
api_requests:
  description: HTTP requests sent.
  returned: always
  type: int
  sample: 9
"""

from ansible_collections.autoscale.hetzner.plugins.module_utils.api import HetznerError, make_transport
from ansible_collections.autoscale.hetzner.plugins.module_utils.hetzner_module import (
    HetznerModule,
    common_argument_spec,
)
from ansible_collections.autoscale.hetzner.plugins.module_utils import specs
from ansible_collections.autoscale.hetzner.plugins.module_utils.stack import (
    check_declaration,
    expand,
    make_api,
    plan_stack,
    read_for_plan,
    static_errors,
)
from ansible_collections.autoscale.hetzner.plugins.module_utils.status import stack_status


def main():
    spec = common_argument_spec()
    spec["declaration"] = dict(type="dict", required=True)
    spec["prometheus"] = dict(type="dict", options=dict(
        host=dict(type="str"), url=dict(type="str"), targets=dict(type="dict"), alerts=dict(type="dict"),
        problem=dict(type="str")))
    module = HetznerModule(argument_spec=spec, supports_check_mode=True)
    declaration, problems = specs.validate(specs.STACK_DECLARATION, module.params["declaration"])
    for key in specs.STACK_DECLARATION:
        declaration.setdefault(key, None)
    if not declaration.get("name"):
        problems.append("name: required; give the stack's name")
    if not problems:
        found, warnings = check_declaration(declaration)
        problems.extend(found)
        for warning in warnings:
            module.warn(warning)
        expansion = expand(declaration)
        problems.extend(static_errors(expansion))
    if problems:
        module.fail_json(msg="stack %s: the declaration is invalid:\n- %s" % (declaration.get("name"), "\n- ".join(problems)),
                         errors=problems, changed=False, api_requests=0)
    api = None
    try:
        api = make_api(make_transport(module.params["api_token"], module.params["api_endpoint"]))
        ctx, pricing = read_for_plan(api, expansion.desired)
        stack_plan = plan_stack(declaration["name"], expansion.desired, ctx, expansion=expansion)
        status = stack_status(declaration["name"], stack_plan, ctx, pricing, declaration.get("budget"),
                              module.params["prometheus"])
    except HetznerError as exc:
        module.fail_json(msg=exc.message, failure=exc.failure(), changed=False,
                         api_requests=api.requests if api is not None else 0)
    if status["cost_problem"]:
        module.warn("stack %s: the cost is unknown: %s" % (declaration["name"], status["cost_problem"]))
    module.exit_json(changed=False, api_requests=api.requests, **status)


if __name__ == "__main__":
    main()
