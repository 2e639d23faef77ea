#!/usr/bin/python
# Copyright: (c) 2026, autoscale.hetzner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: stack
short_description: Converge a whole Hetzner Cloud topology (networks, firewalls, servers per tier, volumes, load balancers) in one task
version_added: 0.1.0
description:
  - Declares a complete stack, that is SSH keys, private networks with subnets, firewalls, placement groups,
    servers grouped in tiers, volumes, load balancers and floating IPs. One task makes the project match it.
  - Reads the current state with one list request per resource type, plans every resource with the same
    per-type planners the single-resource modules use, and shows that plan in check mode and with C(--diff)
    as a create/update/delete list (like C(terraform plan)). The plan is also returned as data in RV(plan).
  - Applies the plan concurrently. Independent creations start together; the actions they start are awaited
    in batches (C(GET /actions?id=...)); dependencies are respected (networks, subnets, SSH keys, firewalls and
    placement groups before servers; servers before volume attachments, load balancer targets and floating IP
    assignments).
  - Everything the stack creates carries the labels C(managed-by=autoscale.hetzner.stack) and C(stack=<name>);
    servers also C(tier=<tier name>). The module only changes resources with these labels. A declared name that
    is taken by a resource without them is an error, never an adoption.
  - Expert validation runs before any change (orderable server types, fixed private IPs inside the right
    subnet and unused, network zones, placement group sizes, firewall rules that cannot work); if anything is
    wrong the task fails and nothing is created.
  - Re-running is safe after any interruption, because resources are found by name and label before anything is
    created, so there are no duplicates, and a no-change run sends only the list requests (8).
author:
  - autoscale.hetzner contributors (@autoscale)
extends_documentation_fragment:
  - autoscale.hetzner.hcloud
attributes:
  check_mode:
    support: full
    description: Plans and reports the changes without making them.
  diff_mode:
    support: full
    description: The plan as text in C(diff.prepared).
options:
  name:
    description:
      - Name of the stack. Stored in the label C(stack) of every resource; two stacks with different names never
        touch each other's resources.
    type: str
    required: true
  state:
    description:
      - V(present) converges the declared topology.
      - V(absent) deletes every resource of this stack (the declaration is ignored); protected resources make the
        task fail before anything is deleted.
    type: str
    choices: [present, absent]
    default: present
  prune:
    description:
      - Delete resources of this stack that are no longer declared. Without it they are only reported.
    type: bool
    default: false
  location:
    description: Default location of servers and load balancers, for example V(nbg1).
    type: str
  labels:
    description: Labels added to every resource of the stack.
    type: dict
    default: {}
  ssh_keys:
    description: SSH keys to upload.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Name of the key.
        type: str
        required: true
      public_key:
        description: The public key (OpenSSH format).
        type: str
        required: true
      labels:
        description: Extra labels.
        type: dict
  networks:
    description: Private networks.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Name of the network.
        type: str
        required: true
      ip_range:
        description: RFC 1918 range of the network, at least /24, for example V(10.0.0.0/16).
        type: str
        required: true
      subnets:
        description: Subnets (one per tier is usual). All must be in one network zone.
        type: list
        elements: dict
        suboptions:
          ip_range:
            description: Range inside the network's O(networks[].ip_range).
            type: str
            required: true
          network_zone:
            description: Network zone of the subnet.
            type: str
            default: eu-central
          type:
            description: Subnet type.
            type: str
            choices: [cloud, server, vswitch]
            default: cloud
          vswitch_id:
            description: ID of the vSwitch for O(networks[].subnets[].type=vswitch).
            type: int
      routes:
        description: Routes, each with C(destination) and C(gateway).
        type: list
        elements: dict
      expose_routes_to_vswitch:
        description: Expose the routes to a connected vSwitch.
        type: bool
      delete_protection:
        description: Protect the network against deletion.
        type: bool
      labels:
        description: Extra labels.
        type: dict
  firewalls:
    description:
      - Firewalls. They filter the public interfaces only; traffic inside private networks is never filtered by a
        Cloud Firewall (rules with private source ranges produce a warning).
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Name of the firewall.
        type: str
        required: true
      rules:
        description: Rules with C(direction), C(protocol), C(port), C(source_ips), C(destination_ips), C(description).
        type: list
        elements: dict
        default: []
      labels:
        description: Extra labels.
        type: dict
  placement_groups:
    description: Spread placement groups (servers of one group run on different hosts; at most 10 per group).
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Name of the placement group.
        type: str
        required: true
      type:
        description: Placement group type.
        type: str
        choices: [spread]
        default: spread
      labels:
        description: Extra labels.
        type: dict
  tiers:
    description:
      - Servers, grouped by tier. Settings of a tier apply to its servers unless a server overrides them. Every
        server gets the label C(tier=<tier name>), which the inventory plugin turns into a group.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Name of the tier, for example V(web).
        type: str
        required: true
      server_type:
        description: Server type, for example V(cx23). Types that can no longer be ordered are refused with a replacement.
        type: str
      image:
        description: Image name or ID, for example V(debian-12).
        type: str
      location:
        description: Location; defaults to O(location).
        type: str
      ssh_keys:
        description: Names of SSH keys to install at creation.
        type: list
        elements: str
      firewalls:
        description: Names of firewalls to apply.
        type: list
        elements: str
      placement_group:
        description: Name of the placement group of the tier's servers.
        type: str
      network:
        description: Name of the private network the servers attach to.
        type: str
      enable_ipv4:
        description: Give the servers a public IPv4.
        type: bool
      enable_ipv6:
        description: Give the servers a public IPv6.
        type: bool
      backups:
        description: Enable backups.
        type: bool
      delete_protection:
        description: Protect the servers against deletion and rebuild.
        type: bool
      user_data:
        description: Cloud-init user data used at creation.
        type: str
      labels:
        description: Extra labels of the tier's servers.
        type: dict
      servers:
        description:
          - The servers of the tier. C(name) is required; C(ip) is the fixed private IP in the tier's network;
            C(location), C(server_type), C(image), C(labels), C(firewalls), C(ssh_keys), C(placement_group),
            C(network), C(enable_ipv4), C(enable_ipv6), C(backups), C(delete_protection), C(user_data) and
            C(alias_ips) override the tier's settings.
        type: list
        elements: dict
        required: true
  volumes:
    description: Volumes, attached to a server of the stack or standing alone in a location.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Name of the volume.
        type: str
        required: true
      size:
        description: Size in GB (volumes can only grow).
        type: int
        required: true
      server:
        description: Name of the server to attach to.
        type: str
      location:
        description: Location of a volume without server.
        type: str
      format:
        description: Filesystem created at creation.
        type: str
        choices: [ext4, xfs]
      automount:
        description: Mount the volume on the server automatically.
        type: bool
      delete_protection:
        description: Protect against deletion.
        type: bool
      labels:
        description: Extra labels.
        type: dict
  load_balancers:
    description: Load balancers.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Name of the load balancer.
        type: str
        required: true
      load_balancer_type:
        description: Type, for example V(lb11).
        type: str
        required: true
      location:
        description: Location; defaults to O(location).
        type: str
      network:
        description: Private network to attach to (needed for targets with C(use_private_ip)).
        type: str
      ip:
        description: Fixed private IP of the load balancer in O(load_balancers[].network).
        type: str
      algorithm:
        description: Balancing algorithm.
        type: str
        choices: [round_robin, least_connections]
      public_interface:
        description: Enable the public interface.
        type: bool
      services:
        description:
          - Services with C(protocol) (tcp, http, https), C(listen_port), C(destination_port), C(proxyprotocol),
            C(http) and C(health_check) (C(protocol), C(port), C(interval), C(timeout), C(retries), C(http)).
        type: list
        elements: dict
        default: []
      targets:
        description:
          - Targets. C(tier) targets every server of that tier of this stack through a label selector (servers added
            to the tier later are picked up by the API); C(server) one server by name; C(label_selector) any
            selector. C(use_private_ip) sends traffic over the private network.
        type: list
        elements: dict
        default: []
      delete_protection:
        description: Protect against deletion.
        type: bool
      labels:
        description: Extra labels.
        type: dict
  floating_ips:
    description: Floating IPs, optionally assigned to a server of the stack.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Name of the floating IP.
        type: str
        required: true
      type:
        description: IP version.
        type: str
        choices: [ipv4, ipv6]
        default: ipv4
      home_location:
        description: Home location (defaults to the server's location).
        type: str
      server:
        description: Name of the server to assign it to.
        type: str
      description:
        description: Description.
        type: str
      delete_protection:
        description: Protect against deletion.
        type: bool
      labels:
        description: Extra labels.
        type: dict
  parallelism:
    description: How many requests run at the same time.
    type: int
    default: 10
  timeout:
    description: Seconds to wait for the actions of one phase.
    type: int
    default: 1800
notes:
  - A no-change run sends one list request per resource type (8 requests for a full stack) and no other.
  - Cloud Firewalls only filter public interfaces. Isolate tiers on the private network with a host firewall.
seealso:
  - plugin: autoscale.hetzner.hcloud
    plugin_type: inventory
"""

EXAMPLES = r"""
- name: Converge the production stack
  autoscale.hetzner.stack:
    name: autoscale-prod
    location: nbg1
    ssh_keys:
      - name: autoscale-prod-admin
        public_key: "{{ lookup('ansible.builtin.file', '~/.ssh/id_ed25519.pub') }}"
    networks:
      - name: autoscale-prod-network
        ip_range: 10.0.0.0/16
        subnets:
          - ip_range: 10.0.1.0/24
          - ip_range: 10.0.2.0/24
    firewalls:
      - name: autoscale-prod-web
        rules:
          - { direction: in, protocol: tcp, port: "443", source_ips: [0.0.0.0/0, "::/0"] }
          - { direction: in, protocol: tcp, port: "22", source_ips: "{{ admin_sources }}" }
    placement_groups:
      - name: autoscale-prod-web
    tiers:
      - name: web
        server_type: cpx32
        image: debian-12
        ssh_keys: [autoscale-prod-admin]
        firewalls: [autoscale-prod-web]
        placement_group: autoscale-prod-web
        network: autoscale-prod-network
        servers:
          - { name: autoscale-prod-web-1, ip: 10.0.1.10 }
          - { name: autoscale-prod-web-2, ip: 10.0.1.11 }
    load_balancers:
      - name: autoscale-prod-web-lb
        load_balancer_type: lb11
        network: autoscale-prod-network
        targets:
          - { tier: web, use_private_ip: true }
        services:
          - { protocol: http, listen_port: 80, destination_port: 80 }

- name: Show the plan only
  autoscale.hetzner.stack: "{{ hetzner_stack }}"
  check_mode: true
  diff: true
  register: plan

- name: Remove everything of a test stack
  autoscale.hetzner.stack:
    name: autoscale-test
    state: absent
"""

RETURN = r"""
plan:
  description: The changes, in the order they are applied.
  returned: always
  type: list
  elements: dict
  contains:
    action:
      description: V(create), V(update) or V(delete).
      type: str
      sample: create
    type:
      description: Resource type (V(network), V(server), ...).
      type: str
      sample: server
    name:
      description: Resource name.
      type: str
      sample: autoscale-prod-web-1
    changes:
      description: Changed fields with C(before) and C(after).
      type: dict
      sample: {"server_type": {"before": "cpx22", "after": "cpx32"}}
    requests:
      description: API requests the change takes (not counting action polling).
      type: int
      sample: 2
summary:
  description: Counts per action and the plan as text.
  returned: always
  type: dict
  sample: {"create": 15, "update": 0, "delete": 0, "text": "Stack autoscale-prod: 15 to create, ..."}
resources:
  description: The resources of the stack after the run (in check mode, as they are now), per type.
  returned: success
  type: dict
  sample: {"servers": [{"name": "autoscale-prod-web-1", "id": 42, "ipv4_address": "203.0.113.10"}]}
api_requests:
  description: HTTP requests this task sent to the API (retries included).
  returned: always
  type: int
  sample: 8
failure:
  description: The API error that stopped the run (code, message, details, action).
  returned: failed
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.autoscale.hetzner.plugins.module_utils.api import HetznerError, build_client
from ansible_collections.autoscale.hetzner.plugins.module_utils.hetzner_module import common_argument_spec
from ansible_collections.autoscale.hetzner.plugins.module_utils.stack import (
    KINDS,
    apply_stack,
    catalogue_needs,
    expand_topology,
    make_api,
    plan_entries,
    plan_stack,
    read_catalogue,
    read_state,
    render_plan,
    represent_all,
    summary_counts,
)

LABELS = dict(type="dict")


def _list_of(**suboptions):
    return dict(type="list", elements="dict", default=[], options=suboptions)


def argument_spec():
    spec = common_argument_spec()
    spec.update(
        name=dict(type="str", required=True),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        prune=dict(type="bool", default=False),
        location=dict(type="str"),
        labels=dict(type="dict", default={}),
        ssh_keys=dict(_list_of(name=dict(type="str", required=True), public_key=dict(type="str", required=True),
                               labels=LABELS), no_log=False),  # public keys are not secrets
        networks=_list_of(
            name=dict(type="str", required=True), ip_range=dict(type="str", required=True),
            subnets=dict(type="list", elements="dict", options=dict(
                ip_range=dict(type="str", required=True), network_zone=dict(type="str", default="eu-central"),
                type=dict(type="str", choices=["cloud", "server", "vswitch"], default="cloud"),
                vswitch_id=dict(type="int"))),
            routes=dict(type="list", elements="dict"), expose_routes_to_vswitch=dict(type="bool"),
            delete_protection=dict(type="bool"), labels=LABELS),
        firewalls=_list_of(name=dict(type="str", required=True),
                           rules=dict(type="list", elements="dict", default=[]), labels=LABELS),
        placement_groups=_list_of(name=dict(type="str", required=True),
                                  type=dict(type="str", choices=["spread"], default="spread"), labels=LABELS),
        tiers=_list_of(
            name=dict(type="str", required=True), server_type=dict(type="str"), image=dict(type="str"),
            location=dict(type="str"), ssh_keys=dict(type="list", elements="str", no_log=False),
            firewalls=dict(type="list", elements="str"), placement_group=dict(type="str"),
            network=dict(type="str"), enable_ipv4=dict(type="bool"), enable_ipv6=dict(type="bool"),
            backups=dict(type="bool"), delete_protection=dict(type="bool"), user_data=dict(type="str"),
            labels=LABELS, servers=dict(type="list", elements="dict", required=True)),
        volumes=_list_of(
            name=dict(type="str", required=True), size=dict(type="int", required=True), server=dict(type="str"),
            location=dict(type="str"), format=dict(type="str", choices=["ext4", "xfs"]),
            automount=dict(type="bool"), delete_protection=dict(type="bool"), labels=LABELS),
        load_balancers=_list_of(
            name=dict(type="str", required=True), load_balancer_type=dict(type="str", required=True),
            location=dict(type="str"), network=dict(type="str"), ip=dict(type="str"),
            algorithm=dict(type="str", choices=["round_robin", "least_connections"]),
            public_interface=dict(type="bool"), services=dict(type="list", elements="dict", default=[]),
            targets=dict(type="list", elements="dict", default=[]), delete_protection=dict(type="bool"),
            labels=LABELS),
        floating_ips=_list_of(
            name=dict(type="str", required=True), type=dict(type="str", choices=["ipv4", "ipv6"], default="ipv4"),
            home_location=dict(type="str"), server=dict(type="str"), description=dict(type="str"),
            delete_protection=dict(type="bool"), labels=LABELS),
        parallelism=dict(type="int", default=10),
        timeout=dict(type="int", default=1800),
    )
    return spec


def check_server_entries(params):
    """Tier servers are free-form dicts (they override tier settings): check their keys here."""
    allowed = {"name", "ip", "alias_ips", "location", "server_type", "image", "labels", "firewalls", "ssh_keys",
               "placement_group", "network", "enable_ipv4", "enable_ipv6", "backups", "delete_protection",
               "user_data"}
    errors = []
    for tier in params.get("tiers") or []:
        for i, server in enumerate(tier.get("servers") or []):
            if not isinstance(server, dict) or not server.get("name"):
                errors.append("tiers[%s].servers[%d]: each server needs a name" % (tier["name"], i))
                continue
            unknown = sorted(set(server) - allowed)
            if unknown:
                errors.append("tiers[%s].servers[%s]: unknown keys %s (allowed: %s)" % (
                    tier["name"], server["name"], ", ".join(unknown), ", ".join(sorted(allowed))))
    return errors


class StackModule:
    def __init__(self, module):
        self.module = module
        params = module.params
        self.name = params["name"]
        self.parallel = max(1, params["parallelism"])
        self.api, self.counter = make_api(lambda: build_client(params["api_token"], params["api_endpoint"]))

    def fail(self, msg, **extra):
        self.module.fail_json(msg=msg, api_requests=self.counter.requests, **extra)

    def run(self):
        params = dict(self.module.params)
        errors = check_server_entries(params)
        if errors:
            self.fail("invalid stack declaration: " + "; ".join(errors), errors=errors)
        prune = params["prune"]
        if params["state"] == "absent":
            params.update({kind: [] for kind in ("ssh_keys", "networks", "firewalls", "placement_groups", "tiers",
                                                 "volumes", "load_balancers", "floating_ips")})
            prune = True
        desired = expand_topology(params)

        ctx = read_state(self.api, KINDS, self.parallel)
        missing = catalogue_needs(desired, ctx)
        if missing:
            read_catalogue(self.api, ctx, missing, self.parallel)
        stack_plan = plan_stack(self.name, desired, ctx, prune=prune)

        for warning in sorted(set(stack_plan.warnings)):
            self.module.warn(warning)
        entries = plan_entries(stack_plan)
        text = render_plan(self.name, entries)
        summary = dict(summary_counts(entries), text=text)
        result = dict(changed=stack_plan.changed, plan=entries, summary=summary)
        if self.module._diff:
            result["diff"] = dict(prepared=text)
        if stack_plan.errors:
            self.fail("stack %s: the declaration cannot be applied, nothing was changed:\n- %s" % (
                self.name, "\n- ".join(stack_plan.errors)), errors=stack_plan.errors, **result)

        if self.module.check_mode or not stack_plan.changed:
            result["resources"] = represent_all(ctx, self.name)
            result["api_requests"] = self.counter.requests
            self.module.exit_json(**result)

        try:
            apply_stack(self.api, stack_plan, ctx, self.parallel, float(self.module.params["timeout"]),
                        reread=lambda kinds: read_state(self.api, kinds, self.parallel))
        except HetznerError as exc:
            self.fail("stack %s: %s (re-run the task to continue; resources are found by name and label, nothing "
                      "is created twice)" % (self.name, exc.message), failure=exc.failure(), **result)
        final = read_state(self.api, KINDS, self.parallel)
        result["resources"] = represent_all(final, self.name)
        result["api_requests"] = self.counter.requests
        self.module.exit_json(**result)


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    try:
        StackModule(module).run()
    except HetznerError as exc:
        module.fail_json(msg=exc.message, failure=exc.failure())


if __name__ == "__main__":
    main()
