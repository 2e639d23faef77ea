#!/usr/bin/python
# Copyright: (c) 2026, autoscale.hetzner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: ssh_key_info
short_description: List Hetzner Cloud SSH keys
version_added: 0.1.0
description:
  - Returns the SSH keys of the project, all of them or filtered by O(id), O(name) or O(label_selector).
  - Each entry has the same form as the C(hcloud_ssh_key) result of M(autoscale.hetzner.ssh_key), so the output can be compared with or fed
    into that module.
  - Entries hold fingerprint, public key and labels.
author:
  - autoscale.hetzner contributors (@autoscale)
extends_documentation_fragment:
  - autoscale.hetzner.hcloud
  - autoscale.hetzner.hcloud.info
"""

EXAMPLES = r"""
- name: All SSH keys
  autoscale.hetzner.ssh_key_info:
  register: result

- name: One by name
  autoscale.hetzner.ssh_key_info:
    name: admin
  register: result

- name: By label
  autoscale.hetzner.ssh_key_info:
    label_selector: env=prod
  register: result
"""

RETURN = r"""
hcloud_ssh_key_info:
  description:
    - The matching SSH keys, in the form M(autoscale.hetzner.ssh_key) returns (names instead of IDs for references).
  returned: always
  type: list
  elements: dict
  sample: [{id: 1, name: admin, labels: {}}]
"""

from ansible_collections.autoscale.hetzner.plugins.module_utils.hetzner_module import run_info_module


def main():
    run_info_module("ssh_key")


if __name__ == "__main__":
    main()
