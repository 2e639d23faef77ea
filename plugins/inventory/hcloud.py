# Copyright (c) 2026, autoscale.hetzner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: hcloud
short_description: Hetzner Cloud servers as a dynamic inventory, in as few API requests as possible
description:
  - Reads the servers of a Hetzner Cloud project and turns them into inventory hosts.
  - Uses a YAML configuration file whose name ends with C(hcloud.yml) or C(hcloud.yaml).
  - Every host gets C(hcloud_*) facts (id, name, status, server type, location, labels, public and
    private addresses, image, placement group, protection). The facts hetzner.hcloud's plugin sets have the
    same names and values there and here (C(hcloud_ipv6_network) C(2001:db8::) and C(hcloud_ipv6_network_mask)
    C(64)); an address the server does not have (C(hcloud_ipv4), C(hcloud_ipv6), C(hcloud_private_ipv4)) is
    undefined, so C(default()) supplies a fallback.
  - Groups come from labels (the value of each key in O(label_groups) becomes a group, so a server
    labelled C(tier=web) lands in group C(web)), and from the location, the server type and the
    private networks (O(group_by)).
  - Requests are kept to a minimum. The servers are listed with 50 per page; once the first page is
    known the remaining pages are fetched in parallel. The private networks are listed once (not one
    request per network), and no extra request is sent to validate the token. For 1,000 servers in
    10 networks this is 21 requests.
  - O(label_selector) and O(status) are filters applied by the API, so filtered-out servers are never
    transferred. O(network) filters on the controller, in the lists already read (no extra request).
  - Options named as in the C(hetzner.hcloud.hcloud) inventory plugin mean the same thing there and
    here (O(network), O(connect_with) values, O(label_selector), O(status), O(group), O(hostvars_prefix)).
author:
  - autoscale.hetzner contributors (@autoscale)
requirements:
  - hcloud >= 2.0 (hcloud-python)
extends_documentation_fragment:
  - constructed
  - inventory_cache
options:
  plugin:
    description: Marks this file as an inventory source of this plugin.
    required: true
    type: str
    choices: [autoscale.hetzner.hcloud]
  api_token:
    description:
      - The API token of the Hetzner Cloud project (Read access is enough).
      - May be a template, for example a vaulted variable passed with C(--extra-vars).
      - If not set, the first of these is used, in this order
        - the E(HCLOUD_TOKEN) environment variable,
        - the E(HETZNER_API_TOKEN) environment variable (a C(.env) file exported with C(set -a; . ./.env)),
        - the token of the hcloud CLI's active context in C(~/.config/hcloud/cli.toml) (or E(HCLOUD_CONFIG),
          context E(HCLOUD_CONTEXT)), as the modules do.
      - The token is never printed.
    type: str
    aliases: [token]
    env:
      # Ansible takes the last variable that is set: HCLOUD_TOKEN wins over HETZNER_API_TOKEN.
      - name: HETZNER_API_TOKEN
      - name: HCLOUD_TOKEN
  api_endpoint:
    description:
      - The Hetzner Cloud API endpoint; point it at another endpoint (for example a local emulation) for tests.
    type: str
    default: https://api.hetzner.cloud/v1
    aliases: [endpoint]
    env:
      - name: HCLOUD_ENDPOINT
  label_selector:
    description:
      - Only servers matching this label selector, for example C(env=production,tier in (web,app)).
      - Evaluated by the API.
    type: str
    default: ""
  status:
    description:
      - Only servers in one of these states. Evaluated by the API.
    type: list
    elements: str
    default: []
    choices: [running, initializing, starting, stopping, "off", deleting, migrating, rebuilding, unknown]
  group:
    description: Every host is added to this group.
    type: str
    default: hcloud
  label_groups:
    description:
      - Label keys whose value becomes a plain group name. With the default, a server labelled
        C(tier=web) and C(role=primary) is in the groups C(web) and C(primary).
      - Values are turned into valid group names (characters other than letters, digits and C(_)
        become C(_)).
    type: list
    elements: str
    default: [tier, role]
  group_by:
    description:
      - Further groups, named C(<kind>_<value>), for example C(location_nbg1), C(server_type_cx23),
        C(network_autoscale_network) (one group per attached private network), C(status_running),
        C(image_debian_12).
    type: list
    elements: str
    default: [location, server_type, network]
    choices: [location, server_type, network, status, image]
  connect_with:
    description:
      - Which address becomes C(ansible_host).
      - V(public_ipv4) the public IPv4; V(private_ipv4) the private IP in O(network) (or in the first
        attached network when O(network) is not set); V(hostname) the server name (resolved by DNS or
        SSH config).
      - V(name) is a deprecated alias of V(hostname) (the name hetzner.hcloud uses), to be removed in 1.0.0.
      - When the chosen address does not exist (for example no public IPv4), C(ansible_host) is not
        set for that host; a O(compose) entry can supply a fallback.
    type: str
    default: public_ipv4
    choices: [public_ipv4, private_ipv4, hostname, name]
  network:
    description:
      - Name or ID of a private network. Only the servers attached to it become hosts, and their IP in it is
        C(hcloud_private_ipv4) and, with O(connect_with=private_ipv4), C(ansible_host) (as in hetzner.hcloud).
      - A name is looked up first, then an ID. A network that does not exist is an error that names this
        option (the inventory source is then skipped with a warning, or fails with
        C(any_unparsed_is_failed)).
      - May be a template.
      - Resolved and applied in the lists the plugin reads anyway, so it costs no request.
    type: str
  hostvars_prefix:
    description: Prefix of the host variables coming from the Hetzner Cloud.
    type: str
    default: hcloud_
  parallel_requests:
    description:
      - How many list pages are fetched at the same time. V(1) fetches them one after the other.
    type: int
    default: 8
"""

EXAMPLES = r"""
# inventories/production/hcloud.yml -- HCLOUD_TOKEN comes from the environment
plugin: autoscale.hetzner.hcloud

---
# Only the production stack, only running servers, only the servers in autoscale-network, connected
# over that network (for example from a bastion inside it)
plugin: autoscale.hetzner.hcloud
label_selector: stack=production
status: [running]
connect_with: private_ipv4
network: autoscale-network

---
# Token from a vaulted variable, extra groups and variables with the constructed features,
# cached for 10 minutes
plugin: autoscale.hetzner.hcloud
api_token: "{{ vault_hcloud_token }}"
label_groups: [tier, role, env]
group_by: [location, server_type, network, image]
keyed_groups:
  - key: hcloud_labels.env | default('none')
    prefix: env
groups:
  databases: "'db' in (hcloud_labels.tier | default(''))"
compose:
  ansible_host: hcloud_ipv4 | default(hcloud_private_ipv4)
  ansible_user: "'root'"
strict: false
cache: true
cache_plugin: ansible.builtin.jsonfile
cache_connection: ~/.cache/ansible-inventory
cache_timeout: 600
"""

import re
from concurrent.futures import ThreadPoolExecutor

from ansible.errors import AnsibleError
from ansible.module_utils.common.text.converters import to_native
from ansible_collections.autoscale.hetzner.plugins.module_utils.credentials import cli_context_token
from ansible.plugins.inventory import BaseInventoryPlugin, Cacheable, Constructable

from ansible_collections.autoscale.hetzner.plugins.module_utils.api import HetznerApi, HetznerError, make_transport

USER_AGENT_NAME = "autoscale.hetzner-inventory"
USER_AGENT_VERSION = "1.0.0"

_INVALID_GROUP_CHARS = re.compile(r"[^A-Za-z0-9_]")


def group_name(value):
    """Turn a label value, location or network name into a valid group name."""
    name = _INVALID_GROUP_CHARS.sub("_", str(value))
    if name[:1].isdigit():
        name = "_" + name
    return name


def first_ipv6_address(network):
    """The first address of the server's /64, e.g. 2001:db8::/64 -> 2001:db8::1."""
    if not network:
        return None
    prefix = network.split("/", 1)[0]
    return prefix + "1" if prefix.endswith("::") else prefix


class InventoryModule(BaseInventoryPlugin, Constructable, Cacheable):
    NAME = "autoscale.hetzner.hcloud"

    def verify_file(self, path):
        return super().verify_file(path) and path.endswith(("hcloud.yml", "hcloud.yaml"))

    # -- reading the API -------------------------------------------------------------------

    def _api(self):
        """The collection's one API client path (module_utils/api.py): a client per thread, retries,
        pages 2..N fetched in parallel once page 1 told how many there are."""
        token = self.get_option("api_token")
        if token and "{{" in token:
            token = self.templar.template(token)
        if not token:
            token = cli_context_token()
        if not token:
            raise AnsibleError("autoscale.hetzner.hcloud: api_token (or HCLOUD_TOKEN) is required")
        transport = make_transport(to_native(token), self.get_option("api_endpoint"),
                                   application_name=USER_AGENT_NAME, application_version=USER_AGENT_VERSION)
        return HetznerApi(transport, parallel=self.get_option("parallel_requests"))

    def _fetch(self):
        """Servers and networks, read concurrently. Returns (servers, networks_by_id)."""
        api = self._api()
        params = {}
        if self.get_option("label_selector"):
            params["label_selector"] = self.get_option("label_selector")
        if self.get_option("status"):
            params["status"] = self.get_option("status")
        # Page 1 of both collections leaves at the same time. One list of networks replaces the
        # per-network lookups (GET /networks/{id}) that lazy client models would send.
        with ThreadPoolExecutor(max_workers=2) as executor:
            networks_future = executor.submit(api.list_path, "/networks", "networks")
            servers = api.list_path("/servers", "servers", params)
            networks = networks_future.result()
        return servers, {network["id"]: network for network in networks}

    # -- turning API objects into hosts ----------------------------------------------------

    def _selected_network_id(self, networks):
        """The ID of the network the option names: by name first, then by ID (hetzner.hcloud's order)."""
        wanted = self.get_option("network")
        if wanted and "{{" in str(wanted):
            wanted = self.templar.template(wanted)
        if not wanted:
            return None
        wanted = str(wanted)
        for network in networks.values():
            if network["name"] == wanted:
                return network["id"]
        for network in networks.values():
            if str(network["id"]) == wanted:
                return network["id"]
        known = ", ".join(sorted(n["name"] for n in networks.values())) or "none"
        raise AnsibleError(
            "autoscale.hetzner.hcloud: network: no private network is named %r or has that ID in this project "
            "(its networks: %s). Set network to the name or ID of an existing network (only the servers attached "
            "to it become hosts), or remove the option to list the servers of every network." % (wanted, known))

    @staticmethod
    def in_network(server, network_id):
        return any(attachment["network"] == network_id for attachment in server.get("private_net") or [])

    @staticmethod
    def build_host(server, networks, selected_network_id):
        """The hcloud_* facts of one server (without prefix), from the raw API objects."""
        public_net = server.get("public_net") or {}
        ipv4 = (public_net.get("ipv4") or {}).get("ip")
        ipv6_network = (public_net.get("ipv6") or {}).get("ip")
        server_type = server.get("server_type") or {}
        location = server.get("location") or (server.get("datacenter") or {}).get("location") or {}
        image = server.get("image") or {}
        placement_group = server.get("placement_group") or {}

        private_networks = []
        for attachment in server.get("private_net") or []:
            network = networks.get(attachment["network"]) or {}
            private_networks.append(
                {
                    "id": attachment["network"],
                    "name": network.get("name"),
                    "ip": attachment.get("ip"),
                    "alias_ips": attachment.get("alias_ips") or [],
                }
            )
        private_ipv4 = None
        if private_networks:
            if selected_network_id is None:
                private_ipv4 = private_networks[0]["ip"]
            else:
                private_ipv4 = next((p["ip"] for p in private_networks if p["id"] == selected_network_id), None)

        ipv6_prefix, ipv6_mask = (ipv6_network.split("/", 1) + [None])[:2] if ipv6_network else (None, None)
        host = {
            "id": server["id"],
            "name": server["name"],
            "status": server.get("status"),
            "created": server.get("created"),
            "server_type": server_type.get("name"),
            "type": server_type.get("name"),
            "architecture": server_type.get("architecture"),
            "cores": server_type.get("cores"),
            "memory": server_type.get("memory"),
            "disk": server_type.get("disk"),
            "location": location.get("name"),
            "network_zone": location.get("network_zone"),
            "labels": dict(server.get("labels") or {}),
            "ipv4": ipv4,
            "ipv6": first_ipv6_address(ipv6_network),
            # as hetzner.hcloud: 2001:db8:1:2:: and 64 for the server's 2001:db8:1:2::/64
            "ipv6_network": ipv6_prefix or None,
            "ipv6_network_mask": ipv6_mask or None,
            "private_ipv4": private_ipv4,
            "private_networks": private_networks,
            "image": image.get("name") or image.get("description"),
            "image_id": image.get("id"),
            "image_name": image.get("name") or image.get("description"),
            "image_os_flavor": image.get("os_flavor"),
            "placement_group": placement_group.get("name"),
            "volumes": list(server.get("volumes") or []),
            "load_balancers": list(server.get("load_balancers") or []),
            "protection": dict(server.get("protection") or {}),
            "rescue_enabled": server.get("rescue_enabled"),
            "locked": server.get("locked"),
        }
        # An address the server does not have is left undefined, as in hetzner.hcloud, so that
        # `hcloud_ipv4 | default(...)` falls back.
        for key in ("ipv4", "ipv6", "ipv6_network", "ipv6_network_mask", "private_ipv4"):
            if host[key] is None:
                del host[key]
        return host

    def _connect_with(self):
        connect_with = self.get_option("connect_with")
        if connect_with == "name":
            self.display.deprecated(
                "autoscale.hetzner.hcloud: connect_with: name is renamed connect_with: hostname (hetzner.hcloud's "
                "name for the same thing); write hostname", version="1.0.0")
            return "hostname"
        return connect_with

    @staticmethod
    def _ansible_host(host, connect_with):
        if connect_with == "public_ipv4":
            return host.get("ipv4")
        if connect_with == "private_ipv4":
            return host.get("private_ipv4")
        return host["name"]

    def _plain_groups(self, host):
        groups = []
        labels = host["labels"]
        for key in self.get_option("label_groups") or []:
            if labels.get(key):
                groups.append(group_name(labels[key]))
        for kind in self.get_option("group_by") or []:
            if kind == "network":
                groups.extend(
                    "network_" + group_name(p["name"] or p["id"]) for p in host["private_networks"]
                )
            elif kind == "image":
                if host["image_name"]:
                    groups.append("image_" + group_name(host["image_name"]))
            elif host.get(kind):
                groups.append(kind + "_" + group_name(host[kind]))
        return groups

    def _populate(self, hosts):
        prefix = self.get_option("hostvars_prefix") or ""
        top_group = self.inventory.add_group(self.get_option("group"))
        strict = self.get_option("strict")
        connect_with = self._connect_with()
        for host in hosts:
            name = host["name"]
            self.inventory.add_host(name, group=top_group)
            for key, value in host.items():
                self.inventory.set_variable(name, prefix + key, value)
            ansible_host = self._ansible_host(host, connect_with)
            if ansible_host:
                self.inventory.set_variable(name, "ansible_host", ansible_host)
            else:
                self.display.vvv("autoscale.hetzner.hcloud: %s has no address for connect_with=%s" % (name, connect_with))
            for group in self._plain_groups(host):
                self.inventory.add_group(group)
                self.inventory.add_child(group, name)

            hostvars = self.inventory.get_host(name).get_vars()
            self._set_composite_vars(self.get_option("compose"), hostvars, name, strict=strict)
            self._add_host_to_composed_groups(self.get_option("groups"), hostvars, name, strict=strict)
            self._add_host_to_keyed_groups(self.get_option("keyed_groups"), hostvars, name, strict=strict)

    def parse(self, inventory, loader, path, cache=True):
        super().parse(inventory, loader, path, cache)
        self._read_config_data(path)
        self.templar.available_variables = self._vars

        cache_key = self.get_cache_key(path)
        use_cache = self.get_option("cache") and cache
        update_cache = self.get_option("cache") and not cache

        hosts = None
        if use_cache:
            try:
                hosts = self._cache[cache_key]
            except KeyError:
                update_cache = True

        if hosts is None:
            try:
                servers, networks = self._fetch()
            except HetznerError as exc:
                raise AnsibleError("autoscale.hetzner.hcloud: %s" % exc.message) from exc
            selected = self._selected_network_id(networks)
            if selected is not None:  # as hetzner.hcloud: only the servers attached to that network
                servers = [server for server in servers if self.in_network(server, selected)]
            hosts = [self.build_host(server, networks, selected) for server in servers]

        if update_cache:
            self._cache[cache_key] = hosts

        self._populate(hosts)
