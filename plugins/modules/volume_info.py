#!/usr/bin/python
# Copyright: (c) 2026, autoscale.hetzner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: volume_info
short_description: List Hetzner Cloud volumes
version_added: 0.1.0
description:
  - Returns the volumes of the project, all of them or filtered by O(id), O(name) or O(label_selector).
  - Each entry has the same form as the C(hcloud_volume) result of M(autoscale.hetzner.volume), so the output can be compared with or fed
    into that module.
  - Entries hold size, location, server, device path, protection and labels.
author:
  - autoscale.hetzner contributors (@autoscale)
extends_documentation_fragment:
  - autoscale.hetzner.hcloud
  - autoscale.hetzner.hcloud.info
"""

EXAMPLES = r"""
- name: All volumes
  autoscale.hetzner.volume_info:
  register: result

- name: One by name
  autoscale.hetzner.volume_info:
    name: db-data
  register: result

- name: By label
  autoscale.hetzner.volume_info:
    label_selector: env=prod
  register: result
"""

RETURN = r"""
hcloud_volume_info:
  description:
    - The matching volumes, in the form M(autoscale.hetzner.volume) returns (names instead of IDs for references).
  returned: always
  type: list
  elements: dict
  sample: [{id: 1, name: db-data, labels: {}}]
"""

from ansible_collections.autoscale.hetzner.plugins.module_utils.hetzner_module import run_info_module


def main():
    run_info_module("volume")


if __name__ == "__main__":
    main()
