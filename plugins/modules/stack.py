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
  - The whole declaration is checked before anything is read or changed. Every key of every nested list has an
    option spec (the same the per-resource modules use), so a misspelt or unknown key, a wrong type or a value the
    API would refuse (ports, protocols, CIDRs, volume sizes, a listen port used twice, a volume in another location
    than its server, a target tier that does not exist, the labels the stack sets itself) fails the task with the
    path of the key and the fix, for example C(tiers[1].servers[0].ipp) is an unknown key, did you mean C(ip)?
  - Reads the current state with one list request per resource type, plans every resource with the same
    per-type planners the single-resource modules use, and shows that plan in check mode and with C(--diff)
    as a create/update/delete list (like C(terraform plan)). The plan is also returned as data in RV(plan).
    Anything the plan finds wrong (server types that cannot be ordered, fixed IPs outside their subnet or taken,
    references to resources that exist nowhere) fails the task before the first change, with changed=false.
  - Applies the plan concurrently. Independent creations start together; the actions they start are awaited
    in batches (C(GET /actions?id=...)); dependencies are respected (networks, subnets, SSH keys, firewalls and
    placement groups before servers; servers before volume attachments, load balancer targets and floating IP
    assignments). A failed action stops only its resource and what depends on it.
  - After applying, the state is read again and planned again; what is still missing (a failed action, a lost
    answer) is repaired in the same run, and reported in RV(failures) and RV(repaired). Servers are kept running
    (O(tiers[].state=started)), so a server that is off is powered on.
  - Everything the stack creates carries the labels C(managed-by=autoscale.hetzner.stack) and C(stack=<name>);
    servers also C(tier=<tier name>). The module only changes resources with these labels. A declared name that
    is taken by a resource without them is an error, never an adoption.
  - One run at a time per stack. A run that changes something holds a lock (a placement group named
    C(autoscale-stack-lock.<name>)); a second run waits for it (O(lock_timeout)) and then plans again, or fails
    with "another run is in progress" before changing anything. The lock of a run that was killed is taken over at
    once on the same machine, elsewhere when it expires (90 s after its holder stopped renewing it).
  - Re-running is safe after any interruption, because resources are found by name and label before anything is
    created, and actions still running on a resource are awaited before it is changed. A no-change run sends only
    the list requests (8) and C(GET /pricing).
  - The plan shows what the stack costs, from the API's own prices (C(GET /pricing), read alongside the lists, never
    a price table), per resource type, type and location (servers, backups as the API's percentage surcharge on the
    server price, primary IPv4s and IPv6s, volumes per GB, load balancers, floating IPs), monthly and hourly, net
    and gross, now and after the plan, and the change (C(+€12.40/month)); in check mode too. See RV(cost).
  - With O(budget), a plan whose monthly cost (gross, VAT included) exceeds it fails before anything is written,
    with the breakdown in the message; a plan that lowers the cost of a stack that is already over budget only
    warns.
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
  declaration:
    description:
      - The whole declaration as one value, for example C(hetzner_stack) from group_vars. Its keys are the options
        O(name), O(location), O(budget), O(labels), O(ssh_keys), O(networks), O(firewalls), O(placement_groups), O(tiers),
        O(volumes), O(load_balancers) and O(floating_ips), checked exactly as if they were given one by one; an
        unknown key (C(tier) for C(tiers)) is an error, not silently dropped.
      - A key may not be given both here and as an option.
    type: dict
  name:
    description:
      - Name of the stack (required, here or in O(declaration)). Stored in the label C(stack) of every resource; two
        stacks with different names never touch each other's resources.
    type: str
  state:
    description:
      - V(present) converges the declared topology.
      - V(absent) deletes every resource of this stack (the declaration is ignored); protected resources make the
        task fail before anything is deleted, unless O(unprotect). C(playbooks/destroy.yml) wraps it with a preview
        and a confirmation.
    type: str
    choices: [present, absent]
    default: present
  unprotect:
    description:
      - With O(state=absent), remove the delete (and rebuild) protection of the stack's protected resources before
        deleting them. Without it, any protected resource fails the task before anything is deleted.
      - Ignored with O(state=present); protection is declared there (C(delete_protection)).
    type: bool
    default: false
  prune:
    description:
      - Delete resources of this stack that are no longer declared. Without it they are only reported (RV(undeclared)
        and the plan text). The plan lists every deletion before it happens; a declaration with any error deletes
        nothing.
    type: bool
    default: false
  prune_max:
    description:
      - With O(prune), the most resources one run may delete. More fails the task before anything changes and lists
        them; raise it on purpose when that many deletions are wanted.
    type: int
    default: 5
  prune_tiers:
    description:
      - With O(prune), the tiers that may lose all their servers. Pruning the last server of any other tier fails the
        task before anything changes (a misspelt tier or server name must not delete a tier).
    type: list
    elements: str
    default: []
  lock_timeout:
    description: Seconds to wait for another run on the same stack to finish before failing.
    type: int
    default: 600
  location:
    description: Default location of servers, volumes and load balancers, for example V(nbg1).
    type: str
  budget:
    description:
      - The most the stack may cost per month, in the currency of the API's prices (C(currency) of C(GET /pricing),
        EUR for most accounts), VAT included (the gross amount, what the invoice shows; equal to net for a VAT-free
        account). Must be more than 0.
      - A plan whose monthly cost after the run exceeds it fails before anything is written (also in check mode),
        with the cost breakdown in the message. Without it, the cost is only reported.
    type: float
  labels:
    description: Labels added to every resource of the stack. C(managed-by), C(stack) and C(tier) are the stack's own.
    type: dict
  ssh_keys:
    description: SSH keys to upload.
    type: list
    elements: dict
    suboptions:
      name:
        description: Name of the key.
        type: str
        required: true
      public_key:
        description: The public key (one OpenSSH line).
        type: str
        required: true
      labels:
        description: Extra labels.
        type: dict
  networks:
    description: Private networks.
    type: list
    elements: dict
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
            description: Range inside the network's O(networks[].ip_range), without host bits, at least /30.
            type: str
            required: true
          network_zone:
            description: Network zone of the subnet.
            type: str
            default: eu-central
          type:
            description: Subnet type (V(server) is the API's old name of V(cloud)).
            type: str
            choices: [cloud, server, vswitch]
            default: cloud
          vswitch_id:
            description: ID of the vSwitch; required for O(networks[].subnets[].type=vswitch) and only there.
            type: int
      routes:
        description: Routes of the network.
        type: list
        elements: dict
        suboptions:
          destination:
            description: Destination network in CIDR notation.
            type: str
            required: true
          gateway:
            description: Gateway (a private IP inside the network).
            type: str
            required: true
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
    suboptions:
      name:
        description: Name of the firewall.
        type: str
        required: true
      rules:
        description: The rules, in order.
        type: list
        elements: dict
        suboptions:
          direction:
            description: V(in) filters incoming traffic (needs O(firewalls[].rules[].source_ips)), V(out) outgoing.
            type: str
            choices: [in, out]
            default: in
          protocol:
            description: Protocol.
            type: str
            choices: [tcp, udp, icmp, esp, gre]
            required: true
          port:
            description: Port (V(443)), range (V(1024-5000)) or V(any); required for tcp and udp, not allowed otherwise.
            type: str
          source_ips:
            description: CIDRs allowed in (inbound rules).
            type: list
            elements: str
          destination_ips:
            description: CIDRs allowed out (outbound rules).
            type: list
            elements: str
          description:
            description: Description of the rule.
            type: str
      labels:
        description: Extra labels.
        type: dict
  placement_groups:
    description: Spread placement groups (servers of one group run on different hosts; at most 10 per group).
    type: list
    elements: dict
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
      state:
        description:
          - Power state of the servers. V(started) (the default) powers on a server that is off, for example after its
            create or start action failed; V(stopped) powers it off; V(present) leaves the power state alone.
        type: str
        choices: [started, stopped, present]
      labels:
        description: Extra labels of the tier's servers.
        type: dict
      servers:
        description: The servers of the tier. Each setting given here overrides the tier's.
        type: list
        elements: dict
        required: true
        suboptions:
          name:
            description: Name of the server (a hostname).
            type: str
            required: true
          ip:
            description: Fixed private IP in the tier's (or the server's) network; inside one of its subnets.
            type: str
          alias_ips:
            description: Additional private IPs in that network.
            type: list
            elements: str
          server_type:
            description: Overrides O(tiers[].server_type).
            type: str
          image:
            description: Overrides O(tiers[].image).
            type: str
          location:
            description: Overrides O(tiers[].location).
            type: str
          ssh_keys:
            description: Overrides O(tiers[].ssh_keys).
            type: list
            elements: str
          firewalls:
            description: Overrides O(tiers[].firewalls).
            type: list
            elements: str
          placement_group:
            description: Overrides O(tiers[].placement_group).
            type: str
          network:
            description: Overrides O(tiers[].network).
            type: str
          enable_ipv4:
            description: Overrides O(tiers[].enable_ipv4).
            type: bool
          enable_ipv6:
            description: Overrides O(tiers[].enable_ipv6).
            type: bool
          backups:
            description: Overrides O(tiers[].backups).
            type: bool
          delete_protection:
            description: Overrides O(tiers[].delete_protection).
            type: bool
          user_data:
            description: Overrides O(tiers[].user_data).
            type: str
          state:
            description: Overrides O(tiers[].state).
            type: str
            choices: [started, stopped, present]
          labels:
            description: Extra labels of this server (added to the tier's).
            type: dict
  volumes:
    description: Volumes, attached to a server of the stack or standing alone in a location.
    type: list
    elements: dict
    suboptions:
      name:
        description: Name of the volume.
        type: str
        required: true
      size:
        description: Size in GB, 10 to 10240 (volumes can only grow).
        type: int
        required: true
      server:
        description: Name of the server to attach to.
        type: str
      location:
        description: Location of a volume without server (defaults to O(location)); with a server it must be the server's.
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
        description: Services; each O(load_balancers[].services[].listen_port) at most once.
        type: list
        elements: dict
        suboptions:
          protocol:
            description: Protocol of the service.
            type: str
            choices: [tcp, http, https]
            required: true
          listen_port:
            description: Port the load balancer listens on (1-65535); identifies the service.
            type: int
            required: true
          destination_port:
            description: Port of the targets; defaults to the listen port for tcp and 80 for http(s).
            type: int
          proxyprotocol:
            description: Use the PROXY protocol towards the targets.
            type: bool
          http:
            description: HTTP settings of http and https services.
            type: dict
            suboptions:
              cookie_name:
                description: Name of the sticky session cookie.
                type: str
              cookie_lifetime:
                description: Lifetime of the sticky session cookie in seconds.
                type: int
              certificates:
                description: IDs of the certificates of an https service.
                type: list
                elements: int
              redirect_http:
                description: Redirect port 80 to this https service.
                type: bool
              sticky_sessions:
                description: Enable sticky sessions.
                type: bool
              timeout_idle:
                description: Idle timeout in seconds (30-300).
                type: int
          health_check:
            description: Health check of the targets.
            type: dict
            suboptions:
              protocol:
                description: Protocol of the check.
                type: str
                choices: [tcp, http]
              port:
                description: Port checked on the targets.
                type: int
              interval:
                description: Seconds between checks (3-60).
                type: int
              timeout:
                description: Seconds until a check fails (1-60, at most the interval).
                type: int
              retries:
                description: Failed checks until a target is unhealthy (0-5).
                type: int
              http:
                description: HTTP check settings.
                type: dict
                suboptions:
                  domain:
                    description: Host header of the check.
                    type: str
                  path:
                    description: Request path, starting with C(/).
                    type: str
                  response:
                    description: Expected string in the response body.
                    type: str
                  status_codes:
                    description: Healthy status codes, wildcards allowed (C(2??)).
                    type: list
                    elements: str
                  tls:
                    description: Verify TLS of the target.
                    type: bool
      targets:
        description: Targets; each names exactly one of C(tier), C(server) or C(label_selector).
        type: list
        elements: dict
        suboptions:
          tier:
            description:
              - Every server of this tier of this stack, through a label selector (servers added to the tier later are
                picked up by the API). The tier must be declared in O(tiers).
            type: str
          server:
            description: One server by name.
            type: str
          label_selector:
            description: Any label selector.
            type: str
          use_private_ip:
            description: Send traffic over the private network (needs O(load_balancers[].network)).
            type: bool
            default: false
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
    description: How many requests run at the same time (at least 1).
    type: int
    default: 10
  timeout:
    description: Seconds to wait for the actions of one phase (at least 1).
    type: int
    default: 1800
notes:
  - A no-change run sends one list request per resource type (8 requests for a full stack) and C(GET /pricing), no
    other; it takes no lock.
  - Volumes and floating IPs have monthly prices only in C(/pricing); the hourly total leaves them out. Hetzner bills
    hourly up to the monthly price, so the monthly amounts are the most a month can cost.
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

- name: The declaration from group_vars as one value (every key checked), deleting what is no longer declared
  autoscale.hetzner.stack:
    declaration: "{{ hetzner_stack }}"
    prune: true
    prune_max: 3

- name: Refuse any plan that would cost more than 80 EUR a month (VAT included), before anything is created
  autoscale.hetzner.stack:
    declaration: "{{ hetzner_stack | combine({'budget': 80}) }}"

- name: Show the plan only
  autoscale.hetzner.stack:
    declaration: "{{ hetzner_stack }}"
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
  description: The changes, in the order they are applied (after a lock wait, the plan made under the lock).
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
undeclared:
  description: Resources of the stack that are no longer declared and were kept (no O(prune)).
  returned: always
  type: list
  elements: dict
  sample: [{"type": "server", "name": "autoscale-prod-app-3"}]
failures:
  description:
    - What failed while applying (a failed action with the API's message, or a request refused), and what was not
      attempted because it depends on a failure. Empty when everything went through at once.
  returned: always
  type: list
  elements: str
  sample: ["server 'autoscale-prod-web-1': create_server failed: Action failed (action_failed)"]
repaired:
  description: The changes that the re-plan after the apply still found and carried out in this run (see RV(failures)).
  returned: always
  type: list
  elements: dict
  sample: [{"action": "update", "type": "server", "name": "autoscale-prod-web-1",
            "changes": {"status": {"before": "off", "after": "running"}}, "requests": 2}]
errors:
  description: Every problem of the declaration, each with the path of the key and the fix.
  returned: failed
  type: list
  elements: str
  sample: ["tiers[1].servers[0].ipp: unknown key; did you mean ip? (allowed: ...)"]
resources:
  description: The resources of the stack after the run (in check mode, as they are now), per type.
  returned: success
  type: dict
  sample: {"servers": [{"name": "autoscale-prod-web-1", "id": 42, "ipv4_address": "203.0.113.10"}]}
cost:
  description:
    - What the stack costs from the API's prices (C(GET /pricing)), null when a price is missing (a warning says which).
      Amounts are decimal strings with every digit of the API's prices (net and gross).
    - RV(cost.monthly) and RV(cost.hourly) are the cost after the run (the declared resources, plus undeclared ones
      that are kept), RV(cost.current) the cost now, RV(cost.change) the difference.
  returned: always
  type: dict
  contains:
    currency:
      description: Currency of the prices.
      type: str
      sample: EUR
    vat_rate:
      description: VAT rate of the account, in percent.
      type: str
      sample: "19.00"
    monthly:
      description: Monthly cost after the run, C(net) and C(gross).
      type: dict
      sample: {"net": "62.4600", "gross": "74.3274"}
    hourly:
      description: Hourly cost after the run of what has an hourly price (not volumes and floating IPs).
      type: dict
      sample: {"net": "0.0998", "gross": "0.1188"}
    current:
      description: C(monthly) and C(hourly) cost of the stack as it is now.
      type: dict
    change:
      description: C(monthly) and C(hourly) difference the plan makes (negative when it saves).
      type: dict
      sample: {"monthly": {"net": "12.40", "gross": "14.756"}, "hourly": {"net": "0.02", "gross": "0.0238"}}
    breakdown:
      description:
        - One line per resource type (V(server), V(backup), V(primary_ipv4), V(primary_ipv6), V(volume),
          V(load_balancer), V(floating_ip)) and what (type and location), with C(count) (servers, GB, ...),
          C(monthly), C(hourly) (null for volumes and floating IPs) and C(change) (C(count) and C(monthly), null
          when the line does not change).
      type: list
      elements: dict
      sample: [{"type": "server", "what": "cx23 in nbg1", "count": 2, "monthly": {"net": "7.98", "gross": "9.4962"},
                "hourly": {"net": "0.0128", "gross": "0.015232"}, "change": {"count": 1, "monthly": {"net": "3.99",
                "gross": "4.7481"}}}]
    budget:
      description: O(budget) as a decimal string, null without one.
      type: str
    over_budget:
      description: Whether the monthly cost (gross) after the run exceeds O(budget).
      type: bool
api_requests:
  description: HTTP requests this task sent to the API (hcloud-python's own retries of 429/409/502/504 not included).
  returned: always
  type: int
  sample: 8
failure:
  description: The API error that stopped the run (code, message, details, action).
  returned: failed
  type: dict
"""

from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

from ansible_collections.autoscale.hetzner.plugins.module_utils.api import HetznerError, make_transport
from ansible_collections.autoscale.hetzner.plugins.module_utils.hetzner_module import (
    HetznerModule,
    common_argument_spec,
)
from ansible_collections.autoscale.hetzner.plugins.module_utils import specs
from ansible_collections.autoscale.hetzner.plugins.module_utils.pricing import Prices, PricingError, render_cost, show
from ansible_collections.autoscale.hetzner.plugins.module_utils.stack import (
    KINDS,
    REPAIR_PASSES,
    StackLock,
    apply_stack,
    unaffected,
    catalogue_needs,
    check_declaration,
    expand,
    make_api,
    plan_cost,
    plan_entries,
    plan_stack,
    read_catalogue,
    read_pricing,
    read_state,
    render_plan,
    represent_all,
    static_errors,
    summary_counts,
)


def argument_spec():
    spec = common_argument_spec()
    spec.update(specs.copy_spec(specs.STACK_DECLARATION))
    spec.update(
        declaration=dict(type="dict"),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        prune=dict(type="bool", default=False),
        prune_max=dict(type="int", default=5),
        prune_tiers=dict(type="list", elements="str", default=[]),
        unprotect=dict(type="bool", default=False),
        lock_timeout=dict(type="int", default=600),
        parallelism=dict(type="int", default=10),
        timeout=dict(type="int", default=1800),
    )
    return spec


def declaration_of(params):
    """(declaration, problems): the declaration's keys from O(declaration) and the options, checked whole."""
    given = {key: params.get(key) for key in specs.STACK_DECLARATION if params.get(key) is not None}
    problems = []
    declaration = params.get("declaration")
    if declaration is not None:
        for key in sorted(set(declaration) & set(given)):
            problems.append("%s: given both in declaration and as an option; give it once" % key)
        merged = dict(given, **declaration)
        validated, found = specs.validate(specs.STACK_DECLARATION, merged)
        problems.extend(found)
    else:
        validated = dict(given)
    for key in specs.STACK_DECLARATION:
        validated.setdefault(key, None)
    if not validated.get("name"):
        problems.append("name: required; give the stack's name (as an option or in declaration)")
    for option, low in (("timeout", 1), ("parallelism", 1), ("prune_max", 0), ("lock_timeout", 0)):
        if params[option] < low:
            problems.append("%s: %s is too small; give at least %d" % (option, params[option], low))
    return validated, problems


class StackRun:
    def __init__(self, module):
        self.module = module
        params = module.params
        self.parallel = max(1, params["parallelism"])
        self.timeout = float(params["timeout"])
        self.declaration, problems = declaration_of(params)
        if problems:
            self.fail_invalid(problems)
        self.name = self.declaration["name"]
        self.pricing = None
        self.api = make_api(make_transport(params["api_token"], params["api_endpoint"]), parallel=self.parallel)

    def fail(self, msg, **extra):
        extra.setdefault("changed", False)
        self.module.fail_json(msg=msg, api_requests=getattr(getattr(self, "api", None), "requests", 0), **extra)

    def fail_invalid(self, problems, **extra):
        self.fail("stack %s: the declaration is invalid, nothing was changed:\n- %s" % (
            self.declaration.get("name") if hasattr(self, "declaration") else "?", "\n- ".join(problems)),
            errors=problems, **extra)

    # -- reading and planning -----------------------------------------------------------------
    def read_and_plan(self, expansion, prune, teardown, known=None):
        """Read the state (the kinds ``known`` does not hold already) and plan. The first time, the prices
        (GET /pricing) are read alongside the lists."""
        with ThreadPoolExecutor(max_workers=1) as pool:
            prices = pool.submit(read_pricing, self.api) if self.pricing is None else None
            ctx = read_state(self.api, [kind for kind in KINDS if known is None or kind not in known.objects],
                             self.parallel)
            if prices is not None:
                self.pricing = prices.result()
        for kind, objects in (known.objects if known is not None else {}).items():
            if kind not in ctx.objects:
                ctx.set_all(kind, objects)
        missing = catalogue_needs(expansion.desired, ctx)
        if missing:
            read_catalogue(self.api, ctx, missing, self.parallel)
        params = self.module.params
        stack_plan = plan_stack(self.name, expansion.desired, ctx, prune=prune, expansion=expansion,
                                prune_max=params["prune_max"], prune_tiers=params["prune_tiers"], teardown=teardown,
                                unprotect=teardown and params["unprotect"])
        return ctx, stack_plan

    def cloud_problems(self, expansion, known):
        """With a declaration already known to be invalid: what else the cloud would refuse (read only,
        never prune), so that one run reports every problem."""
        try:
            _ctx, stack_plan = self.read_and_plan(expansion, False, False)
        except Exception:  # pylint: disable=broad-except  # the known problems are what counts
            return []
        return [e for e in stack_plan.errors if e not in known]

    def cost(self, stack_plan, ctx):
        """(cost, problem): the cost of the stack now and after the plan from the API's prices, or why not."""
        try:
            return plan_cost(stack_plan, ctx, Prices(self.pricing), self.declaration.get("budget")), None
        except PricingError as exc:
            return None, str(exc)

    def outcome(self, stack_plan, ctx):
        entries = plan_entries(stack_plan)
        cost, problem = self.cost(stack_plan, ctx)
        text = render_plan(self.name, entries, stack_plan.undeclared)
        text += (render_cost(cost) if cost else "Cost: unknown, %s" % problem) + "\n"
        result = dict(changed=stack_plan.changed, plan=entries, summary=dict(summary_counts(entries), text=text),
                      undeclared=[dict(type=kind, name=name) for kind, name in stack_plan.undeclared],
                      failures=[], repaired=[], cost=cost)
        if problem:
            self.module.warn("stack %s: the cost is unknown: %s" % (self.name, problem))
        if self.module._diff:
            result["diff"] = dict(prepared=text)
        return result

    def check(self, stack_plan, result):
        """Fail (changed=false, nothing written) when the plan has errors or goes over the budget."""
        if stack_plan.errors:
            self.fail("stack %s: the declaration cannot be applied, nothing was changed:\n- %s" % (
                self.name, "\n- ".join(stack_plan.errors)), errors=stack_plan.errors,
                **dict(result, changed=False))
        budget = self.declaration.get("budget")
        if budget is None:
            return
        cost = result.get("cost")
        if cost is None:
            self.fail("stack %s: budget: the cost cannot be checked against the budget, nothing was changed; leave "
                      "budget out or fix what the prices lack:\n%s" % (self.name, result["summary"]["text"]),
                      **dict(result, changed=False))
        currency = cost["currency"]
        if cost["over_budget"]:
            if Decimal(cost["change"]["monthly"]["gross"]) < 0:
                self.module.warn("stack %s: budget: %s/month is still over the budget of %s/month after this "
                                 "plan, which lowers the cost" % (self.name, show(cost["monthly"]["gross"], currency),
                                                                  show(cost["budget"], currency)))
                return
            self.fail("stack %s: budget: the stack would cost %s/month (VAT included), more than the budget of "
                      "%s/month; nothing was changed. Raise budget or declare less:\n%s" % (
                          self.name, show(cost["monthly"]["gross"], currency), show(cost["budget"], currency),
                          result["summary"]["text"]), **dict(result, changed=False))

    def finish(self, result, ctx):
        result["resources"] = represent_all(ctx, self.name)
        result["api_requests"] = self.api.requests
        self.module.exit_json(**result)

    # -- the run ----------------------------------------------------------------------------------
    def run(self):
        params = self.module.params
        prune, teardown = params["prune"], params["state"] == "absent"
        declaration = dict(self.declaration)
        if teardown:
            kept = ("name", "location", "labels")
            declaration.update({key: [] for key in specs.STACK_DECLARATION if key not in kept})
            prune = True
            problems = []
        else:
            problems, warnings = check_declaration(declaration, prune=prune)
            for warning in warnings:
                self.module.warn(warning)
        expansion = expand(declaration)
        problems.extend(static_errors(expansion))
        if problems:
            self.fail_invalid(problems + self.cloud_problems(expansion, problems))

        ctx, stack_plan = self.read_and_plan(expansion, prune, teardown)
        lock = StackLock(self.api, self.name)
        for warning in sorted(set(stack_plan.warnings)):
            self.module.warn(warning)
        for kind, name in stack_plan.undeclared:
            self.module.warn("%s %s belongs to stack %s but is no longer declared; it is kept (prune: true deletes "
                             "it)" % (kind, name, self.name))
        result = self.outcome(stack_plan, ctx)
        self.check(stack_plan, result)
        other = lock.held_by_other(ctx)
        if other is not None and self.module.check_mode:
            self.module.warn("another run is in progress on stack %s (%s); this plan may be outdated when it ends" % (
                self.name, lock.describe(other)))
        if self.module.check_mode or not stack_plan.changed:
            if other is not None and not self.module.check_mode:
                removed = lock.remove_stale(other)
                if removed:
                    self.module.warn("stack %s: removed the lock left behind by %s" % (self.name, removed))
            self.finish(result, ctx)

        try:
            lock.acquire(params["lock_timeout"])
        except HetznerError as exc:
            refused = dict(result)
            refused.update(changed=False, failure=exc.failure())
            self.fail("stack %s: %s" % (self.name, exc.message), **refused)
        try:
            self.converge(lock, other, expansion, prune, teardown, ctx, stack_plan, result)
        finally:
            problem = lock.release()
            if problem:
                self.module.warn(problem)

    def converge(self, lock, other, expansion, prune, teardown, ctx, stack_plan, result):
        for taken in lock.taken_over:
            self.module.warn("took over the lock of stack %s from %s" % (self.name, taken))
        if lock.contended or other is not None:
            # another run changed the stack meanwhile: plan again on what is there now
            ctx, stack_plan = self.read_and_plan(expansion, prune, teardown)
            result.update(self.outcome(stack_plan, ctx))
            self.check(stack_plan, result)
            if not stack_plan.changed:
                self.finish(result, ctx)

        def reread(kinds):
            return read_state(self.api, kinds, self.parallel)

        failures = []
        for attempt in range(REPAIR_PASSES + 1):
            try:
                report = apply_stack(self.api, stack_plan, ctx, self.parallel, self.timeout, reread=reread)
            except HetznerError as exc:
                self.fail("stack %s: %s (re-run the task to continue; resources are found by name and label, "
                          "nothing is created twice)" % (self.name, exc.message), failure=exc.failure(),
                          **dict(result, changed=True, failures=failures))
            failures.extend(report.messages)
            result["failures"] = failures
            ctx, stack_plan = self.read_and_plan(expansion, prune, teardown,
                                                 known=unaffected(ctx, stack_plan, report))
            if stack_plan.errors or not stack_plan.changed:
                break
            if attempt < REPAIR_PASSES:
                result["repaired"].extend(plan_entries(stack_plan))
        for message in failures:
            self.module.warn("stack %s: %s" % (self.name, message))
        if stack_plan.errors or stack_plan.changed:
            left = plan_entries(stack_plan)
            self.fail("stack %s: not converged after %d attempts; still to do: %s; failures: %s. Re-run the task "
                      "to continue (nothing is created twice)" % (
                          self.name, REPAIR_PASSES + 1,
                          ", ".join("%s %s %s" % (e["action"], e["type"], e["name"]) for e in left) or "none",
                          "; ".join(failures + stack_plan.errors) or "none"),
                      **dict(result, changed=True, remaining=left, errors=stack_plan.errors))
        self.finish(result, ctx)


def main():
    module = HetznerModule(argument_spec=argument_spec(), supports_check_mode=True)
    try:
        StackRun(module).run()
    except HetznerError as exc:
        module.fail_json(msg=exc.message, failure=exc.failure(), changed=False)


if __name__ == "__main__":
    main()
