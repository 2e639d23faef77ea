# Copyright: (c) 2026, autoscale.hetzner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The servers of a tier from a count: scaling a tier is one variable in the inventory.

Documentation: numbered_servers.yml next to this file.
"""

from __future__ import annotations

import ipaddress

from ansible.errors import AnsibleFilterError


def numbered_servers(prefix, count, subnet=None, first=10, locations=None, labels=None):
    """[{name: <prefix>-1, ip: <subnet host first>, location: ...}, ...] for count servers."""
    where = "numbered_servers(%r)" % (prefix,)
    if not isinstance(prefix, str) or not prefix:
        raise AnsibleFilterError("numbered_servers: the input must be the name prefix of the servers (e.g. 'mystack-web'), got %r" % (prefix,))
    try:
        count = int(count)
        first = int(first)
    except (TypeError, ValueError) as exc:
        raise AnsibleFilterError("%s: count and first must be whole numbers (%s)" % (where, exc))
    if count < 0:
        raise AnsibleFilterError("%s: count is %d; a tier has 0 or more servers" % (where, count))
    if locations is not None and (isinstance(locations, str) or not all(isinstance(x, str) and x for x in locations)):
        raise AnsibleFilterError("%s: locations must be a list of location names (e.g. ['nbg1', 'fsn1']), got %r" % (where, locations))
    if labels is not None and not isinstance(labels, dict):
        raise AnsibleFilterError("%s: labels must be a dict, got %r" % (where, labels))
    hosts = None
    if subnet is not None:
        try:
            network = ipaddress.ip_network(subnet, strict=True)
        except ValueError as exc:
            raise AnsibleFilterError("%s: subnet %r is not a network in CIDR notation (%s)" % (where, subnet, exc))
        hosts = [str(network.network_address + first + i) for i in range(count)]
        last = network.network_address + first + count - 1 if count else None
        # Hetzner keeps the first address of a subnet for its gateway and the last one for broadcast.
        if count and (first < 2 or last >= network.broadcast_address):
            raise AnsibleFilterError(
                "%s: %d servers from host %d do not fit in %s (usable: .2 to the address before broadcast); "
                "lower count or first, or give a larger subnet" % (where, count, first, subnet))
    servers = []
    for i in range(count):
        server = {"name": "%s-%d" % (prefix, i + 1)}
        if hosts:
            server["ip"] = hosts[i]
        if locations:
            server["location"] = locations[i % len(locations)]
        if labels:
            server["labels"] = dict(labels)
        servers.append(server)
    return servers


class FilterModule:
    def filters(self):
        return {"numbered_servers": numbered_servers}
