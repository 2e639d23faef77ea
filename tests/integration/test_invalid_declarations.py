# Copyright (c) 2026, autoscale.hetzner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Invalid declarations, as a careless user writes them, against the local cloud.

Every case fails with a message that names the key path and the fix, reports changed=false, shows no
traceback, and the project is unchanged: the local cloud's request log (GET /_localcloud/stats)
shows no request but GETs while the cases run, and the project lists the same resources before and
after. The cases run through the stack module, every per-resource module and playbooks/provision.yml.
"""

from __future__ import annotations

import copy
import json
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
import yaml

from test_stack import (  # noqa: E402  pylint: disable=wrong-import-position
    PUBLIC_KEY, ROOT, converge, list_all, new_project, run_provision, server_stats,
)

BASE = {
    "name": "inv",
    "location": "nbg1",
    "labels": {"env": "test"},
    "ssh_keys": [{"name": "inv-admin", "public_key": PUBLIC_KEY}],
    "networks": [{"name": "inv-net", "ip_range": "10.0.0.0/16",
                  "subnets": [{"ip_range": "10.0.1.0/24"}, {"ip_range": "10.0.3.0/24"}]}],
    "firewalls": [{"name": "inv-web", "rules": [
        {"protocol": "tcp", "port": "443", "source_ips": ["0.0.0.0/0", "::/0"]},
        {"protocol": "icmp", "source_ips": ["0.0.0.0/0", "::/0"]}]}],
    "placement_groups": [{"name": "inv-web"}],
    "tiers": [
        {"name": "web", "server_type": "cx23", "image": "debian-12", "ssh_keys": ["inv-admin"],
         "firewalls": ["inv-web"], "placement_group": "inv-web", "network": "inv-net",
         "servers": [{"name": "inv-web-1", "ip": "10.0.1.10"}, {"name": "inv-web-2", "ip": "10.0.1.11"}]},
        {"name": "db", "server_type": "cx23", "image": "debian-12", "ssh_keys": ["inv-admin"], "network": "inv-net",
         "servers": [{"name": "inv-db-1", "ip": "10.0.3.10", "labels": {"role": "primary"}}]},
    ],
    "volumes": [{"name": "inv-db-1-data", "size": 20, "server": "inv-db-1", "format": "ext4"}],
    "load_balancers": [{"name": "inv-lb", "load_balancer_type": "lb11", "network": "inv-net", "ip": "10.0.1.100",
                        "targets": [{"tier": "web", "use_private_ip": True}],
                        "services": [{"protocol": "http", "listen_port": 80, "destination_port": 80,
                                      "health_check": {"protocol": "http", "port": 80, "interval": 15,
                                                       "timeout": 10, "retries": 3, "http": {"path": "/healthz"}}}]}],
    "floating_ips": [{"name": "inv-ip", "server": "inv-web-1"}],
}


def changed(**edits):
    """BASE with edits: {"tiers[0].servers[0].ipp": "1", "-volumes[0].size": None (delete), "tiers[0].servers[2]": {}
    (append)}."""
    def apply(declaration):
        for path, value in edits.items():
            delete = path.startswith("-")
            parts = [int(p) if p.isdigit() else p for p in path.lstrip("-").replace("]", "").replace("[", ".").split(".")]
            target = declaration
            for part in parts[:-1]:
                target = target[part]
            if delete:
                del target[parts[-1]]
            elif isinstance(target, list) and parts[-1] == len(target):
                target.append(value)  # one more element
            else:
                target[parts[-1]] = value
        return declaration
    return apply


def rename(old, new):
    def apply(declaration):
        declaration[new] = declaration.pop(old)
        return declaration
    return apply


def twice(path_to_list):
    """Duplicate the first element of a list (same name)."""
    def apply(declaration):
        target = declaration
        for part in [int(p) if p.isdigit() else p for p in path_to_list.replace("]", "").replace("[", ".").split(".")]:
            target = target[part]
        target.append(copy.deepcopy(target[0]))
        return declaration
    return apply


ELEVEN = [{"name": "inv-web-%d" % i} for i in range(1, 12)]
BIG = "#cloud-config\n" + "x" * 40000

# (case id, mutation of BASE, what the message must contain: the key path, then the fix)
STACK_CASES = [
    ("top-tier-typo", rename("tiers", "tier"), "tier: unknown key", "did you mean tiers?"),
    ("top-lb-typo", rename("load_balancers", "load_balancer"), "load_balancer: unknown key", "did you mean load_balancers?"),
    ("top-ssh-typo", rename("ssh_keys", "sshkeys"), "sshkeys: unknown key", "did you mean ssh_keys?"),
    ("top-network-typo", rename("networks", "network"), "network: unknown key", "did you mean networks?"),
    ("top-volume-typo", rename("volumes", "volume"), "volume: unknown key", "did you mean volumes?"),
    ("top-fip-typo", rename("floating_ips", "floating_ip"), "floating_ip: unknown key", "did you mean floating_ips?"),
    ("top-pg-typo", rename("placement_groups", "placement_group"), "placement_group: unknown key",
     "did you mean placement_groups?"),
    ("top-fw-typo", rename("firewalls", "firewall"), "firewall: unknown key", "did you mean firewalls?"),
    ("name-missing", changed(**{"-name": None}), "name: required", "give the stack's name"),
    ("tiers-not-list", changed(tiers={"name": "web"}), "tiers", "list"),
    ("server-ipp", changed(**{"tiers[0].servers[0].ipp": "10.0.1.12"}), "tiers[0].servers[0].ipp: unknown key",
     "did you mean ip?"),
    ("tier-servers-typo", changed(**{"tiers[1].server": [{"name": "inv-db-1"}], "-tiers[1].servers": None}),
     "tiers[1].server: unknown key", "did you mean servers?"),
    ("server-type-typo", changed(**{"tiers[0].servers[1].server_typ": "cx33"}),
     "tiers[0].servers[1].server_typ: unknown key", "did you mean server_type?"),
    ("tier-servers-missing", changed(**{"-tiers[1].servers": None}), "tiers[1].servers: required", "add it"),
    ("tier-name-missing", changed(**{"-tiers[1].name": None}), "tiers[1].name: required", "add it"),
    ("server-not-mapping", changed(**{"tiers[0].servers[1]": "inv-web-2"}), "tiers[0].servers[1]: must be a mapping",
     "ip, labels"),
    ("tier-state-choice", changed(**{"tiers[0].state": "runing"}), "tiers[0].state", "use one of started, stopped"),
    ("server-bool", changed(**{"tiers[0].servers[0].enable_ipv4": "maybe"}), "tiers[0].servers[0].enable_ipv4",
     "must be true or false"),
    ("tier-reserved-label", changed(**{"tiers[0].labels": {"tier": "db"}}), "tiers[0].labels.tier",
     "label the stack sets itself"),
    ("server-reserved-label", changed(**{"tiers[0].servers[0].labels": {"stack": "other"}}),
     "tiers[0].servers[0].labels.stack", "rename your label"),
    ("stack-reserved-label", changed(labels={"managed-by": "me"}), "labels.managed-by", "label the stack sets itself"),
    ("volume-reserved-label", changed(**{"volumes[0].labels": {"tier": "db"}}), "volumes[0].labels.tier",
     "label the stack sets itself"),
    ("network-reserved-label", changed(**{"networks[0].labels": {"stack": "x"}}), "networks[0].labels.stack",
     "label the stack sets itself"),
    ("label-key", changed(**{"tiers[0].labels": {"bad key!": "x"}}), "tiers[0].labels", "use [prefix/]name"),
    ("label-value", changed(**{"tiers[0].servers[0].labels": {"role": "not valid!"}}),
     "tiers[0].servers[0].labels", "at most 63 alphanumerics"),
    ("server-hostname", changed(**{"tiers[0].servers[0].name": "web_1!"}), "tiers[0].servers[0].name",
     "not a valid hostname"),
    ("server-name-twice", changed(**{"tiers[1].servers[0].name": "inv-web-1"}), "tiers[1].servers[0].name",
     "server names must be unique"),
    ("tier-name-twice", changed(**{"tiers[1].name": "web"}), "tiers[1].name", "names must be unique"),
    ("network-twice", twice("networks"), "networks[1].name", "names must be unique"),
    ("firewall-twice", twice("firewalls"), "firewalls[1].name", "names must be unique"),
    ("ip-twice", changed(**{"tiers[0].servers[1].ip": "10.0.1.10"}), "tiers[0].servers[1].ip",
     "every server needs its own address"),
    ("ip-outside", changed(**{"tiers[0].servers[0].ip": "10.0.9.10"}), "tiers[0].servers[0].ip",
     "outside every subnet"),
    ("ip-invalid", changed(**{"tiers[0].servers[0].ip": "300.1.1.1"}), "tiers[0].servers[0].ip", "not an IP address"),
    ("ip-v6", changed(**{"tiers[0].servers[0].ip": "fe80::1"}), "tiers[0].servers[0].ip", "not an IPv4 address"),
    ("alias-invalid", changed(**{"tiers[0].servers[0].alias_ips": ["x"]}), "tiers[0].servers[0].alias_ips[0]",
     "not an IP address"),
    ("ip-without-network", changed(**{"-tiers[1].network": None}), "tiers[1].servers[0].ip", "needs a network"),
    ("type-withdrawn", changed(**{"tiers[0].server_type": "cx22"}), "tiers[0].server_type", "use cx23 instead"),
    ("type-unknown", changed(**{"tiers[0].server_type": "cx999"}), "tiers[0].server_type", "orderable types"),
    ("image-unknown", changed(**{"tiers[0].image": "debian-99", "tiers[0].servers[2]": {"name": "inv-web-3"}}),
     "tiers[0].image", "use a system image name"),
    ("tier-location-unknown", changed(**{"tiers[0].location": "mars1"}), "tiers[0].location", "known locations"),
    ("stack-location-unknown", changed(location="mars1"), "location: unknown location", "known locations"),
    ("tier-network-undeclared", changed(**{"tiers[1].network": "nope", "-tiers[1].servers[0].ip": None}),
     "tiers[1].network", "declare it under networks"),
    ("tier-firewall-undeclared", changed(**{"tiers[0].firewalls": ["nope"]}), "tiers[0].firewalls",
     "declare it under firewalls"),
    ("tier-key-undeclared", changed(**{"tiers[0].ssh_keys": ["nope"], "tiers[0].servers[2]": {"name": "inv-web-3"}}),
     "tiers[0].ssh_keys",
     "declare it under ssh_keys"),
    ("tier-pg-undeclared", changed(**{"tiers[0].placement_group": "nope"}), "tiers[0].placement_group",
     "declare it under placement_groups"),
    ("user-data-size", changed(**{"tiers[0].user_data": BIG}), "tiers[0].user_data", "32 KiB"),
    ("tier-protection-bool", changed(**{"tiers[0].delete_protection": "yes please"}), "tiers[0].delete_protection",
     "must be true or false"),
    ("net-range-text", changed(**{"networks[0].ip_range": "not-a-cidr"}), "networks[0].ip_range",
     "not a network in CIDR notation"),
    ("net-range-octet", changed(**{"networks[0].ip_range": "300.1.1.0/24"}), "networks[0].ip_range",
     "not a network in CIDR notation"),
    ("net-range-public", changed(**{"networks[0].ip_range": "8.8.0.0/16", "-networks[0].subnets": None,
                                    "-tiers[0].servers[0].ip": None, "-tiers[0].servers[1].ip": None,
                                    "-tiers[1].servers[0].ip": None, "-load_balancers[0].ip": None}),
     "networks[0].ip_range", "not an RFC 1918 range"),
    ("net-range-small", changed(**{"networks[0].ip_range": "10.0.0.0/28"}), "networks[0].ip_range",
     "smaller than /24"),
    ("subnet-33", changed(**{"networks[0].subnets[0].ip_range": "10.0.1.0/33"}), "networks[0].subnets[0].ip_range",
     "not a network in CIDR notation"),
    ("subnet-host-bits", changed(**{"networks[0].subnets[0].ip_range": "10.0.1.5/24"}),
     "networks[0].subnets[0].ip_range", "host bits set; the network is 10.0.1.0/24"),
    ("subnet-outside", changed(**{"networks[0].subnets[1].ip_range": "10.9.0.0/24"}),
     "networks[0].subnets[1].ip_range", "outside the network's ip_range"),
    ("subnet-overlap", changed(**{"networks[0].subnets[1].ip_range": "10.0.0.0/23"}),
     "networks[0].subnets[1].ip_range", "subnets must not overlap"),
    ("vswitch-no-id", changed(**{"networks[0].subnets[1].type": "vswitch"}), "networks[0].subnets[1].vswitch_id",
     "required for a vswitch subnet"),
    ("vswitch-id-on-cloud", changed(**{"networks[0].subnets[1].vswitch_id": 42}),
     "networks[0].subnets[1].vswitch_id", "only a subnet of type vswitch"),
    ("subnet-zone-typo", changed(**{"networks[0].subnets[0].zone": "eu-central"}), "networks[0].subnets[0].zone",
     "did you mean network_zone?"),
    ("subnet-type-typo", changed(**{"networks[0].subnets[0].type": "clod"}), "networks[0].subnets[0].type",
     "did you mean cloud?"),
    ("subnet-zones-mixed", changed(**{"networks[0].subnets[1].network_zone": "us-east"}), "networks[0].subnets",
     "one network zone"),
    ("route-gateway", changed(**{"networks[0].routes": [{"destination": "10.100.0.0/16", "gateway": "x"}]}),
     "networks[0].routes[0].gateway", "not an IP address"),
    ("route-no-gateway", changed(**{"networks[0].routes": [{"destination": "10.100.0.0/16"}]}),
     "networks[0].routes[0].gateway: required", "add it"),
    ("route-over-subnet", changed(**{"networks[0].routes": [{"destination": "10.0.1.0/24", "gateway": "10.0.3.5"}]}),
     "networks[0].routes[0].destination", "overlaps subnets[0]"),
    ("rule-src-typo", changed(**{"firewalls[0].rules[0].src_ips": ["0.0.0.0/0"]}), "firewalls[0].rules[0].src_ips",
     "did you mean source_ips?"),
    ("rule-protocol", changed(**{"firewalls[0].rules[0].protocol": "tcpp"}), "firewalls[0].rules[0].protocol",
     "did you mean tcp?"),
    ("rule-port-range", changed(**{"firewalls[0].rules[0].port": 70000}), "firewalls[0].rules[0].port",
     "ports are 1 to 65535"),
    ("rule-port-desc", changed(**{"firewalls[0].rules[0].port": "80-20"}), "firewalls[0].rules[0].port",
     "not an ascending range"),
    ("rule-port-name", changed(**{"firewalls[0].rules[0].port": "http"}), "firewalls[0].rules[0].port",
     "write it like '443'"),
    ("rule-port-missing", changed(**{"-firewalls[0].rules[0].port": None}), "firewalls[0].rules[0].port",
     "required for protocol tcp"),
    ("rule-icmp-port", changed(**{"firewalls[0].rules[1].port": "1"}), "firewalls[0].rules[1].port",
     "protocol icmp has no ports"),
    ("rule-cidr-octet", changed(**{"firewalls[0].rules[0].source_ips": ["300.1.1.0/24"]}),
     "firewalls[0].rules[0].source_ips[0]", "not an IP address or CIDR range"),
    ("rule-cidr-text", changed(**{"firewalls[0].rules[0].source_ips": ["not-a-cidr"]}),
     "firewalls[0].rules[0].source_ips[0]", "not an IP address or CIDR range"),
    ("rule-no-sources", changed(**{"firewalls[0].rules[0].source_ips": []}), "firewalls[0].rules[0].source_ips",
     "an inbound rule needs source_ips"),
    ("rule-direction", changed(**{"firewalls[0].rules[0].direction": "inn"}), "firewalls[0].rules[0].direction",
     "did you mean in?"),
    ("rule-out-sources", changed(**{"firewalls[0].rules[0].direction": "out",
                                    "firewalls[0].rules[0].destination_ips": ["0.0.0.0/0"]}),
     "firewalls[0].rules[0].source_ips", "not allowed on an outbound rule"),
    ("rule-sources-int", changed(**{"firewalls[0].rules[0].source_ips": 5}), "firewalls[0].rules[0].source_ips[0]",
     "not an IP address or CIDR range"),
    ("pg-type", changed(**{"placement_groups[0].type": "cluster"}), "placement_groups[0].type", "use one of spread"),
    ("pg-eleven", changed(**{"tiers[0].servers": ELEVEN, "-load_balancers": None, "-floating_ips": None}),
     "placement group 'inv-web'", "at most 10"),
    ("pg-lock-name", changed(**{"placement_groups[0].name": "autoscale-stack-lock.inv",
                                "tiers[0].placement_group": "autoscale-stack-lock.inv"}),
     "placement_groups[0].name", "reserved for the lock"),
    ("volume-small", changed(**{"volumes[0].size": 5}), "volumes[0].size", "a volume has 10 to 10240"),
    ("volume-huge", changed(**{"volumes[0].size": 20000}), "volumes[0].size", "a volume has 10 to 10240"),
    ("volume-size-text", changed(**{"volumes[0].size": "big"}), "volumes[0].size", "must be an integer"),
    ("volume-size-typo", changed(**{"volumes[0].sise": 20, "-volumes[0].size": None}), "volumes[0].sise",
     "did you mean size?"),
    ("volume-format", changed(**{"volumes[0].format": "ntfs"}), "volumes[0].format", "use one of ext4, xfs"),
    ("volume-location", changed(**{"volumes[0].location": "fsn1"}), "volumes[0].location",
     "a volume attaches only to servers in its location"),
    ("volume-server-undeclared", changed(**{"volumes[0].server": "nope"}), "volumes[0].server",
     "declare it in a tier"),
    ("volume-nowhere", changed(**{"-location": None, "tiers[0].location": "nbg1", "tiers[1].location": "nbg1",
                                  "load_balancers[0].location": "nbg1", "-volumes[0].server": None}),
     "volumes[0].location: required", "without server"),
    ("service-port", changed(**{"load_balancers[0].services[0].listen_port": 70000}),
     "load_balancers[0].services[0].listen_port", "ports are 1 to 65535"),
    ("service-twice", twice("load_balancers[0].services"), "load_balancers[0].services[1].listen_port",
     "already used by services[0]"),
    ("service-protocol", changed(**{"load_balancers[0].services[0].protocol": "htp"}),
     "load_balancers[0].services[0].protocol", "did you mean http?"),
    ("check-interval", changed(**{"load_balancers[0].services[0].health_check.interval": 0}),
     "load_balancers[0].services[0].health_check.interval", "3 to 60"),
    ("check-timeout", changed(**{"load_balancers[0].services[0].health_check.timeout": 30}),
     "load_balancers[0].services[0].health_check.timeout", "longer than the interval"),
    ("check-retries", changed(**{"load_balancers[0].services[0].health_check.retries": 9}),
     "load_balancers[0].services[0].health_check.retries", "0 to 5"),
    ("check-typo", changed(**{"load_balancers[0].services[0].health_check.intervall": 5}),
     "load_balancers[0].services[0].health_check.intervall", "did you mean interval?"),
    ("check-path", changed(**{"load_balancers[0].services[0].health_check.http.path": "healthz"}),
     "load_balancers[0].services[0].health_check.http.path", "must start with '/'"),
    ("tcp-with-http", changed(**{"load_balancers[0].services[0].protocol": "tcp",
                                 "load_balancers[0].services[0].http": {"sticky_sessions": True},
                                 "-load_balancers[0].services[0].health_check": None}),
     "load_balancers[0].services[0].http", "only http and https services"),
    ("https-no-cert", changed(**{"load_balancers[0].services[0].protocol": "https"}),
     "load_balancers[0].services[0].http.certificates", "needs at least one certificate"),
    ("service-destination", changed(**{"load_balancers[0].services[0].destination_port": 0}),
     "load_balancers[0].services[0].destination_port", "ports are 1 to 65535"),
    ("target-tier", changed(**{"load_balancers[0].targets[0].tier": "webb"}), "load_balancers[0].targets[0].tier",
     "did you mean web?"),
    ("target-two-kinds", changed(**{"load_balancers[0].targets[0].server": "inv-web-1"}),
     "load_balancers[0].targets[0]", "exactly one of tier, server or label_selector"),
    ("target-server-undeclared", changed(**{"load_balancers[0].targets": [{"server": "nope"}]}),
     "load_balancers[0].targets[0].server", "declare it in a tier"),
    ("target-typo", changed(**{"load_balancers[0].targets[0].tierr": "web", "-load_balancers[0].targets[0].tier": None}),
     "load_balancers[0].targets[0].tierr", "did you mean tier?"),
    ("lb-ip-no-network", changed(**{"-load_balancers[0].network": None,
                                    "load_balancers[0].targets[0].use_private_ip": False}),
     "load_balancers[0].ip", "needs network"),
    ("private-target-no-network", changed(**{"-load_balancers[0].network": None, "-load_balancers[0].ip": None}),
     "load_balancers[0].targets[0].use_private_ip", "needs the load balancer in a network"),
    ("lb-type-unknown", changed(**{"load_balancers[0].load_balancer_type": "lb99"}),
     "load_balancers[0].load_balancer_type", "unknown type 'lb99'; known: lb11"),
    ("lb-algorithm", changed(**{"load_balancers[0].algorithm": "random"}), "load_balancers[0].algorithm",
     "use one of round_robin, least_connections"),
    ("lb-type-missing", changed(**{"-load_balancers[0].load_balancer_type": None}),
     "load_balancers[0].load_balancer_type: required", "add it"),
    ("lb-ip-outside", changed(**{"load_balancers[0].ip": "10.0.9.100"}), "load_balancers[0].ip",
     "outside every subnet"),
    ("fip-type", changed(**{"floating_ips[0].type": "ipv5"}), "floating_ips[0].type", "use one of ipv4, ipv6"),
    ("fip-server-undeclared", changed(**{"floating_ips[0].server": "nope"}), "floating_ips[0].server",
     "declare it in a tier"),
    ("key-material", changed(**{"ssh_keys[0].public_key": "not a key"}), "ssh_keys[0].public_key",
     "not one OpenSSH public key line"),
    ("key-missing", changed(**{"-ssh_keys[0].public_key": None}), "ssh_keys[0].public_key: required", "add it"),
    ("server-network-typo", changed(**{"tiers[0].servers[0].netwrok": "inv-net"}),
     "tiers[0].servers[0].netwrok", "did you mean network?"),
    ("foreign-name", changed(**{"networks[0].name": "inv-foreign", "tiers[0].network": "inv-foreign",
                                "tiers[1].network": "inv-foreign", "load_balancers[0].network": "inv-foreign"}),
     "networks[0].name", "not managed by stack 'inv'"),
    ("volume-shrink", changed(**{"volumes[0].size": 10}), "volumes[0].size", "volumes can only grow"),
    ("server-move", changed(**{"tiers[1].location": "fsn1", "-volumes": None}), "tiers[1].location",
     "cannot move to fsn1"),
]

# Task options of the stack module besides the declaration: (case id, options, path, fix)
STACK_OPTION_CASES = [
    ("timeout-zero", {"timeout": 0}, "timeout: 0 is too small", "at least 1"),
    ("parallelism-zero", {"parallelism": 0}, "parallelism: 0 is too small", "at least 1"),
    ("prune-max-negative", {"prune_max": -1}, "prune_max: -1 is too small", "at least 0"),
    ("name-twice", {"name": "inv"}, "name: given both in declaration and as an option", "give it once"),
    ("declaration-string", {"declaration": "tiers"}, "declaration", "must be a mapping"),
    ("empty-with-prune", {"declaration": {"name": "inv"}, "prune": True}, "prune: the declaration is empty",
     "use state: absent"),
    ("option-typo", {"prune_tier": ["web"]}, "prune_tier: unknown key", "did you mean prune_tiers?"),
    ("state-choice", {"state": "gone"}, "state", "use one of present, absent"),
]

# Per-resource modules: (case id, module, options, path, fix)
MODULE_CASES = [
    # stack_info reads the same declaration as stack (status.yml): a malformed one is refused the same way
    # (what the catalogue refuses, e.g. cx22, it reports in `errors`: the status of a stack still shows).
    ("info-tier-typo", "stack_info", {"declaration": rename("tiers", "tier")(copy.deepcopy(BASE))},
     "tier: unknown key", "did you mean tiers?"),
    ("info-declaration-string", "stack_info", {"declaration": "tiers"}, "declaration", "must be a mapping"),
    ("fw-src-typo", "firewall", {"name": "m-fw", "rules": [{"protocol": "tcp", "port": "22", "src_ips": ["0.0.0.0/0"]}]},
     "rules[0].src_ips", "did you mean source_ips?"),
    ("fw-protocol", "firewall", {"name": "m-fw", "rules": [{"protocol": "tcpp", "port": "22", "source_ips": ["0.0.0.0/0"]}]},
     "rules[0].protocol", "did you mean tcp?"),
    ("fw-port", "firewall", {"name": "m-fw", "rules": [{"protocol": "tcp", "port": "70000", "source_ips": ["0.0.0.0/0"]}]},
     "rules[0].port", "ports are 1 to 65535"),
    ("fw-cidr", "firewall", {"name": "m-fw", "rules": [{"protocol": "tcp", "port": "22",
                                                         "source_ips": ["300.1.1.0/24"]}]},
     "rules[0].source_ips[0]", "not an IP address or CIDR range"),
    ("fw-icmp-port", "firewall", {"name": "m-fw", "rules": [{"protocol": "icmp", "port": "1",
                                                             "source_ips": ["0.0.0.0/0"]}]},
     "rules[0].port", "protocol icmp has no ports"),
    ("fw-server-missing", "firewall", {"name": "m-fw", "apply_to_servers": ["nope"]}, "apply_to_servers",
     "does not exist"),
    ("fw-sources-string", "firewall", {"name": "m-fw", "rules": [{"protocol": "tcp", "port": "22",
                                                                  "source_ips": "not-a-cidr"}]},
     "rules[0].source_ips[0]", "not an IP address or CIDR range"),
    ("net-subnet-33", "network", {"name": "m-net", "ip_range": "10.1.0.0/16",
                                  "subnets": [{"ip_range": "10.1.1.0/33"}]},
     "subnets[0].ip_range", "not a network in CIDR notation"),
    ("net-host-bits", "network", {"name": "m-net", "ip_range": "10.1.0.0/16",
                                  "subnets": [{"ip_range": "10.1.1.5/24"}]},
     "subnets[0].ip_range", "host bits set"),
    ("net-vswitch", "network", {"name": "m-net", "ip_range": "10.1.0.0/16",
                                "subnets": [{"ip_range": "10.1.1.0/24", "type": "vswitch"}]},
     "subnets[0].vswitch_id", "required for a vswitch subnet"),
    ("net-range", "network", {"name": "m-net", "ip_range": "not-a-cidr"}, "ip_range", "CIDR notation"),
    ("net-route-typo", "network", {"name": "m-net", "ip_range": "10.1.0.0/16",
                                   "routes": [{"destination": "10.2.0.0/16", "gatway": "10.1.0.5"}]},
     "routes[0].gatway", "did you mean gateway?"),
    ("net-zone-typo", "network", {"name": "m-net", "ip_range": "10.1.0.0/16",
                                  "subnets": [{"ip_range": "10.1.1.0/24", "zone": "eu-central"}]},
     "subnets[0].zone", "did you mean network_zone?"),
    ("srv-ipp", "server", {"name": "m-srv", "server_type": "cx23", "image": "debian-12", "location": "fsn1",
                           "networks": [{"network": "inv-net", "ipp": "10.0.1.50"}]},
     "networks[0].ipp", "did you mean ip?"),
    ("srv-cx22", "server", {"name": "m-srv", "server_type": "cx22", "image": "debian-12", "location": "fsn1"},
     "server_type", "use cx23 instead"),
    ("srv-hostname", "server", {"name": "m_srv!", "server_type": "cx23", "image": "debian-12", "location": "fsn1"},
     "name", "not a valid hostname"),
    ("srv-ip", "server", {"name": "m-srv", "server_type": "cx23", "image": "debian-12", "location": "fsn1",
                          "networks": [{"network": "inv-net", "ip": "300.0.0.1"}]},
     "networks[0].ip", "not an IP address"),
    ("srv-user-data", "server", {"name": "m-srv", "server_type": "cx23", "image": "debian-12", "location": "fsn1",
                                 "user_data": BIG}, "user_data", "32 KiB"),
    ("srv-state", "server", {"name": "m-srv", "state": "runing"}, "state", "use one of present, absent"),
    ("srv-location", "server", {"name": "m-srv", "server_type": "cx23", "image": "debian-12", "location": "mars1"},
     "location", "known locations"),
    ("srv-network-missing", "server", {"name": "m-srv", "server_type": "cx23", "image": "debian-12",
                                       "location": "nbg1", "networks": [{"network": "nope"}]},
     "networks[0].network", "does not exist"),
    ("vol-small", "volume", {"name": "m-vol", "size": 5, "location": "nbg1"}, "size", "a volume has 10 to 10240"),
    ("vol-size-text", "volume", {"name": "m-vol", "size": "big", "location": "nbg1"}, "size", "must be an integer"),
    ("vol-format", "volume", {"name": "m-vol", "size": 10, "location": "nbg1", "format": "ntfs"}, "format",
     "use one of xfs, ext4"),
    ("vol-typo", "volume", {"name": "m-vol", "sise": 10, "location": "nbg1"}, "sise", "did you mean size?"),
    ("vol-server-missing", "volume", {"name": "m-vol", "size": 10, "server": "nope"}, "server", "does not exist"),
    ("lb-port", "load_balancer", {"name": "m-lb", "load_balancer_type": "lb11", "location": "nbg1",
                                  "services": [{"protocol": "tcp", "listen_port": 70000}]},
     "services[0].listen_port", "ports are 1 to 65535"),
    ("lb-port-twice", "load_balancer", {"name": "m-lb", "load_balancer_type": "lb11", "location": "nbg1",
                                        "services": [{"protocol": "tcp", "listen_port": 80},
                                                     {"protocol": "http", "listen_port": 80}]},
     "services[1].listen_port", "already used by services[0]"),
    ("lb-interval", "load_balancer", {"name": "m-lb", "load_balancer_type": "lb11", "location": "nbg1",
                                      "services": [{"protocol": "tcp", "listen_port": 80,
                                                    "health_check": {"interval": 0}}]},
     "services[0].health_check.interval", "3 to 60"),
    ("lb-target-server", "load_balancer", {"name": "m-lb", "load_balancer_type": "lb11", "location": "nbg1",
                                           "targets": [{"type": "server"}]},
     "targets[0].server", "required for a server target"),
    ("lb-network-ip", "load_balancer", {"name": "m-lb", "load_balancer_type": "lb11", "location": "nbg1",
                                        "network_ip": "10.0.1.99"}, "network_ip", "needs network"),
    ("lb-protocol", "load_balancer", {"name": "m-lb", "load_balancer_type": "lb11", "location": "nbg1",
                                      "services": [{"protocol": "htp", "listen_port": 80}]},
     "services[0].protocol", "did you mean http?"),
    ("lb-check-typo", "load_balancer", {"name": "m-lb", "load_balancer_type": "lb11", "location": "nbg1",
                                        "services": [{"protocol": "tcp", "listen_port": 80,
                                                      "health_check": {"intervall": 5}}]},
     "services[0].health_check.intervall", "did you mean interval?"),
    ("fip-type", "floating_ip", {"name": "m-fip", "type": "ipv5", "home_location": "nbg1"}, "type",
     "use one of ipv4, ipv6"),
    ("fip-server", "floating_ip", {"name": "m-fip", "server": "nope"}, "server", "does not exist"),
    ("fip-location", "floating_ip", {"name": "m-fip", "home_location": "mars1"}, "home_location", "known locations"),
    ("key-material", "ssh_key", {"name": "m-key", "public_key": "not a key"}, "public_key",
     "not one OpenSSH public key line"),
    ("key-label", "ssh_key", {"name": "m-key", "public_key": PUBLIC_KEY, "labels": {"hetzner.cloud/x": "y"}},
     "labels", "reserved prefix hetzner.cloud/"),
    ("pg-type", "placement_group", {"name": "m-pg", "type": "cluster"}, "type", "use one of spread"),
    ("pg-typo", "placement_group", {"name": "m-pg", "labelz": {}}, "labelz", "did you mean labels?"),
    ("info-id", "server_info", {"id": "abc"}, "id", "must be an integer"),
    ("info-name-typo", "firewall_info", {"nmae": "inv-web"}, "nmae: unknown key", "did you mean name?"),
    ("info-id", "floating_ip_info", {"id": "first"}, "id", "must be an integer"),
    ("info-selector-typo", "load_balancer_info", {"label_selecter": "stack=inv"}, "label_selecter: unknown key",
     "did you mean label_selector?"),
    ("info-name-typo", "network_info", {"names": "inv-net"}, "names: unknown key", "did you mean name?"),
    ("info-id-list", "placement_group_info", {"id": [1, 2]}, "id", "must be an integer"),
    ("info-unknown", "ssh_key_info", {"fingerprint": "aa:bb"}, "fingerprint: unknown key",
     "allowed: api_endpoint, api_token, endpoint, id, label_selector, name"),
    ("info-unknown", "volume_info", {"server": "inv-db-1"}, "server: unknown key",
     "allowed: api_endpoint, api_token, endpoint, id, label_selector, name"),
]

PROVISION_CASES = [
    ("pb-tier-typo", rename("tiers", "tier"), "tier: unknown key", "did you mean tiers?"),
    ("pb-lb-typo", rename("load_balancers", "load_balancer"), "load_balancer: unknown key",
     "did you mean load_balancers?"),
    ("pb-server-ipp", changed(**{"tiers[0].servers[0].ipp": "10.0.1.12"}), "tiers[0].servers[0].ipp",
     "did you mean ip?"),
    ("pb-rule-src", changed(**{"firewalls[0].rules[0].src_ips": ["0.0.0.0/0"]}), "firewalls[0].rules[0].src_ips",
     "did you mean source_ips?"),
    ("pb-volume-size", changed(**{"volumes[0].size": 5}), "volumes[0].size", "10 to 10240"),
    ("pb-reserved-label", changed(**{"tiers[0].labels": {"tier": "db"}}), "tiers[0].labels.tier",
     "label the stack sets itself"),
    ("pb-target-tier", changed(**{"load_balancers[0].targets[0].tier": "webb"}), "load_balancers[0].targets[0].tier",
     "did you mean web?"),
    ("pb-no-name", changed(**{"-name": None}), "name: required", "give the stack's name"),
]


def writes(before, after):
    """Non-GET requests the local cloud served between two stats snapshots."""
    grown = {}
    for route, count in after["by_route"].items():
        delta = count - before["by_route"].get(route, 0)
        if delta and not route.startswith("GET "):
            grown[route] = delta
    return grown


def snapshot(localcloud, token):
    """Everything in the project, with labels, sizes and attachments (what a write would change)."""
    state = {}
    for path in ("ssh_keys", "networks", "firewalls", "placement_groups", "servers", "volumes", "load_balancers",
                 "floating_ips"):
        state[path] = sorted(json.dumps({k: o.get(k) for k in ("name", "labels", "size", "server", "status",
                                                                   "subnets", "rules", "services", "targets")},
                                        sort_keys=True) for o in list_all(localcloud, token, path))
    return state


@pytest.fixture(scope="module")
def project(localcloud, run_playbook):
    """A project holding the converged BASE stack and a foreign network 'inv-foreign'."""
    token = new_project(localcloud, "invalid-declarations")
    converge(run_playbook, token, stack=copy.deepcopy(BASE), attempts=2)
    answer = requests.post("%s/networks" % localcloud["endpoint"], json={"name": "inv-foreign",
                                                                          "ip_range": "10.7.0.0/16"},
                           headers={"Authorization": "Bearer " + token}, timeout=10)
    assert answer.status_code == 201, answer.text
    return token


def task_results(result):
    data = json.loads(result.stdout)
    return {task["task"]["name"]: task["hosts"]["localhost"] for play in data["plays"] for task in play["tasks"]}


def refusal_problems(case_id, outcome, path, fix):
    """What is wrong with how a case was refused (empty when it was refused as it should be)."""
    if outcome is None:
        return ["%s: no result" % case_id]
    text = outcome.get("msg", "")
    problems = []
    if outcome.get("failed") is not True:
        problems.append("%s: did not fail: %s" % (case_id, text or outcome))
    if outcome.get("changed") is not False:
        problems.append("%s: changed=%r" % (case_id, outcome.get("changed")))
    # ansible-core 2.19 adds exception="(traceback unavailable)" to every failed module result
    if outcome.get("exception", "(traceback unavailable)") != "(traceback unavailable)" or \
            "module_stderr" in outcome or "Traceback" in text:
        problems.append("%s: a traceback: %s" % (case_id, outcome.get("exception") or outcome.get("module_stderr")))
    if path not in text or fix not in text:
        problems.append("%s: expected %r and %r in: %s" % (case_id, path, fix, text))
    return problems


def playbook_of(tasks):
    return yaml.safe_dump([{"hosts": "localhost", "gather_facts": False,
                            "vars": {"ansible_python_interpreter": "{{ ansible_playbook_python }}"},
                            "tasks": tasks}], sort_keys=False, width=1000)


@pytest.mark.long
def test_every_invalid_declaration_is_refused_with_path_and_fix_and_changes_nothing(localcloud, run_playbook,
                                                                                   project):
    tasks = []
    expected = {}
    for case_id, mutate, path, fix in STACK_CASES:
        args = {"declaration": mutate(copy.deepcopy(BASE))}
        tasks.append({"name": "stack " + case_id, "autoscale.hetzner.stack": args, "ignore_errors": True})
        expected["stack " + case_id] = (path, fix)
    for case_id, options, path, fix in STACK_OPTION_CASES:
        args = {"declaration": copy.deepcopy(BASE)}
        args.update(options)
        tasks.append({"name": "stack option " + case_id, "autoscale.hetzner.stack": args, "ignore_errors": True})
        expected["stack option " + case_id] = (path, fix)
    for case_id, module, options, path, fix in MODULE_CASES:
        tasks.append({"name": "%s %s" % (module, case_id), "autoscale.hetzner." + module: options,
                      "ignore_errors": True})
        expected["%s %s" % (module, case_id)] = (path, fix)
    assert len(expected) == len(tasks) and len(tasks) + len(PROVISION_CASES) >= 100
    modules = {path.stem for path in (ROOT / "plugins" / "modules").glob("*.py")} - {"stack", "__init__"}
    assert modules - {case[1] for case in MODULE_CASES} == set(), "every per-resource module has cases"
    before_state = snapshot(localcloud, project)
    before = server_stats(localcloud)
    env = {"HCLOUD_TOKEN": project, "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json", "ANSIBLE_PIPELINING": "True"}
    chunks = [tasks[i::3] for i in range(3)]  # three playbooks at once: the cases are independent
    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(lambda chunk: run_playbook(playbook_of(chunk), env=env), chunks))
    after = server_stats(localcloud)
    outcomes = {}
    for result in results:
        outcomes.update(task_results(result))
    problems = []
    for name, (path, fix) in expected.items():
        problems.extend(refusal_problems(name, outcomes.get(name), path, fix))
    assert not problems, "\n".join(problems)
    assert writes(before, after) == {}
    assert snapshot(localcloud, project) == before_state


def test_provision_playbook_refuses_invalid_declarations(localcloud, run_playbook, project):
    before_state = snapshot(localcloud, project)
    before = server_stats(localcloud)

    def run(case):
        case_id, mutate, path, fix = case
        result, data = run_provision(run_playbook, project, stack=mutate(copy.deepcopy(BASE)), prune=True)
        return refusal_problems(case_id, data, path, fix) + ([] if result.rc else ["%s: rc 0" % case_id])

    with ThreadPoolExecutor(max_workers=3) as pool:
        problems = [problem for found in pool.map(run, PROVISION_CASES) for problem in found]
    assert not problems, "\n".join(problems)
    assert writes(before, server_stats(localcloud)) == {}
    assert snapshot(localcloud, project) == before_state
