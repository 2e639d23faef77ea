#!/usr/bin/python
# Copyright: (c) 2026, autoscale.hetzner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: placement_group
short_description: Create, update and delete Hetzner Cloud placement groups
version_added: 0.1.0
description:
  - Ensures a placement group matches the given options. Servers of a C(spread) group run on different
    physical hosts. Servers join a group with the O(autoscale.hetzner.server#module:placement_group) option.
author:
  - autoscale.hetzner contributors (@autoscale)
extends_documentation_fragment:
  - autoscale.hetzner.hcloud
  - autoscale.hetzner.hcloud.resource
options:
  name:
    description: Name of the placement group, unique in the project.
    type: str
    required: true
  type:
    description: Type of the group; cannot change after creation.
    type: str
    choices: [spread]
    default: spread
  labels:
    description: User-defined labels. When given, they replace all labels of the group.
    type: dict
  state:
    description: Whether the group exists.
    type: str
    choices: [present, absent]
    default: present
"""

EXAMPLES = r"""
- name: Spread the database servers over hosts
  autoscale.hetzner.placement_group:
    name: db-spread
    labels:
      tier: db
"""

RETURN = r"""
hcloud_placement_group:
  description: The placement group after the run (in check mode the planned group; null after deletion).
  returned: always
  type: dict
  contains:
    id:
      description: ID of the group; null in check mode for a group that would be created.
      type: int
      sample: 12
    name:
      description: Name of the group.
      type: str
      sample: db-spread
    type:
      description: Type of the group.
      type: str
      sample: spread
    labels:
      description: Labels of the group.
      type: dict
      sample: {tier: db}
plan:
  description: The planned steps (requests) and validation messages.
  returned: always
  type: dict
  sample: {kind: placement_group, name: db-spread, operation: create}
"""

from ansible_collections.autoscale.hetzner.plugins.module_utils.hetzner_module import run_resource_module

ARGUMENT_SPEC = {
    "name": {"type": "str", "required": True},
    "type": {"type": "str", "choices": ["spread"], "default": "spread"},
    "labels": {"type": "dict"},
    "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
}


def main():
    run_resource_module("placement_group", ARGUMENT_SPEC)


if __name__ == "__main__":
    main()
