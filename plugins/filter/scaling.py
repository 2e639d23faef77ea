# Copyright: (c) 2026, autoscale.hetzner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Scaling: the servers of a tier from a count (scaling a tier is one variable in the inventory), and how
long a web server that goes away must stay out of rotation before it is deleted.

Documentation: numbered_servers.yml and drain_seconds.yml next to this file.
"""

from __future__ import annotations

import ipaddress

from ansible.errors import AnsibleFilterError

from ansible_collections.autoscale.hetzner.plugins.module_utils.planners import HEALTH_CHECK_TIMING_DEFAULTS


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


def drain_seconds(load_balancers):
    """The longest time any declared load balancer service takes to see a target fail its health check:
    interval x retries + timeout, each from the service's health_check or Hetzner's defaults; 0 without services."""
    if load_balancers is None:
        return 0
    if not isinstance(load_balancers, list):
        raise AnsibleFilterError("drain_seconds: the input must be the stack's load_balancers (a list), got %r" % (load_balancers,))
    longest = 0
    for lb_index, balancer in enumerate(load_balancers):
        if not isinstance(balancer, dict):
            raise AnsibleFilterError("drain_seconds: load_balancers[%d] must be a dict, got %r" % (lb_index, balancer))
        for service_index, service in enumerate(balancer.get("services") or []):
            where = "load_balancers[%d].services[%d].health_check" % (lb_index, service_index)
            check = (service or {}).get("health_check") or {}
            if not isinstance(check, dict):
                raise AnsibleFilterError("drain_seconds: %s must be a dict, got %r" % (where, check))
            timing = {}
            for key, default in HEALTH_CHECK_TIMING_DEFAULTS.items():
                value = check.get(key)
                try:
                    timing[key] = default if value is None else int(value)
                except (TypeError, ValueError):
                    raise AnsibleFilterError("drain_seconds: %s.%s must be a whole number of %s, got %r"
                                             % (where, key, "tries" if key == "retries" else "seconds", value))
            longest = max(longest, timing["interval"] * timing["retries"] + timing["timeout"])
    return longest


class FilterModule:
    def filters(self):
        return {"numbered_servers": numbered_servers, "drain_seconds": drain_seconds}
