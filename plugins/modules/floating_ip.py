#!/usr/bin/python
# Copyright: (c) 2026, autoscale.hetzner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: floating_ip
short_description: Create, assign, update and delete Hetzner Cloud Floating IPs
version_added: 0.1.0
description:
  - Ensures a Floating IP matches the given options and is assigned to the given server.
  - The IP is identified by O(name). Its type and home location cannot change.
  - The operating system of the server must be configured to use the IP.
  - Deleting an assigned IP unassigns it first (the API refuses to delete assigned IPs).
author:
  - autoscale.hetzner contributors (@autoscale)
extends_documentation_fragment:
  - autoscale.hetzner.hcloud
  - autoscale.hetzner.hcloud.resource
options:
  name:
    description: Name of the Floating IP, unique in the project.
    type: str
    required: true
  type:
    description: IP version. Cannot change after creation.
    type: str
    choices: [ipv4, ipv6]
  home_location:
    description:
      - Home location (routing is optimal there). Required to create the IP unless O(server) is given,
        then the server's location is used.
    type: str
  server:
    description: Name (or ID) of the server the IP is assigned to; an empty string unassigns it.
    type: str
  description:
    description: Description of the IP.
    type: str
  delete_protection:
    description: Protect the IP from deletion.
    type: bool
  labels:
    description: User-defined labels. When given, they replace all labels of the IP.
    type: dict
  state:
    description: Whether the IP exists.
    type: str
    choices: [present, absent]
    default: present
"""

EXAMPLES = r"""
- name: Failover IP on the active load balancer host
  autoscale.hetzner.floating_ip:
    name: vip
    type: ipv4
    server: lb-1
    labels:
      role: vip
"""

RETURN = r"""
hcloud_floating_ip:
  description: The Floating IP after the run (in check mode the planned IP; null after deletion).
  returned: always
  type: dict
  contains:
    id:
      description: ID of the IP; null in check mode for an IP that would be created.
      type: int
      sample: 9
    name:
      description: Name of the IP.
      type: str
      sample: vip
    ip:
      description: The address (IPv4) or network (IPv6 /64); absent in check mode for a new IP.
      type: str
      sample: 198.51.100.1
    type:
      description: IP version.
      type: str
      sample: ipv4
    home_location:
      description: Home location name.
      type: str
      sample: fsn1
    server:
      description: Name of the server the IP is assigned to, or null.
      type: str
      sample: lb-1
    description:
      description: Description of the IP.
      type: str
      sample: null
    delete_protection:
      description: Whether the IP is protected from deletion.
      type: bool
      sample: false
    labels:
      description: Labels of the IP.
      type: dict
      sample: {role: vip}
plan:
  description: The planned steps (requests) and validation messages.
  returned: always
  type: dict
  sample: {kind: floating_ip, name: vip, operation: update, phases: [[{op: action, command: assign}]]}
"""

from ansible_collections.autoscale.hetzner.plugins.module_utils.hetzner_module import run_resource_module

ARGUMENT_SPEC = {
    "name": {"type": "str", "required": True},
    "type": {"type": "str", "choices": ["ipv4", "ipv6"]},
    "home_location": {"type": "str"},
    "server": {"type": "str"},
    "description": {"type": "str"},
    "delete_protection": {"type": "bool"},
    "labels": {"type": "dict"},
    "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
}


def main():
    run_resource_module("floating_ip", ARGUMENT_SPEC)


if __name__ == "__main__":
    main()
