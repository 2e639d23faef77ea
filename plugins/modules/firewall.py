#!/usr/bin/python
# Copyright: (c) 2026, autoscale.hetzner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: firewall
short_description: Create, update and delete Hetzner Cloud Firewalls, their rules and what they apply to
version_added: 0.1.0
description:
  - Ensures a Cloud Firewall, its rules and the servers and label selectors it applies to match the given options.
  - Rules are compared in order after canonicalising addresses (IPv6 compressed), so a rerun changes nothing.
  - Cloud Firewalls filter only the public interface. Rules with private source ranges have no effect and
    produce a warning; filter private networks on the host (host firewall role).
  - An inbound rule that opens port 22 to C(0.0.0.0/0) or C(::/0) produces a warning.
author:
  - autoscale.hetzner contributors (@autoscale)
extends_documentation_fragment:
  - autoscale.hetzner.hcloud
  - autoscale.hetzner.hcloud.resource
options:
  name:
    description: Name of the firewall, unique in the project.
    type: str
    required: true
  rules:
    description:
      - The complete, ordered list of rules. Omit to leave the rules unmanaged; an empty list removes all rules.
      - Without any C(in) rule all inbound traffic is dropped; once an C(out) rule exists outbound is default-deny.
    type: list
    elements: dict
    suboptions:
      direction:
        description: Traffic direction.
        type: str
        choices: [in, out]
        default: in
      protocol:
        description: Protocol.
        type: str
        choices: [tcp, udp, icmp, esp, gre]
        required: true
      port:
        description: Port or port range (C(80), C(1024-5000)) for C(tcp) and C(udp); ignored otherwise.
        type: str
      source_ips:
        description: Allowed source networks (CIDR) of C(in) rules.
        type: list
        elements: str
      destination_ips:
        description: Allowed destination networks (CIDR) of C(out) rules.
        type: list
        elements: str
      description:
        description: Description of the rule.
        type: str
  apply_to_servers:
    description:
      - Names (or IDs) of the servers the firewall is applied to directly. Exact list; omit to leave unmanaged.
    type: list
    elements: str
  apply_to_label_selectors:
    description:
      - Label selectors (for example C(role=web)); the firewall applies to every matching server. Exact list;
        omit to leave unmanaged.
    type: list
    elements: str
  labels:
    description: User-defined labels. When given, they replace all labels of the firewall.
    type: dict
  state:
    description:
      - Whether the firewall exists. Deleting removes it from all resources first.
    type: str
    choices: [present, absent]
    default: present
"""

EXAMPLES = r"""
- name: Web firewall for every server labelled role=web
  autoscale.hetzner.firewall:
    name: web
    rules:
      - protocol: tcp
        port: "443"
        source_ips: ["0.0.0.0/0", "::/0"]
        description: https
      - protocol: tcp
        port: "22"
        source_ips: [198.51.100.0/24]
        description: ssh from the office
      - protocol: icmp
        source_ips: ["0.0.0.0/0", "::/0"]
    apply_to_label_selectors:
      - role=web
"""

RETURN = r"""
hcloud_firewall:
  description: The firewall after the run (in check mode the planned firewall; null after deletion).
  returned: always
  type: dict
  contains:
    id:
      description: ID of the firewall; null in check mode for a firewall that would be created.
      type: int
      sample: 7
    name:
      description: Name of the firewall.
      type: str
      sample: web
    rules:
      description: Rules in canonical form (C(port) null for icmp/esp/gre, unused address lists empty).
      type: list
      elements: dict
      sample: [{direction: in, protocol: tcp, port: "443", source_ips: ["0.0.0.0/0", "::/0"], destination_ips: [],
                description: https}]
    apply_to_servers:
      description: Names of the servers the firewall is applied to directly.
      type: list
      elements: str
      sample: [web-1]
    apply_to_label_selectors:
      description: Label selectors the firewall is applied to.
      type: list
      elements: str
      sample: [role=web]
    labels:
      description: Labels of the firewall.
      type: dict
      sample: {}
plan:
  description: The planned steps (requests) and validation messages.
  returned: always
  type: dict
  sample: {kind: firewall, name: web, operation: update, phases: [[{op: action, command: set_rules}]]}
"""

from ansible_collections.autoscale.hetzner.plugins.module_utils.hetzner_module import run_resource_module
from ansible_collections.autoscale.hetzner.plugins.module_utils import specs

ARGUMENT_SPEC = {
    "name": {"type": "str", "required": True},
    "rules": {"type": "list", "elements": "dict", "options": specs.FIREWALL_RULE},
    "apply_to_servers": {"type": "list", "elements": "str"},
    "apply_to_label_selectors": {"type": "list", "elements": "str"},
    "labels": {"type": "dict"},
    "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
}


def main():
    run_resource_module("firewall", ARGUMENT_SPEC)


if __name__ == "__main__":
    main()
