# Copyright: (c) 2026, autoscale.hetzner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Expert checks that fail before anything changes. Pure functions over a Context.

Every message names the option to fix and how to fix it.
"""

from __future__ import annotations

import ipaddress
import re
from datetime import datetime, timezone

PRIVATE_RANGES = [ipaddress.ip_network(n) for n in
                  ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7", "fe80::/10")]
WORLD = {"0.0.0.0/0", "::/0"}
PUBLIC_GATEWAY = ipaddress.ip_address("172.31.1.1")


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _parse_time(value):
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None


def _names(objs) -> str:
    return ", ".join(sorted(str(o.get("name")) for o in objs if o.get("name"))) or "none"


def location_entry(server_type: dict, location: str) -> dict | None:
    for entry in server_type.get("locations") or []:
        if entry.get("name") == location:
            return entry
    return None


def orderable_in(server_type: dict, location: str, now: datetime | None = None) -> tuple[bool, str | None]:
    """(orderable, reason) for a server type in a location, from the API's own data:
    ``locations[].available`` and ``locations[].deprecation`` (and the type-wide deprecation)."""
    now = now or _now()
    entry = location_entry(server_type, location)
    if entry is None:
        return False, "not offered in %s" % location
    if entry.get("available") is False:
        return False, "not available in %s" % location
    for deprecation in (entry.get("deprecation"), server_type.get("deprecation")):
        if deprecation:
            after = _parse_time(deprecation.get("unavailable_after"))
            if after is not None and after <= now:
                return False, "deprecated (announced %s) and unavailable since %s in %s" % (
                    deprecation.get("announced"), deprecation.get("unavailable_after"), location)
    return True, None


def successor_candidates(name: str) -> list[str]:
    """cx22 -> cx23, cpx11 -> cpx12, cpx21 -> cpx22: Hetzner's naming of the next generation."""
    match = re.match(r"^([a-z]+)(\d)(\d)$", name or "")
    if not match:
        return []
    prefix, size, gen = match.groups()
    return ["%s%s%d" % (prefix, size, int(gen) + step) for step in (1, 2)]


def suggest_server_type(server_type: dict | None, name: str, location: str | None, ctx) -> str | None:
    """A replacement that is orderable in ``location``: the next generation of the same family
    if there is one, else the smallest type of the same architecture with at least as many cores."""
    candidates = []
    for cand in successor_candidates(name):
        obj = ctx.by_name("server_type", cand)
        if obj is not None:
            candidates.append(obj)
    others = sorted(ctx.all("server_type"), key=lambda t: (t.get("cores") or 0, t.get("memory") or 0, t.get("id")))
    for obj in others:
        if server_type is None:
            continue
        if obj.get("architecture") != server_type.get("architecture"):
            continue
        if (obj.get("cores") or 0) < (server_type.get("cores") or 0):
            continue
        if obj.get("cpu_type") != server_type.get("cpu_type"):
            continue
        candidates.append(obj)
    for obj in candidates:
        if obj.get("name") == name:
            continue
        if location is None:
            if any(orderable_in(obj, e.get("name"))[0] for e in obj.get("locations") or []):
                return obj["name"]
        elif orderable_in(obj, location)[0]:
            return obj["name"]
    return None


def check_server_type(name, location: str | None, ctx, errors: list, warnings: list, creating: bool = True,
                      option: str = "server_type") -> dict | None:
    server_type = ctx.lookup("server_type", name)
    if server_type is None:
        errors.append("%s: unknown server type %r; orderable types: %s" % (option, name, _names(ctx.all("server_type"))))
        return None
    if not creating:
        return server_type
    locations = [location] if location else [e.get("name") for e in server_type.get("locations") or []]
    reasons = []
    for loc in locations:
        ok, reason = orderable_in(server_type, loc)
        if ok:
            break
        reasons.append(reason)
    else:
        suggestion = suggest_server_type(server_type, server_type["name"], location, ctx)
        msg = "%s: %s cannot be ordered (%s)" % (option, server_type["name"], "; ".join(reasons) or "no location")
        if suggestion:
            msg += "; use %s instead" % suggestion
        errors.append(msg)
        return server_type
    # orderable, but announced deprecation -> warn
    entry = location_entry(server_type, location) if location else None
    deprecation = (entry or {}).get("deprecation") or server_type.get("deprecation")
    if deprecation:
        suggestion = suggest_server_type(server_type, server_type["name"], location, ctx)
        warnings.append("%s: %s is deprecated and can no longer be ordered after %s%s" % (
            option, server_type["name"], deprecation.get("unavailable_after"),
            "; consider %s" % suggestion if suggestion else ""))
    return server_type


def check_location(name, ctx, errors: list, option: str = "location") -> dict | None:
    if name is None:
        return None
    location = ctx.lookup("location", name)
    if location is None:
        errors.append("%s: unknown location %r; known locations: %s" % (option, name, _names(ctx.all("location"))))
    return location


def check_image(name, architecture: str | None, ctx, errors: list, warnings: list, option: str = "image") -> dict | None:
    if name is None:
        return None
    matches = ctx.images(name)
    if not matches:
        errors.append("%s: unknown image %r; use a system image name such as debian-12 or ubuntu-24.04, "
                      "or a snapshot id" % (option, name))
        return None
    if architecture:
        fitting = [i for i in matches if i.get("architecture") in (architecture, None)]
        if not fitting:
            errors.append("%s: image %r exists only for %s, but the server type is %s; pick a server type of "
                          "that architecture or another image" % (
                              option, name, "/".join(sorted({str(i.get("architecture")) for i in matches})),
                              architecture))
            return None
        matches = fitting
    image = matches[0]
    if image.get("deprecated"):
        warnings.append("%s: image %r is deprecated since %s" % (option, name, image.get("deprecated")))
    return image


def _net(value, option: str, errors: list):
    try:
        return ipaddress.ip_network(value, strict=True)
    except (ValueError, TypeError) as exc:
        errors.append("%s: %r is not a valid network in CIDR notation (%s)" % (option, value, exc))
        return None


def check_network_spec(spec: dict, errors: list) -> None:
    """ip_range RFC 1918 and at least /24; subnets inside, non-overlapping, >= /30, one zone;
    routes outside subnets with a gateway inside the network."""
    ip_range = spec.get("ip_range")
    net = _net(ip_range, "ip_range", errors) if ip_range else None
    if net is not None:
        if net.version != 4 or not any(net.subnet_of(r) for r in PRIVATE_RANGES[:3]):
            errors.append("ip_range: %s is not an RFC 1918 range; use e.g. 10.0.0.0/16" % ip_range)
        elif net.prefixlen > 24:
            errors.append("ip_range: %s is smaller than /24, the minimum network size" % ip_range)
    subnets = []
    zones = set()
    for i, subnet in enumerate(spec.get("subnets") or []):
        option = "subnets[%d].ip_range" % i
        sub = _net(subnet.get("ip_range"), option, errors)
        if subnet.get("network_zone"):
            zones.add(subnet["network_zone"])
        if sub is None:
            continue
        if net is not None and (sub.version != net.version or not sub.subnet_of(net)):
            errors.append("%s: %s is outside the network's ip_range %s; pick a range inside it or "
                          "extend ip_range" % (option, sub, net))
        if sub.prefixlen > 30:
            errors.append("%s: %s is smaller than /30, the minimum subnet size" % (option, sub))
        for j, other in subnets:
            if sub.overlaps(other):
                errors.append("%s: %s overlaps subnets[%d] %s; subnets must not overlap" % (option, sub, j, other))
        subnets.append((i, sub))
    if len(zones) > 1:
        errors.append("subnets: all subnets of a network must be in one network zone, got %s" % ", ".join(sorted(zones)))
    for i, route in enumerate(spec.get("routes") or []):
        dest = _net(route.get("destination"), "routes[%d].destination" % i, errors)
        try:
            gateway = ipaddress.ip_address(route.get("gateway"))
        except (ValueError, TypeError):
            errors.append("routes[%d].gateway: %r is not an IP address" % (i, route.get("gateway")))
            continue
        if dest is not None:
            for j, sub in subnets:
                if dest.overlaps(sub) and dest.prefixlen != 0:
                    errors.append("routes[%d].destination: %s overlaps subnets[%d] %s" % (i, dest, j, sub))
        if net is not None:
            if gateway not in net:
                errors.append("routes[%d].gateway: %s is outside the network %s" % (i, gateway, net))
            elif gateway == net.network_address + 1:
                errors.append("routes[%d].gateway: %s is the network's own gateway address; use the private IP "
                              "of the router server" % (i, gateway))
        if gateway == PUBLIC_GATEWAY:
            errors.append("routes[%d].gateway: 172.31.1.1 is reserved" % i)


def network_zone_of(network: dict | None) -> str | None:
    for subnet in (network or {}).get("subnets") or []:
        if subnet.get("network_zone"):
            return subnet["network_zone"]
    return None


def check_location_in_zone(location: dict | None, network: dict | None, option: str, errors: list) -> None:
    zone = network_zone_of(network)
    if location is None or zone is None:
        return
    if location.get("network_zone") and location["network_zone"] != zone:
        errors.append("%s: network %r lives in network zone %s, but location %s is in %s; choose a location in "
                      "%s or a network with a subnet in %s" % (
                          option, network.get("name"), zone, location.get("name"), location["network_zone"], zone,
                          location["network_zone"]))


def used_private_ips(network_id: int, ctx, except_server: str | None = None) -> dict:
    """ip -> owner name for every server/LB attached to the network."""
    used = {}
    for kind in ("server", "load_balancer"):
        for obj in ctx.all(kind):
            if kind == "server" and obj.get("name") == except_server:
                continue
            for att in obj.get("private_net") or []:
                if att.get("network") == network_id:
                    used[att.get("ip")] = "%s %s" % (kind, obj.get("name"))
                    for alias in att.get("alias_ips") or []:
                        used[alias] = "%s %s" % (kind, obj.get("name"))
    return used


def _loose_network(value):
    try:
        return ipaddress.ip_network(str(value), strict=False)
    except ValueError:
        return None


def check_fixed_ip(ip, network: dict | None, location: dict | None, ctx, option: str, errors: list,
                   owner: str | None = None) -> None:
    """The fixed private IP lies inside a subnet of the network (in the right zone), is not a
    reserved address and is not used by another server or load balancer."""
    if ip is None or network is None:
        return
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        errors.append("%s: %r is not an IP address" % (option, ip))
        return
    subnets = [_loose_network(s["ip_range"]) for s in network.get("subnets") or [] if s.get("ip_range")
               and (location is None or not s.get("network_zone") or s.get("network_zone") == location.get("network_zone"))]
    subnets = [s for s in subnets if s is not None]
    inside = [s for s in subnets if address in s]
    if not inside:
        errors.append("%s: %s is outside every subnet of network %r%s (subnets: %s); pick an address inside one" % (
            option, ip, network.get("name"), " in network zone %s" % location.get("network_zone") if location else "",
            ", ".join(str(s) for s in subnets) or "none"))
        return
    sub = inside[0]
    net_range = _loose_network(network["ip_range"]) if network.get("ip_range") else None
    reserved = {sub.network_address, sub.broadcast_address}
    if net_range is not None:
        reserved.add(net_range.network_address + 1)
    if address in reserved:
        errors.append("%s: %s is reserved in subnet %s (network, broadcast or gateway address)" % (option, ip, sub))
        return
    if network.get("id") is not None:
        used = used_private_ips(network["id"], ctx, except_server=owner)
        if ip in used:
            errors.append("%s: %s is already used by %s in network %r; choose a free address" % (
                option, ip, used[ip], network.get("name")))


def check_duplicate_names(specs: list[dict], kind: str, errors: list) -> None:
    seen = set()
    for spec in specs:
        name = spec.get("name")
        if name in seen:
            errors.append("%s: name %r is used twice; names must be unique per resource type" % (kind, name))
        seen.add(name)


def _is_private(cidr: str) -> bool:
    try:
        net = ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        return False
    return any(net.version == r.version and net.subnet_of(r) for r in PRIVATE_RANGES)


def _port_covers(port, number: int) -> bool:
    if port is None:
        return False
    text = str(port)
    if text == "any":
        return True
    if "-" in text:
        low, high = text.split("-", 1)
        return low.isdigit() and high.isdigit() and int(low) <= number <= int(high)
    return text.isdigit() and int(text) == number


def firewall_rule_warnings(rules: list[dict], option: str = "rules") -> list[str]:
    warnings = []
    for i, rule in enumerate(rules or []):
        ips = rule.get("source_ips") if rule.get("direction", "in") == "in" else rule.get("destination_ips")
        private = [c for c in ips or [] if _is_private(c)]
        if private:
            warnings.append("%s[%d]: %s are private ranges; Cloud Firewalls only filter public interfaces and do not "
                            "filter traffic from private networks - filter it on the host (host firewall role) "
                            "instead" % (option, i, ", ".join(private)))
        if (rule.get("direction", "in") == "in" and rule.get("protocol") == "tcp" and _port_covers(rule.get("port"), 22)
                and WORLD & set(rule.get("source_ips") or [])):
            warnings.append("%s[%d]: SSH (port 22) is open to the whole internet; restrict source_ips to your "
                            "admin networks or a bastion" % (option, i))
    return warnings


LABEL_VALUE = re.compile(r"^(|[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9._-]{0,61}[a-zA-Z0-9])$")
LABEL_NAME = re.compile(r"^[a-zA-Z0-9]([a-zA-Z0-9._-]{0,61}[a-zA-Z0-9])?$")
LABEL_PREFIX = re.compile(r"^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$")
HOSTNAME = re.compile(r"^(?=.{1,253}$)([a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$")
USER_DATA_LIMIT = 32 * 1024


def check_labels(labels, errors: list, option: str = "labels") -> None:
    """Label keys `[prefix/]name` and values as the API accepts them; `hetzner.cloud/` is reserved."""
    for key, value in (labels or {}).items():
        key = str(key)
        prefix, _sep, name = key.rpartition("/")
        if prefix == "hetzner.cloud" or prefix.endswith(".hetzner.cloud"):
            errors.append("%s: key %r uses the reserved prefix hetzner.cloud/" % (option, key))
        elif (prefix and not LABEL_PREFIX.match(prefix)) or not LABEL_NAME.match(name):
            errors.append("%s: key %r is invalid; use [prefix/]name with at most 63 alphanumerics, '-', '_', '.' "
                          "(starting and ending alphanumeric)" % (option, key))
        if value is None or not LABEL_VALUE.match(str(value)):
            errors.append("%s: value %r of %r is invalid; use at most 63 alphanumerics, '-', '_', '.' (starting and "
                          "ending alphanumeric) or an empty string" % (option, value, key))


def check_server_name(name, errors: list) -> None:
    if name is not None and not HOSTNAME.match(str(name)):
        errors.append("name: %r is not a valid hostname (RFC 1123: letters, digits, '-', dots between labels)" % name)


def check_user_data(user_data, errors: list) -> None:
    if user_data is not None and len(user_data.encode("utf-8")) > USER_DATA_LIMIT:
        errors.append("user_data: %d bytes exceed the API limit of 32 KiB; compress it (cloud-init accepts gzip) or "
                      "fetch the rest from elsewhere" % len(user_data.encode("utf-8")))


# --------------------------------------------------------------------------- checks of the options alone
# What the API would refuse and can be known from the options alone, before anything is read.
# Each message starts with the option path inside the resource's options (``rules[1].port``), so the
# stack can prefix it with where the value came from in its declaration.

VOLUME_MIN_GB, VOLUME_MAX_GB = 10, 10240
HEALTH_CHECK_LIMITS = {"interval": (3, 60), "timeout": (1, 60), "retries": (0, 5), "port": (1, 65535)}


def _cidr(value, option: str, errors: list) -> None:
    """A firewall address: an IP or a CIDR (host bits are allowed, as the API allows them)."""
    try:
        ipaddress.ip_interface(str(value))
    except ValueError:
        errors.append("%s: %r is not an IP address or CIDR range; write it like 203.0.113.0/24 or 2001:db8::/32"
                      % (option, value))


def _subnet_range(value, option: str, errors: list) -> None:
    try:
        net = ipaddress.ip_network(str(value), strict=False)
    except ValueError:
        errors.append("%s: %r is not a network in CIDR notation; write it like 10.0.1.0/24" % (option, value))
        return
    if str(net) != str(value):
        errors.append("%s: %s has host bits set; the network is %s" % (option, value, net))


def _ip(value, option: str, errors: list, version: int | None = None) -> bool:
    try:
        address = ipaddress.ip_address(str(value))
    except ValueError:
        errors.append("%s: %r is not an IP address; write it like 10.0.1.10" % (option, value))
        return False
    if version and address.version != version:
        errors.append("%s: %s is not an IPv%d address" % (option, value, version))
        return False
    return True


def check_port(value, option: str, errors: list) -> None:
    """A firewall port: '80', '1024-5000' or 'any'."""
    text = str(value)
    if text == "any":
        return
    low, sep, high = text.partition("-")
    if not low.isdigit() or (sep and not high.isdigit()):
        errors.append("%s: %r is not a port or a port range; write it like '443' or '1024-5000'" % (option, value))
        return
    numbers = [int(low)] + ([int(high)] if sep else [])
    if not all(1 <= n <= 65535 for n in numbers):
        errors.append("%s: %s is out of range; ports are 1 to 65535" % (option, value))
    elif sep and numbers[0] >= numbers[1]:
        errors.append("%s: %s is not an ascending range; write it like '%d-%d'" % (option, value, numbers[1], numbers[0]))


def check_firewall_rules(rules, errors: list, option: str = "rules") -> None:
    for i, rule in enumerate(rules or []):
        where = "%s[%d]" % (option, i)
        direction = rule.get("direction") or "in"
        protocol = rule.get("protocol")
        if protocol in ("tcp", "udp"):
            if rule.get("port") in (None, ""):
                errors.append("%s.port: required for protocol %s; give a port like '443' or a range like '1024-5000'"
                              % (where, protocol))
            else:
                check_port(rule["port"], where + ".port", errors)
        elif rule.get("port") not in (None, ""):
            errors.append("%s.port: protocol %s has no ports; remove port (or use tcp/udp)" % (where, protocol))
        wanted, unwanted = ("source_ips", "destination_ips") if direction == "in" else ("destination_ips", "source_ips")
        if not rule.get(wanted):
            errors.append("%s.%s: an %s rule needs %s, e.g. ['0.0.0.0/0', '::/0'] for everyone" % (
                where, wanted, "inbound" if direction == "in" else "outbound", wanted))
        if rule.get(unwanted):
            errors.append("%s.%s: not allowed on an %s rule; use %s" % (
                where, unwanted, "inbound" if direction == "in" else "outbound", wanted))
        for key in ("source_ips", "destination_ips"):
            for j, value in enumerate(rule.get(key) or []):
                _cidr(value, "%s.%s[%d]" % (where, key, j), errors)


def check_subnets_and_routes(subnets, routes, errors: list) -> None:
    for i, subnet in enumerate(subnets or []):
        where = "subnets[%d]" % i
        if subnet.get("ip_range") is not None:
            _subnet_range(subnet["ip_range"], where + ".ip_range", errors)
        if subnet.get("type") == "vswitch" and subnet.get("vswitch_id") is None:
            errors.append("%s.vswitch_id: required for a vswitch subnet; give the ID of the Robot vSwitch" % where)
        if subnet.get("type") != "vswitch" and subnet.get("vswitch_id") is not None:
            errors.append("%s.vswitch_id: only a subnet of type vswitch has one; set type: vswitch or remove it" % where)
    for i, route in enumerate(routes or []):
        where = "routes[%d]" % i
        if route.get("destination") is not None:
            _subnet_range(route["destination"], where + ".destination", errors)
        if route.get("gateway") is not None:
            _ip(route["gateway"], where + ".gateway", errors)


def _range(value, low: int, high: int, option: str, errors: list, what: str = "") -> None:
    if value is not None and not low <= value <= high:
        errors.append("%s: %s is out of range; %s%d to %d" % (option, value, what, low, high))


def check_services(services, errors: list, option: str = "services") -> None:
    seen = {}
    for i, service in enumerate(services or []):
        where = "%s[%d]" % (option, i)
        port = service.get("listen_port")
        _range(port, 1, 65535, where + ".listen_port", errors, "ports are ")
        _range(service.get("destination_port"), 1, 65535, where + ".destination_port", errors, "ports are ")
        if port in seen:
            errors.append("%s.listen_port: port %s is already used by %s[%d]; a load balancer listens on a port "
                          "once: change one of them" % (where, port, option, seen[port]))
        seen.setdefault(port, i)
        protocol = service.get("protocol")
        http = service.get("http") or {}
        if protocol == "tcp" and any(v is not None for v in http.values()):
            errors.append("%s.http: only http and https services have http settings; remove http or use "
                          "protocol: http" % where)
        if protocol == "https" and not http.get("certificates"):
            errors.append("%s.http.certificates: an https service needs at least one certificate ID" % where)
        _range(http.get("cookie_lifetime"), 1, 2 ** 31 - 1, where + ".http.cookie_lifetime", errors)
        _range(http.get("timeout_idle"), 30, 300, where + ".http.timeout_idle", errors, "seconds, ")
        check = service.get("health_check") or {}
        for key, (low, high) in HEALTH_CHECK_LIMITS.items():
            _range(check.get(key), low, high, "%s.health_check.%s" % (where, key), errors)
        if check.get("timeout") is not None and check.get("interval") is not None and \
                check["timeout"] > check["interval"]:
            errors.append("%s.health_check.timeout: %ss is longer than the interval (%ss); make it shorter"
                          % (where, check["timeout"], check["interval"]))
        check_protocol = check.get("protocol") or ("tcp" if protocol == "tcp" else "http")
        check_http = check.get("http") or {}
        if check_protocol == "tcp" and any(v is not None for v in check_http.values()):
            errors.append("%s.health_check.http: a tcp health check has no http settings; remove them or use "
                          "protocol: http" % where)
        if check_http.get("path") is not None and not str(check_http["path"]).startswith("/"):
            errors.append("%s.health_check.http.path: %r must start with '/'" % (where, check_http["path"]))


def check_targets(targets, errors: list, option: str = "targets") -> None:
    for i, target in enumerate(targets or []):
        where = "%s[%d]" % (option, i)
        ttype = target.get("type") or ("server" if target.get("server") else "label_selector")
        if ttype == "server" and not target.get("server"):
            errors.append("%s.server: required for a server target; name the server (or use type: label_selector)"
                          % where)
        if ttype == "label_selector" and not target.get("label_selector"):
            errors.append("%s.label_selector: required for a label_selector target, e.g. 'tier=web'" % where)
        if target.get("server") and target.get("label_selector"):
            errors.append("%s: give either server or label_selector, not both" % where)


def static_errors(kind: str, desired: dict) -> list[str]:
    """Everything wrong with one resource's options that can be seen without the API."""
    errors: list[str] = []
    if desired.get("state") == "absent":
        return errors
    check_labels(desired.get("labels"), errors)
    if kind == "ssh_key" and desired.get("public_key") is not None:
        parts = str(desired["public_key"]).split()
        if len(parts) < 2 or not parts[0].startswith(("ssh-", "ecdsa-", "sk-")):
            errors.append("public_key: is not one OpenSSH public key line ('ssh-ed25519 AAAA... comment'); got %r"
                          % str(desired["public_key"])[:40])
    elif kind == "network":
        if desired.get("ip_range") is not None:
            _subnet_range(desired["ip_range"], "ip_range", errors)
        check_subnets_and_routes(desired.get("subnets"), desired.get("routes"), errors)
    elif kind == "firewall":
        check_firewall_rules(desired.get("rules"), errors)
    elif kind == "server":
        check_server_name(desired.get("name"), errors)
        check_user_data(desired.get("user_data"), errors)
        for i, net in enumerate(desired.get("networks") or []):
            if not isinstance(net, dict):
                continue
            if net.get("ip") is not None:
                _ip(net["ip"], "networks[%d].ip" % i, errors, 4)
            for j, alias in enumerate(net.get("alias_ips") or []):
                _ip(alias, "networks[%d].alias_ips[%d]" % (i, j), errors, 4)
    elif kind == "volume":
        _range(desired.get("size"), VOLUME_MIN_GB, VOLUME_MAX_GB, "size", errors, "a volume has ")
    elif kind == "load_balancer":
        check_services(desired.get("services"), errors)
        check_targets(desired.get("targets"), errors)
        if desired.get("network_ip") is not None:
            _ip(desired["network_ip"], "network_ip", errors, 4)
        if desired.get("network_ip") and not desired.get("network"):
            errors.append("network_ip: a fixed private IP needs network; set network or remove network_ip")
    return errors
