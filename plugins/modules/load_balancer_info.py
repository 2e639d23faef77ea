#!/usr/bin/python
# Copyright: (c) 2026, autoscale.hetzner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: load_balancer_info
short_description: List Hetzner Cloud load balancers
version_added: 0.1.0
description:
  - Returns the load balancers of the project, all of them or filtered by O(id), O(name) or O(label_selector).
  - Each entry has the same form as the C(hcloud_load_balancer) result of M(autoscale.hetzner.load_balancer), so the output can be compared with or fed
    into that module.
  - Entries hold type, location, addresses, network, services, targets and labels.
author:
  - autoscale.hetzner contributors (@autoscale)
extends_documentation_fragment:
  - autoscale.hetzner.hcloud
  - autoscale.hetzner.hcloud.info
"""

EXAMPLES = r"""
- name: All load balancers
  autoscale.hetzner.load_balancer_info:
  register: result

- name: One by name
  autoscale.hetzner.load_balancer_info:
    name: web-lb
  register: result

- name: By label
  autoscale.hetzner.load_balancer_info:
    label_selector: env=prod
  register: result
"""

RETURN = r"""
hcloud_load_balancer_info:
  description:
    - The matching load balancers, in the form M(autoscale.hetzner.load_balancer) returns (names instead of IDs for references).
  returned: always
  type: list
  elements: dict
  sample: [{id: 1, name: web-lb, labels: {}}]
"""

from ansible_collections.autoscale.hetzner.plugins.module_utils.hetzner_module import run_info_module


def main():
    run_info_module("load_balancer")


if __name__ == "__main__":
    main()
