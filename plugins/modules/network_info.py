#!/usr/bin/python
# Copyright: (c) 2026, autoscale.hetzner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: network_info
short_description: List Hetzner Cloud networks
version_added: 0.1.0
description:
  - Returns the networks of the project, all of them or filtered by O(id), O(name) or O(label_selector).
  - Each entry has the same form as the C(hcloud_network) result of M(autoscale.hetzner.network), so the output can be compared with or fed
    into that module.
  - Entries hold IP range, subnets, routes, protection and labels.
author:
  - autoscale.hetzner contributors (@autoscale)
extends_documentation_fragment:
  - autoscale.hetzner.hcloud
  - autoscale.hetzner.hcloud.info
"""

EXAMPLES = r"""
- name: All networks
  autoscale.hetzner.network_info:
  register: result

- name: One by name
  autoscale.hetzner.network_info:
    name: prod
  register: result

- name: By label
  autoscale.hetzner.network_info:
    label_selector: env=prod
  register: result
"""

RETURN = r"""
hcloud_network_info:
  description:
    - The matching networks, in the form M(autoscale.hetzner.network) returns (names instead of IDs for references).
  returned: always
  type: list
  elements: dict
  sample: [{id: 1, name: prod, labels: {}}]
"""

from ansible_collections.autoscale.hetzner.plugins.module_utils.hetzner_module import run_info_module


def main():
    run_info_module("network")


if __name__ == "__main__":
    main()
