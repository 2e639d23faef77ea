#!/usr/bin/python
# Copyright: (c) 2026, autoscale.hetzner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: network
short_description: Create, update and delete Hetzner Cloud networks with their subnets and routes
version_added: 0.1.0
description:
  - Ensures a private network, its subnets and its routes match the given options, in one module.
  - Everything is validated before anything changes - C(ip_range) must be an RFC 1918 range of at least /24,
    subnets must lie inside it, must not overlap, must be at least /30 and must share one network zone,
    routes must not overlap subnets and their gateway must lie inside the network.
  - A network's C(ip_range) can only be extended (same base address, shorter prefix).
author:
  - autoscale.hetzner contributors (@autoscale)
extends_documentation_fragment:
  - autoscale.hetzner.hcloud
  - autoscale.hetzner.hcloud.resource
options:
  name:
    description: Name of the network, unique in the project.
    type: str
    required: true
  ip_range:
    description: IPv4 range of the network in CIDR notation, for example C(10.0.0.0/16). Required to create it.
    type: str
  subnets:
    description:
      - The complete list of subnets. Subnets not listed are deleted. Omit to leave subnets unmanaged.
    type: list
    elements: dict
    suboptions:
      ip_range:
        description: Range of the subnet, inside the network's O(ip_range).
        type: str
        required: true
      network_zone:
        description: Network zone of the subnet; servers must be in a location of this zone to attach.
        type: str
        default: eu-central
      type:
        description: Type of the subnet. C(vswitch) couples a Robot vSwitch (O(subnets[].vswitch_id)); C(server) is the API's old name of C(cloud).
        type: str
        choices: [cloud, server, vswitch]
        default: cloud
      vswitch_id:
        description: ID of the vSwitch for subnets of type C(vswitch).
        type: int
  routes:
    description:
      - The complete list of routes. Routes not listed are deleted. Omit to leave routes unmanaged.
    type: list
    elements: dict
    suboptions:
      destination:
        description: Destination network in CIDR notation.
        type: str
        required: true
      gateway:
        description: Private IP of the server that routes the traffic.
        type: str
        required: true
  expose_routes_to_vswitch:
    description: Whether the routes are exposed to a coupled vSwitch.
    type: bool
  delete_protection:
    description: Protect the network from deletion.
    type: bool
  labels:
    description: User-defined labels. When given, they replace all labels of the network.
    type: dict
  state:
    description: Whether the network exists.
    type: str
    choices: [present, absent]
    default: present
"""

EXAMPLES = r"""
- name: Private network with one subnet per tier
  autoscale.hetzner.network:
    name: prod
    ip_range: 10.0.0.0/16
    subnets:
      - ip_range: 10.0.1.0/24
        network_zone: eu-central
      - ip_range: 10.0.2.0/24
        network_zone: eu-central
    routes:
      - destination: 10.100.0.0/24
        gateway: 10.0.1.2
    labels:
      env: prod

- name: Delete the network
  autoscale.hetzner.network:
    name: prod
    state: absent
"""

RETURN = r"""
hcloud_network:
  description: The network after the run (in check mode the planned network; null after deletion).
  returned: always
  type: dict
  contains:
    id:
      description: ID of the network; null in check mode for a network that would be created.
      type: int
      sample: 4711
    name:
      description: Name of the network.
      type: str
      sample: prod
    ip_range:
      description: Range of the network.
      type: str
      sample: 10.0.0.0/16
    subnets:
      description: Subnets, sorted by range.
      type: list
      elements: dict
      sample: [{ip_range: 10.0.1.0/24, network_zone: eu-central, type: cloud}]
    routes:
      description: Routes, sorted by destination.
      type: list
      elements: dict
      sample: [{destination: 10.100.0.0/24, gateway: 10.0.1.2}]
    expose_routes_to_vswitch:
      description: Whether routes are exposed to a vSwitch.
      type: bool
      sample: false
    delete_protection:
      description: Whether the network is protected from deletion.
      type: bool
      sample: false
    labels:
      description: Labels of the network.
      type: dict
      sample: {env: prod}
plan:
  description: The planned steps (requests) and validation messages.
  returned: always
  type: dict
  sample: {kind: network, name: prod, operation: update, phases: [[{op: action, command: add_subnet}]]}
"""

from ansible_collections.autoscale.hetzner.plugins.module_utils.hetzner_module import run_resource_module
from ansible_collections.autoscale.hetzner.plugins.module_utils import specs

ARGUMENT_SPEC = {
    "name": {"type": "str", "required": True},
    "ip_range": {"type": "str"},
    "subnets": {"type": "list", "elements": "dict", "options": specs.SUBNET},
    "routes": {"type": "list", "elements": "dict", "options": specs.ROUTE},
    "expose_routes_to_vswitch": {"type": "bool"},
    "delete_protection": {"type": "bool"},
    "labels": {"type": "dict"},
    "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
}


def main():
    run_resource_module("network", ARGUMENT_SPEC)


if __name__ == "__main__":
    main()
