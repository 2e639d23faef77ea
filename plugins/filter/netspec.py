# Copyright: (c) 2026, autoscale.hetzner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Address and port filters for the roles (host_firewall, fail2ban, ssh_hardening).

Python's ipaddress module instead of ansible.utils.ipaddr: the roles need a handful of
checks, and ipaddr would add two dependencies (the ansible.utils collection and netaddr on
the controller). Documentation: the YAML files next to this one.
"""

from __future__ import annotations

import ipaddress

from ansible.errors import AnsibleFilterError


def _as_list(values, filter_name):
    if values is None:
        return []
    if isinstance(values, (str, int)):
        return [values]
    if isinstance(values, (list, tuple, set)):
        return list(values)
    raise AnsibleFilterError("%s: expected a list of addresses, got %s" % (filter_name, type(values).__name__))


def _network(value):
    """ipaddress network for an address or CIDR (host bits are masked), or None."""
    if not isinstance(value, str) or not value.strip() or value != value.strip():
        return None
    try:
        return ipaddress.ip_network(value, strict=False)
    except ValueError:
        return None


def _text(network):
    """A single address without prefix, a network as CIDR."""
    if network.num_addresses == 1:
        return str(network.network_address)
    return str(network)


def invalid_cidrs(values):
    """The entries that are neither an IPv4/IPv6 address nor a network in CIDR notation."""
    return [v for v in _as_list(values, "invalid_cidrs") if _network(v) is None]


def canonical_cidrs(values):
    """Canonical form, without duplicates, IPv4 before IPv6, each family sorted."""
    networks = set()
    for value in _as_list(values, "canonical_cidrs"):
        network = _network(value)
        if network is None:
            raise AnsibleFilterError("canonical_cidrs: %r is not an IP address or CIDR" % (value,))
        networks.add(network)
    return [_text(n) for n in sorted(networks, key=lambda n: (n.version, n.network_address, n.prefixlen))]


def cidrs_of_family(values, family):
    """The entries (canonical) of one IP version: 4 or 6."""
    if family not in (4, 6, "4", "6"):
        raise AnsibleFilterError("cidrs_of_family: family must be 4 or 6, got %r" % (family,))
    return [c for c in canonical_cidrs(values) if ipaddress.ip_network(c).version == int(family)]


def cidrs_contain(values, address):
    """True when the address lies in one of the networks."""
    try:
        ip = ipaddress.ip_address(str(address).strip())
    except ValueError:
        raise AnsibleFilterError("cidrs_contain: %r is not an IP address" % (address,))
    return any(ip in ipaddress.ip_network(c) for c in canonical_cidrs(values) if ipaddress.ip_network(c).version == ip.version)


def _port(value):
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if 1 <= value <= 65535 else None
    if isinstance(value, str) and value.isdigit():
        return _port(int(value))
    return None


def _port_item(item):
    """(first, last) of one port or range item, or None when it is not valid."""
    if isinstance(item, str) and "-" in item:
        first, last = item.split("-", 1)
        first, last = _port(first.strip()), _port(last.strip())
        if first is None or last is None or first >= last:
            return None
        return first, last
    port = _port(item.strip() if isinstance(item, str) else item)
    return None if port is None else (port, port)


def invalid_ports(value):
    """The items of a port spec (a port, "first-last", or a list of those) that are not valid."""
    items = value if isinstance(value, (list, tuple)) else [value]
    if not items:
        return [value]
    return [item for item in items if _port_item(item) is None]


def nft_ports(value):
    """A port spec as an nft expression: 22, 8000-8100 or { 80, 443 }."""
    if invalid_ports(value):
        raise AnsibleFilterError("nft_ports: invalid port(s) %r: use 1-65535 or first-last" % (invalid_ports(value),))
    items = value if isinstance(value, (list, tuple)) else [value]
    ranges = []
    for first, last in sorted({_port_item(item) for item in items}):
        if ranges and first <= ranges[-1][1] + 1:      # nft refuses overlapping intervals in a set
            ranges[-1] = (ranges[-1][0], max(last, ranges[-1][1]))
        else:
            ranges.append((first, last))
    texts = [str(a) if a == b else "%d-%d" % (a, b) for a, b in ranges]
    return texts[0] if len(texts) == 1 else "{ %s }" % ", ".join(texts)


class FilterModule:
    def filters(self):
        return {
            "invalid_cidrs": invalid_cidrs,
            "canonical_cidrs": canonical_cidrs,
            "cidrs_of_family": cidrs_of_family,
            "cidrs_contain": cidrs_contain,
            "invalid_ports": invalid_ports,
            "nft_ports": nft_ports,
        }
