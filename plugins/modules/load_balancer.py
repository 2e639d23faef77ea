#!/usr/bin/python
# Copyright: (c) 2026, autoscale.hetzner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: load_balancer
short_description: Create, update and delete Hetzner Cloud load balancers with services, health checks and targets
version_added: 0.1.0
description:
  - Ensures a load balancer, its network attachment, its services (with health checks) and its targets (servers
    or label selectors) match the given options, in one module.
  - Services are identified by O(services[].listen_port); fields of a service that are not given keep their
    current value (or the API default for a new service).
  - A target with O(targets[].use_private_ip) needs the load balancer in a network (O(network)).
author:
  - autoscale.hetzner contributors (@autoscale)
extends_documentation_fragment:
  - autoscale.hetzner.hcloud
  - autoscale.hetzner.hcloud.resource
options:
  name:
    description: Name of the load balancer, unique in the project.
    type: str
    required: true
  load_balancer_type:
    description: Load balancer type, for example C(lb11). Required to create it.
    type: str
  location:
    description: Location name. Required to create it; cannot change.
    type: str
  algorithm:
    description: Balancing algorithm.
    type: str
    choices: [round_robin, least_connections]
  network:
    description: Name (or ID) of the private network to attach; an empty string detaches.
    type: str
  network_ip:
    description: Fixed private IP in O(network); if omitted the API assigns one.
    type: str
  public_interface:
    description: Whether the public interface is enabled. Disabling needs O(network) and private targets.
    type: bool
  services:
    description: The complete list of services. Omit to leave unmanaged; an empty list removes all.
    type: list
    elements: dict
    suboptions:
      protocol:
        description: Protocol of the service.
        type: str
        choices: [tcp, http, https]
        required: true
      listen_port:
        description: Port the load balancer listens on; identifies the service.
        type: int
        required: true
      destination_port:
        description: Port of the targets; defaults to O(services[].listen_port) for tcp and 80 for http(s).
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
            description: Seconds between checks.
            type: int
          timeout:
            description: Seconds until a check fails.
            type: int
          retries:
            description: Failed checks until a target is unhealthy.
            type: int
          http:
            description: HTTP check settings.
            type: dict
            suboptions:
              domain:
                description: Host header of the check.
                type: str
              path:
                description: Request path.
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
    description: The complete list of targets. Omit to leave unmanaged; an empty list removes all.
    type: list
    elements: dict
    suboptions:
      type:
        description: Kind of target.
        type: str
        choices: [server, label_selector]
        default: server
      server:
        description: Name (or ID) of the server, for O(targets[].type=server).
        type: str
      label_selector:
        description: Label selector, for O(targets[].type=label_selector).
        type: str
      use_private_ip:
        description: Send traffic over the private network.
        type: bool
        default: false
  delete_protection:
    description: Protect the load balancer from deletion.
    type: bool
  labels:
    description: User-defined labels. When given, they replace all labels of the load balancer.
    type: dict
  state:
    description: Whether the load balancer exists.
    type: str
    choices: [present, absent]
    default: present
"""

EXAMPLES = r"""
- name: HTTP load balancer in front of every role=web server, over the private network
  autoscale.hetzner.load_balancer:
    name: web-lb
    load_balancer_type: lb11
    location: fsn1
    network: prod
    services:
      - protocol: http
        listen_port: 80
        destination_port: 8080
        health_check:
          protocol: http
          port: 8080
          http:
            path: /health
            status_codes: ["2??"]
    targets:
      - type: label_selector
        label_selector: role=web
        use_private_ip: true
"""

RETURN = r"""
hcloud_load_balancer:
  description: The load balancer after the run (in check mode the planned one; null after deletion).
  returned: always
  type: dict
  contains:
    id:
      description: ID of the load balancer; null in check mode for one that would be created.
      type: int
      sample: 77
    name:
      description: Name of the load balancer.
      type: str
      sample: web-lb
    load_balancer_type:
      description: Type name.
      type: str
      sample: lb11
    location:
      description: Location name.
      type: str
      sample: fsn1
    algorithm:
      description: Balancing algorithm.
      type: str
      sample: round_robin
    ipv4_address:
      description: Public IPv4; absent in check mode for a new load balancer.
      type: str
      sample: 198.51.100.7
    ipv6_address:
      description: Public IPv6; absent in check mode for a new load balancer.
      type: str
      sample: 2001:db8::1
    network:
      description: Name of the attached network, or null.
      type: str
      sample: prod
    network_ip:
      description: Private IP in that network, or null.
      type: str
      sample: 10.0.1.100
    public_interface:
      description: Whether the public interface is enabled.
      type: bool
      sample: true
    services:
      description: Services sorted by listen port, with health checks.
      type: list
      elements: dict
      sample: [{protocol: http, listen_port: 80, destination_port: 8080, proxyprotocol: false}]
    targets:
      description: Targets (server names or label selectors).
      type: list
      elements: dict
      sample: [{type: label_selector, label_selector: role=web, use_private_ip: true}]
    delete_protection:
      description: Whether the load balancer is protected from deletion.
      type: bool
      sample: false
    labels:
      description: Labels of the load balancer.
      type: dict
      sample: {}
plan:
  description: The planned steps (requests) and validation messages.
  returned: always
  type: dict
  sample: {kind: load_balancer, name: web-lb, operation: update, phases: [[{op: action, command: add_target}]]}
"""

from ansible_collections.autoscale.hetzner.plugins.module_utils.hetzner_module import run_resource_module
from ansible_collections.autoscale.hetzner.plugins.module_utils import specs

ARGUMENT_SPEC = {
    "name": {"type": "str", "required": True},
    "load_balancer_type": {"type": "str"},
    "location": {"type": "str"},
    "algorithm": {"type": "str", "choices": ["round_robin", "least_connections"]},
    "network": {"type": "str"},
    "network_ip": {"type": "str"},
    "public_interface": {"type": "bool"},
    "services": {"type": "list", "elements": "dict", "options": specs.SERVICE},
    "targets": {"type": "list", "elements": "dict", "options": specs.TARGET},
    "delete_protection": {"type": "bool"},
    "labels": {"type": "dict"},
    "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
}


def main():
    run_resource_module("load_balancer", ARGUMENT_SPEC)


if __name__ == "__main__":
    main()
