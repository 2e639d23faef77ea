#!/usr/bin/python
# Copyright: (c) 2026, autoscale.hetzner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: placement_group_info
short_description: List Hetzner Cloud placement groups
version_added: 0.1.0
description:
  - Returns the placement groups of the project, all of them or filtered by O(id), O(name) or O(label_selector).
  - Each entry has the same form as the C(hcloud_placement_group) result of M(autoscale.hetzner.placement_group), so the output can be compared with or fed
    into that module.
  - Entries hold type and labels.
author:
  - autoscale.hetzner contributors (@autoscale)
extends_documentation_fragment:
  - autoscale.hetzner.hcloud
  - autoscale.hetzner.hcloud.info
"""

EXAMPLES = r"""
- name: All placement groups
  autoscale.hetzner.placement_group_info:
  register: result

- name: One by name
  autoscale.hetzner.placement_group_info:
    name: db-spread
  register: result

- name: By label
  autoscale.hetzner.placement_group_info:
    label_selector: env=prod
  register: result
"""

RETURN = r"""
hcloud_placement_group_info:
  description:
    - The matching placement groups, in the form M(autoscale.hetzner.placement_group) returns (names instead of IDs for references).
  returned: always
  type: list
  elements: dict
  sample: [{id: 1, name: db-spread, labels: {}}]
"""

from ansible_collections.autoscale.hetzner.plugins.module_utils.hetzner_module import run_info_module


def main():
    run_info_module("placement_group")


if __name__ == "__main__":
    main()
