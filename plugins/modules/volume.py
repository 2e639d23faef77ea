#!/usr/bin/python
# Copyright: (c) 2026, autoscale.hetzner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: volume
short_description: Create, attach, resize and delete Hetzner Cloud volumes
version_added: 0.1.0
description:
  - Ensures a block storage volume matches the given options and is attached to the given server.
  - Volumes only grow; a smaller O(size) fails before anything changes. They attach only to servers in
    their own location.
  - Deleting an attached volume detaches it first.
author:
  - autoscale.hetzner contributors (@autoscale)
extends_documentation_fragment:
  - autoscale.hetzner.hcloud
  - autoscale.hetzner.hcloud.resource
options:
  name:
    description: Name of the volume, unique in the project.
    type: str
    required: true
  size:
    description: Size in GB. Required to create the volume; can only grow.
    type: int
  location:
    description: Location of the volume. Required to create it unless O(server) is given.
    type: str
  server:
    description: Name (or ID) of the server the volume is attached to; an empty string detaches it.
    type: str
  automount:
    description: Mount the volume in the server after attaching it (cloud-init).
    type: bool
    default: false
  format:
    description: Filesystem created on a new volume. Only applied at creation.
    type: str
    choices: [xfs, ext4]
  delete_protection:
    description: Protect the volume from deletion.
    type: bool
  labels:
    description: User-defined labels. When given, they replace all labels of the volume.
    type: dict
  state:
    description: Whether the volume exists.
    type: str
    choices: [present, absent]
    default: present
"""

EXAMPLES = r"""
- name: Data volume for the database
  autoscale.hetzner.volume:
    name: db-data
    size: 50
    server: db-1
    format: ext4
    automount: true
"""

RETURN = r"""
hcloud_volume:
  description: The volume after the run (in check mode the planned volume; null after deletion).
  returned: always
  type: dict
  contains:
    id:
      description: ID of the volume; null in check mode for a volume that would be created.
      type: int
      sample: 3
    name:
      description: Name of the volume.
      type: str
      sample: db-data
    size:
      description: Size in GB.
      type: int
      sample: 50
    location:
      description: Location name.
      type: str
      sample: fsn1
    server:
      description: Name of the server it is attached to, or null.
      type: str
      sample: db-1
    format:
      description: Filesystem, or null.
      type: str
      sample: ext4
    linux_device:
      description: Device path inside the server; absent in check mode for a new volume.
      type: str
      sample: /dev/disk/by-id/scsi-0HC_Volume_3
    delete_protection:
      description: Whether the volume is protected from deletion.
      type: bool
      sample: false
    labels:
      description: Labels of the volume.
      type: dict
      sample: {}
plan:
  description: The planned steps (requests) and validation messages.
  returned: always
  type: dict
  sample: {kind: volume, name: db-data, operation: update, phases: [[{op: action, command: resize}]]}
"""

from ansible_collections.autoscale.hetzner.plugins.module_utils.hetzner_module import run_resource_module

ARGUMENT_SPEC = {
    "name": {"type": "str", "required": True},
    "size": {"type": "int"},
    "location": {"type": "str"},
    "server": {"type": "str"},
    "automount": {"type": "bool", "default": False},
    "format": {"type": "str", "choices": ["xfs", "ext4"]},
    "delete_protection": {"type": "bool"},
    "labels": {"type": "dict"},
    "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
}


def main():
    run_resource_module("volume", ARGUMENT_SPEC)


if __name__ == "__main__":
    main()
