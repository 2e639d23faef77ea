#!/usr/bin/python
# Copyright: (c) 2026, autoscale.hetzner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: ssh_key
short_description: Create, update and delete Hetzner Cloud SSH keys
version_added: 0.1.0
description:
  - Ensures an SSH key of the Hetzner Cloud project matches the given options.
  - The key is identified by O(name). Keys are compared by type and key material, the comment is ignored.
  - The API cannot change a key's material; a different O(public_key) replaces the key (delete and create).
    Servers keep the keys they were created with.
author:
  - autoscale.hetzner contributors (@autoscale)
extends_documentation_fragment:
  - autoscale.hetzner.hcloud
  - autoscale.hetzner.hcloud.resource
options:
  name:
    description: Name of the SSH key, unique in the project.
    type: str
    required: true
  public_key:
    description:
      - The public key in OpenSSH format, for example C(ssh-ed25519 AAAA... comment).
      - Required to create the key.
    type: str
  labels:
    description:
      - User-defined labels. When given, they replace all labels of the key.
    type: dict
  state:
    description: Whether the key exists.
    type: str
    choices: [present, absent]
    default: present
"""

EXAMPLES = r"""
- name: Upload the admin key
  autoscale.hetzner.ssh_key:
    name: admin
    public_key: "{{ lookup('ansible.builtin.file', '~/.ssh/id_ed25519.pub') }}"
    labels:
      owner: ops

- name: Remove it
  autoscale.hetzner.ssh_key:
    name: admin
    state: absent
"""

RETURN = r"""
hcloud_ssh_key:
  description: The SSH key after the run (in check mode the planned key; null after deletion).
  returned: always
  type: dict
  contains:
    id:
      description: ID of the key; null in check mode for a key that would be created.
      type: int
      sample: 5
    name:
      description: Name of the key.
      type: str
      sample: admin
    public_key:
      description: Key type and material (without comment).
      type: str
      sample: ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI...
    fingerprint:
      description: MD5 fingerprint as computed by the API.
      type: str
      sample: "b7:2f:30:a0:2f:6c:58:6c:21:04:58:61:ba:06:3b:2f"
    labels:
      description: Labels of the key.
      type: dict
      sample: {owner: ops}
plan:
  description: The planned steps (requests) and validation messages.
  returned: always
  type: dict
  sample: {kind: ssh_key, name: admin, operation: create, phases: [[{op: create, kind: ssh_key}]], errors: [], warnings: []}
"""

from ansible_collections.autoscale.hetzner.plugins.module_utils.hetzner_module import run_resource_module

ARGUMENT_SPEC = {
    "name": {"type": "str", "required": True},
    "public_key": {"type": "str"},
    "labels": {"type": "dict"},
    "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
}


def main():
    run_resource_module("ssh_key", ARGUMENT_SPEC)


if __name__ == "__main__":
    main()
