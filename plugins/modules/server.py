#!/usr/bin/python
# Copyright: (c) 2026, autoscale.hetzner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: server
short_description: Create, update, power, rebuild and delete Hetzner Cloud servers
version_added: 0.1.0
description:
  - Ensures a server matches the given options - type, image, location, SSH keys, private networks with fixed
    IPs, firewalls, labels, placement group, user data, backups and protection - and its power state.
  - All checks run before anything changes. The server type must be orderable in the location according to the
    API's own per-location availability and deprecation data (for example C(cx22) fails and suggests C(cx23));
    the image must exist for the type's architecture; the location must be in the network zone of every
    network; fixed private IPs must lie inside a subnet and be free.
  - Changing O(server_type) or O(placement_group) stops the server and starts it again afterwards
    (unless O(state=stopped)).
  - O(ssh_keys) and O(user_data) only take effect at creation (and O(user_data) at rebuild); the image only
    changes with O(state=rebuild).
author:
  - autoscale.hetzner contributors (@autoscale)
extends_documentation_fragment:
  - autoscale.hetzner.hcloud
  - autoscale.hetzner.hcloud.resource
options:
  name:
    description: Name of the server, unique in the project, a valid hostname.
    type: str
    required: true
  server_type:
    description: Server type name, for example C(cx23) or C(cpx22). Required to create the server.
    type: str
  image:
    description: Image name (for example C(debian-12)) or ID. Required to create or rebuild the server.
    type: str
  location:
    description: Location name (for example C(fsn1)). Cannot change after creation.
    type: str
  ssh_keys:
    description: Names (or IDs) of SSH keys for root. Only used at creation.
    type: list
    elements: str
  networks:
    description:
      - The complete list of private networks the server is attached to. Omit to leave unmanaged;
        an empty list detaches all.
    type: list
    elements: dict
    suboptions:
      network:
        description: Name (or ID) of the network.
        type: str
        required: true
      ip:
        description: Fixed private IP; if omitted the API assigns one. Changing it re-attaches the server.
        type: str
      alias_ips:
        description: Additional private IPs of the server in this network.
        type: list
        elements: str
  firewalls:
    description:
      - Names (or IDs) of the firewalls applied to the server directly (not through a label selector).
        Exact list; omit to leave unmanaged.
    type: list
    elements: str
  placement_group:
    description: Name (or ID) of the placement group; an empty string removes the server from its group.
    type: str
  user_data:
    description: Cloud-init user data, at most 32 KiB. Used at creation and rebuild.
    type: str
  backups:
    description: Whether automatic backups are enabled (+20% of the server price).
    type: bool
  enable_ipv4:
    description: Give the server a public IPv4 at creation.
    type: bool
  enable_ipv6:
    description: Give the server a public IPv6 network at creation.
    type: bool
  delete_protection:
    description: Protect the server from deletion. Must equal O(rebuild_protection) (an API rule).
    type: bool
  rebuild_protection:
    description: Protect the server from rebuilds. Must equal O(delete_protection) (an API rule).
    type: bool
  upgrade_disk:
    description: When changing the server type, grow the disk too (the type can then never shrink again).
    type: bool
    default: false
  labels:
    description: User-defined labels. When given, they replace all labels of the server.
    type: dict
  state:
    description:
      - V(present) creates the server (running) and keeps its power state; V(started) and V(stopped) also
        ensure the power state; V(restarted) reboots a running server (and starts a stopped one);
        V(rebuild) reinstalls it from O(image) (the disk is lost) every time the task runs; V(absent) deletes it.
      - V(rebuilt) is a deprecated alias of V(rebuild) (the name hetzner.hcloud uses), to be removed in 1.0.0.
    type: str
    choices: [present, absent, started, stopped, rebuild, rebuilt, restarted]
    default: present
"""

EXAMPLES = r"""
- name: Web server in a private network with a fixed IP
  autoscale.hetzner.server:
    name: web-1
    server_type: cx23
    image: debian-12
    location: fsn1
    ssh_keys: [admin]
    networks:
      - network: prod
        ip: 10.0.1.10
    firewalls: [web]
    placement_group: web-spread
    labels:
      role: web
    state: started

- name: Bigger type (stops and starts the server)
  autoscale.hetzner.server:
    name: web-1
    server_type: cx33

- name: Reinstall
  autoscale.hetzner.server:
    name: web-1
    image: debian-12
    state: rebuild
"""

RETURN = r"""
hcloud_server:
  description: The server after the run (in check mode the planned server; null after deletion).
  returned: always
  type: dict
  contains:
    id:
      description: ID of the server; null in check mode for a server that would be created.
      type: int
      sample: 42
    name:
      description: Name of the server.
      type: str
      sample: web-1
    server_type:
      description: Server type name.
      type: str
      sample: cx23
    image:
      description: Image name (or ID for snapshots).
      type: str
      sample: debian-12
    location:
      description: Location name.
      type: str
      sample: fsn1
    status:
      description: Power state, V(running) or V(off) (or a transitional state).
      type: str
      sample: running
    ipv4_address:
      description: Public IPv4 address; absent in check mode for a new server.
      type: str
      sample: 203.0.113.10
    ipv6:
      description: Public IPv6 network; absent in check mode for a new server.
      type: str
      sample: 2001:db8:1234::/64
    networks:
      description: Private networks with IP and alias IPs, sorted by network name.
      type: list
      elements: dict
      sample: [{network: prod, ip: 10.0.1.10, alias_ips: []}]
    firewalls:
      description: Names of the firewalls applied directly.
      type: list
      elements: str
      sample: [web]
    placement_group:
      description: Name of the placement group, or null.
      type: str
      sample: web-spread
    backups:
      description: Whether backups are enabled.
      type: bool
      sample: false
    delete_protection:
      description: Whether the server is protected from deletion.
      type: bool
      sample: false
    rebuild_protection:
      description: Whether the server is protected from rebuilds.
      type: bool
      sample: false
    enable_ipv4:
      description: Whether the server has a public IPv4.
      type: bool
      sample: true
    enable_ipv6:
      description: Whether the server has a public IPv6 network.
      type: bool
      sample: true
    labels:
      description: Labels of the server.
      type: dict
      sample: {role: web}
plan:
  description: The planned steps (requests) and validation messages.
  returned: always
  type: dict
  sample: {kind: server, name: web-1, operation: update,
           phases: [[{op: action, command: poweroff}], [{op: action, command: change_type}], [{op: action, command: poweron}]]}
"""

from ansible_collections.autoscale.hetzner.plugins.module_utils.hetzner_module import run_resource_module
from ansible_collections.autoscale.hetzner.plugins.module_utils import specs

ARGUMENT_SPEC = {
    "name": {"type": "str", "required": True},
    "server_type": {"type": "str"},
    "image": {"type": "str"},
    "location": {"type": "str"},
    "ssh_keys": {"type": "list", "elements": "str", "no_log": False},
    "networks": {"type": "list", "elements": "dict", "options": specs.SERVER_NETWORK},
    "firewalls": {"type": "list", "elements": "str"},
    "placement_group": {"type": "str"},
    "user_data": {"type": "str"},
    "backups": {"type": "bool"},
    "enable_ipv4": {"type": "bool"},
    "enable_ipv6": {"type": "bool"},
    "delete_protection": {"type": "bool"},
    "rebuild_protection": {"type": "bool"},
    "upgrade_disk": {"type": "bool", "default": False},
    "labels": {"type": "dict"},
    "state": {"type": "str", "choices": ["present", "absent", "started", "stopped", "rebuild", "rebuilt", "restarted"],
              "default": "present"},
}

# Values renamed to hetzner.hcloud's names, accepted with a deprecation warning until 1.0.0.
RENAMED_VALUES = {"state": {"rebuilt": "rebuild"}}


def main():
    run_resource_module("server", ARGUMENT_SPEC, renamed_values=RENAMED_VALUES)


if __name__ == "__main__":
    main()
