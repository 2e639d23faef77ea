"""Hetzner Cloud Firewalls on the host: table inet localcloud_fw, rendered whole on every change.

Like Hetzner: only the public interface is filtered (traffic on network bridges is not); a server
with no firewall gets everything; as soon as a firewall applies, inbound is default-deny except
what a rule allows, and established/related traffic is allowed (stateful). Outbound stays open
unless there is at least one outbound rule, then outbound is default-deny too.

Bridged traffic on lc-pub reaches the inet hooks through br_netfilter (nf_call_iptables on the
bridge), so conntrack works; host -> machine goes through output, machine -> host through input.
"""
from __future__ import annotations

import ipaddress

from .slots import Slot

FW_TABLE, PUB_BRIDGE = Slot(0).table("fw"), Slot(0).public_bridge

L4 = {"tcp": "tcp", "udp": "udp", "icmp": "icmp", "esp": "esp", "gre": "gre"}


def _v4(cidrs) -> list[str] | None:
    """IPv4 members of a Hetzner source/destination list; None = any address."""
    out = []
    for c in cidrs or []:
        net = ipaddress.ip_network(str(c), strict=False)
        if net.version != 4:
            continue
        if net.prefixlen == 0:
            return None
        out.append(net)
    # nft refuses overlapping intervals in one set ("conflicting intervals")
    return [str(n) for n in ipaddress.collapse_addresses(out)]


def _port(port) -> str | None:
    if port is None:
        return None
    p = str(port).strip()
    if p in ("", "any"):
        return None
    if "-" in p:
        lo, hi = (int(x) for x in p.split("-", 1))
        return f"{lo}-{hi}" if lo != hi else str(lo)
    return str(int(p))


def _rule(rule: dict, addr_key: str, addr_field: str) -> str | None:
    proto = str(rule.get("protocol", "")).lower()
    if proto not in L4:
        return None
    addrs = _v4(rule.get(addr_key))
    if addrs == []:
        return None                         # only IPv6 addresses: the machines have no public IPv6
    parts = []
    if addrs is not None:
        parts.append(f"ip {addr_field} {{ {', '.join(addrs)} }}")
    port = _port(rule.get("port")) if proto in ("tcp", "udp") else None
    if port:
        parts.append(f"{proto} dport {port}")
    else:
        parts.append(f"meta l4proto {proto}")
    parts.append("accept")
    return " ".join(parts)


def render(servers: dict[int, tuple], table: str = FW_TABLE, bridge: str = PUB_BRIDGE) -> str:
    """nft script for {server_id: (public_ipv4, merged rules[, floating IPs routed to it])} of the
    servers that have firewalls."""
    lines = [f"table inet {table}", f"delete table inet {table}", f"table inet {table} {{"]
    inmap, outmap = [], []
    for sid, (ip, rules, *more) in sorted(servers.items()):
        floating = more[0] if more else ()
        ins = [_rule(r, "source_ips", "saddr") for r in rules if r.get("direction", "in") == "in"]
        outs = [_rule(r, "destination_ips", "daddr") for r in rules if r.get("direction") == "out"]
        lines.append(f"  chain s{sid}_in {{")
        lines.append("    ct state established,related accept")
        lines += [f"    {r}" for r in ins if r]
        lines.append("    counter drop")
        lines.append("  }")
        inmap += [f"{address} : jump s{sid}_in" for address in (ip, *floating)]
        if any(r.get("direction") == "out" for r in rules):
            lines.append(f"  chain s{sid}_out {{")
            lines.append("    ct state established,related accept")
            lines += [f"    {r}" for r in outs if r]
            lines.append("    counter drop")
            lines.append("  }")
            outmap += [f"{address} : jump s{sid}_out" for address in (ip, *floating)]
    to_server = f'oifname "{bridge}" ip daddr vmap {{ {", ".join(inmap)} }}' if inmap else ""
    from_server = f'iifname "{bridge}" ip saddr vmap {{ {", ".join(outmap)} }}' if outmap else ""
    for chain, hook, body in (("fw_forward", "forward", [to_server, from_server]),
                              ("fw_output", "output", [to_server]),
                              ("fw_input", "input", [from_server])):
        lines.append(f"  chain {chain} {{")
        lines.append(f"    type filter hook {hook} priority 0; policy accept;")
        lines += [f"    {b}" for b in body if b]
        lines.append("  }")
    lines.append("}")
    return "\n".join(lines) + "\n"
