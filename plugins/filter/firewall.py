# Copyright: (c) 2026, autoscale.hetzner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Host firewall openings: check them, and resolve them for one host from the inventory.

An opening is data (see roles/host_firewall/README.md):
  {name: app-from-web, port: 8080 | "8000-8100" | [80, 443], protocol: tcp | udp,
   on_groups: [app], from_groups: [web], from_cidrs: ["10.0.0.0/16"]}
Documentation: firewall_opening_problems.yml and firewall_rules.yml next to this file.
"""

from __future__ import annotations

import re

from ansible.errors import AnsibleFilterError

from ansible_collections.autoscale.hetzner.plugins.filter.netspec import (
    canonical_cidrs, cidrs_of_family, invalid_cidrs, invalid_ports, nft_ports)

KEYS = {"name", "port", "protocol", "on_groups", "from_groups", "from_cidrs", "comment"}
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
ANYWHERE = {"0.0.0.0/0", "::/0"}


def _list(value):
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def firewall_opening_problems(openings, where="host_firewall_openings"):
    """Messages for every problem of a list of openings, each naming the entry and field (where[i].field)."""
    if openings is None:
        return []
    if not isinstance(openings, (list, tuple)):
        return ["%s: must be a list of openings, got %s" % (where, type(openings).__name__)]
    problems = []
    names = {}
    for index, opening in enumerate(openings):
        at = "%s[%d]" % (where, index)
        if not isinstance(opening, dict):
            problems.append("%s: must be a dict (name, port, from_groups/from_cidrs), got %r" % (at, opening))
            continue
        unknown = sorted(set(opening) - KEYS)
        if unknown:
            problems.append("%s: unknown key(s) %s; an opening has %s" % (at, ", ".join(unknown), ", ".join(sorted(KEYS))))
        name = opening.get("name")
        if not isinstance(name, str) or not NAME.match(name):
            problems.append("%s.name: %r must be 1-63 letters, digits, '_', '.' or '-' (it names the rule)" % (at, name))
        elif name in names:
            problems.append("%s.name: %s is used twice (also %s[%d])" % (at, name, where, names[name]))
        else:
            names[name] = index
        if "port" not in opening:
            problems.append("%s.port: missing; give a port, a range first-last, or a list" % at)
        else:
            bad = invalid_ports(opening["port"])
            if bad:
                problems.append("%s.port: %s is not a port 1-65535 or a range first-last (first < last)"
                                % (at, ", ".join(repr(b) for b in bad)))
        protocol = opening.get("protocol", "tcp")
        if protocol not in ("tcp", "udp"):
            problems.append("%s.protocol: %r must be tcp or udp" % (at, protocol))
        for key in ("on_groups", "from_groups"):
            values = opening.get(key, [])
            if not isinstance(values, (list, tuple)) or not all(isinstance(v, str) and v for v in values):
                problems.append("%s.%s: must be a list of inventory group names, got %r" % (at, key, values))
        cidrs = opening.get("from_cidrs", [])
        if not isinstance(cidrs, (list, tuple)):
            problems.append("%s.from_cidrs: must be a list of addresses/CIDRs, got %r" % (at, cidrs))
        else:
            bad = invalid_cidrs(cidrs)
            if bad:
                problems.append("%s.from_cidrs: %s is not an IP address or CIDR (e.g. 10.0.1.0/24, 0.0.0.0/0)"
                                % (at, ", ".join(repr(b) for b in bad)))
        if not _list(opening.get("from_groups")) and not _list(opening.get("from_cidrs")):
            problems.append("%s: no sources; give from_groups and/or from_cidrs "
                            "(from_cidrs: [0.0.0.0/0, '::/0'] opens to everyone)" % at)
    return problems


def firewall_fragment_problems(fragments, current=""):
    """firewall_opening_problems for the openings other roles keep on the host (openings.d/<name>.json).

    The fragment being written by the running role (current) is named by its variable, the others
    by their file on the host.
    """
    problems = []
    for fragment in fragments or []:
        name = fragment.get("name", "?") if isinstance(fragment, dict) else "?"
        if name == current:
            where, suffix = "host_firewall_fragment_openings", " (fragment %s)" % name
        else:
            where, suffix = "/etc/host_firewall/openings.d/%s.json: openings" % name, ""
        if not isinstance(fragment, dict) or not isinstance(fragment.get("openings"), list):
            problems.append("%s: not a list of openings%s" % (where, suffix))
            continue
        problems.extend(p + suffix for p in firewall_opening_problems(fragment["openings"], where))
    return problems


def _peer_address(hostvars, host, address_var):
    try:
        variables = hostvars[host]
        value = variables.get(address_var) if hasattr(variables, "get") else variables[address_var]
    except KeyError:
        value = None
    return value if isinstance(value, str) and value else None


def firewall_sources(from_cidrs, from_groups=None, groups=None, hostvars=None, address_var="hcloud_private_ipv4"):
    """Canonical source networks: the CIDRs plus the addresses (address_var) of the groups' hosts."""
    sources = list(_list(from_cidrs))
    for group in _list(from_groups):
        for peer in (groups or {}).get(group, []):
            address = _peer_address(hostvars, peer, address_var)
            if address is not None:
                sources.append(address)
    return canonical_cidrs(sources)


def firewall_rules(openings, host, group_names, groups, hostvars, address_var="hcloud_private_ipv4"):
    """The rules one host gets: openings that apply to it, with their sources resolved.

    Returns a list of {name, protocol, ports (nft expression), v4, v6, v4_any, v6_any, missing}, where
    v4/v6 are the source sets (canonical) and missing lists source hosts without address_var.
    Openings whose sources resolve to nothing (an empty group) yield no rule.
    """
    problems = firewall_opening_problems(openings, "openings")
    if problems:
        raise AnsibleFilterError("firewall_rules: " + "; ".join(problems))
    member_of = set(group_names or [])
    rules = []
    for opening in openings or []:
        on_groups = _list(opening.get("on_groups"))
        if on_groups and not member_of.intersection(on_groups):
            continue
        sources = firewall_sources(opening.get("from_cidrs"), opening.get("from_groups"), groups, hostvars, address_var)
        missing = [peer for group in _list(opening.get("from_groups")) for peer in (groups or {}).get(group, [])
                   if _peer_address(hostvars, peer, address_var) is None]
        v4, v6 = cidrs_of_family(sources, 4), cidrs_of_family(sources, 6)
        if not sources:
            continue
        rules.append({
            "name": opening["name"],
            "protocol": opening.get("protocol", "tcp"),
            "ports": nft_ports(opening["port"]),
            "v4": [c for c in v4 if c not in ANYWHERE],
            "v6": [c for c in v6 if c not in ANYWHERE],
            "v4_any": "0.0.0.0/0" in v4,
            "v6_any": "::/0" in v6,
            "missing": sorted(set(missing)),
        })
    return rules


class FilterModule:
    def filters(self):
        return {
            "firewall_opening_problems": firewall_opening_problems,
            "firewall_fragment_problems": firewall_fragment_problems,
            "firewall_sources": firewall_sources,
            "firewall_rules": firewall_rules,
        }
