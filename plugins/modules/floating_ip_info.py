#!/usr/bin/python
# Copyright: (c) 2026, autoscale.hetzner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: floating_ip_info
short_description: List Hetzner Cloud Floating IPs
version_added: 0.1.0
description:
  - Returns the Floating IPs of the project, all of them or filtered by O(id), O(name) or O(label_selector).
  - Each entry has the same form as the C(hcloud_floating_ip) result of M(autoscale.hetzner.floating_ip), so the output can be compared with or fed
    into that module.
  - Entries hold address, type, home location, server, protection and labels.
author:
  - autoscale.hetzner contributors (@autoscale)
extends_documentation_fragment:
  - autoscale.hetzner.hcloud
  - autoscale.hetzner.hcloud.info
"""

EXAMPLES = r"""
- name: All Floating IPs
  autoscale.hetzner.floating_ip_info:
  register: result

- name: One by name
  autoscale.hetzner.floating_ip_info:
    name: vip
  register: result

- name: By label
  autoscale.hetzner.floating_ip_info:
    label_selector: env=prod
  register: result
"""

RETURN = r"""
hcloud_floating_ip_info:
  description:
    - The matching Floating IPs, in the form M(autoscale.hetzner.floating_ip) returns (names instead of IDs for references).
  returned: always
  type: list
  elements: dict
  sample: [{id: 1, name: vip, labels: {}}]
"""

from ansible_collections.autoscale.hetzner.plugins.module_utils.hetzner_module import run_info_module


def main():
    run_info_module("floating_ip")


if __name__ == "__main__":
    main()
