"""Private networks: RFC 1918 ranges, subnets in one network zone, routes, IP allocation."""
from __future__ import annotations

import ipaddress

from .. import errors
from ..labels import validate_labels
from .base import Outcome, ResourceModel, effect

PRIVATE_RANGES = tuple(ipaddress.ip_network(r) for r in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"))
PUBLIC_GATEWAY = ipaddress.ip_address("172.31.1.1")
SUBNET_TYPES = ("cloud", "server", "vswitch")


def parse_network(value, field: str) -> ipaddress.IPv4Network:
    if not isinstance(value, str):
        raise errors.invalid_input(field, "must be an IPv4 range in CIDR notation, e.g. 10.0.0.0/16")
    try:
        net = ipaddress.ip_network(value, strict=True)
    except ValueError as err:
        raise errors.invalid_input(field, f"'{value}' is not a valid IPv4 range in CIDR notation ({err})") from None
    if net.version != 4:
        raise errors.invalid_input(field, "only IPv4 ranges are supported in private networks")
    return net


def _f(prefix: str, name: str) -> str:
    """Field name for messages: 'subnets[0].ip_range' in a create body, 'ip_range' in an action body."""
    return f"{prefix}.{name}" if prefix else name


def is_private(net: ipaddress.IPv4Network) -> bool:
    return any(net.subnet_of(r) for r in PRIVATE_RANGES)


class Networks(ResourceModel):
    kind = "network"
    plural = "networks"
    label = "Network"
    id_start = 4000

    def render(self, obj):
        data = super().render(obj)
        project = obj["_project"]
        data["servers"] = sorted(
            s["id"] for s in self.cloud.servers.objects(project)
            if any(p["network"] == obj["id"] for p in s["private_net"])
        )
        data["load_balancers"] = sorted(
            lb["id"] for lb in self.cloud.load_balancers.objects(project)
            if any(p["network"] == obj["id"] for p in lb["private_net"])
        )
        return data

    # --- validation shared by create and the actions
    def zone_of(self, network: dict) -> str | None:
        return network["subnets"][0]["network_zone"] if network["subnets"] else None

    def check_subnet(self, network_range, subnets: list[dict], body: dict, field: str) -> dict:
        if not isinstance(body, dict):
            raise errors.invalid_input(field or "subnet", "must be an object with type, network_zone and ip_range")
        subnet_type = body.get("type")
        if subnet_type not in SUBNET_TYPES:
            raise errors.invalid_input(_f(field, "type"), "must be 'cloud' or 'vswitch'")
        zone = body.get("network_zone")
        zones = {loc["network_zone"] for loc in self.cloud.catalog.locations}
        if zone not in zones:
            raise errors.invalid_input(_f(field, "network_zone"), f"must be one of {', '.join(sorted(zones))}")
        existing_zone = subnets[0]["network_zone"] if subnets else None
        if existing_zone and zone != existing_zone:
            raise errors.invalid_input(
                _f(field, "network_zone"),
                f"all subnets of a network must be in one network zone; this network is in '{existing_zone}'",
            )
        if body.get("ip_range") is None:
            subnet_range = self.first_free(network_range, subnets, 24)
            if subnet_range is None:
                raise errors.invalid_input(_f(field, "ip_range"), "no free /24 left in the network's ip_range; give one")
        else:
            subnet_range = parse_network(body["ip_range"], _f(field, "ip_range"))
        if not subnet_range.subnet_of(network_range):
            raise errors.invalid_input(
                _f(field, "ip_range"), f"{subnet_range} is not inside the network's ip_range {network_range}"
            )
        if subnet_range.prefixlen > 30:
            raise errors.invalid_input(_f(field, "ip_range"), "is too small: a subnet must be at least a /30")
        for other in subnets:
            if subnet_range.overlaps(ipaddress.ip_network(other["ip_range"])):
                raise errors.invalid_input(
                    _f(field, "ip_range"), f"{subnet_range} overlaps the existing subnet {other['ip_range']}"
                )
        if subnet_type == "vswitch" and not isinstance(body.get("vswitch_id"), int):
            raise errors.invalid_input(_f(field, "vswitch_id"), "is required for vswitch subnets")
        return {
            "type": "cloud" if subnet_type == "server" else subnet_type,
            "ip_range": str(subnet_range),
            "network_zone": zone,
            "gateway": str(network_range.network_address + 1),
            "vswitch_id": body.get("vswitch_id") if subnet_type == "vswitch" else None,
        }

    @staticmethod
    def first_free(network_range, subnets, prefix: int):
        if network_range.prefixlen > prefix:
            return None
        taken = [ipaddress.ip_network(s["ip_range"]) for s in subnets]
        for candidate in network_range.subnets(new_prefix=prefix):
            if not any(candidate.overlaps(t) for t in taken):
                return candidate
        return None

    def check_route(self, network_range, subnets, routes, body, field: str) -> dict:
        if not isinstance(body, dict):
            raise errors.invalid_input(field or "route", "must be an object with destination and gateway")
        destination = parse_network(body.get("destination"), _f(field, "destination"))
        if str(destination) != "0.0.0.0/0" and not is_private(destination):
            raise errors.invalid_input(_f(field, "destination"), "must be a private (RFC 1918) range or 0.0.0.0/0")
        try:
            gateway = ipaddress.ip_address(body.get("gateway"))
        except ValueError:
            raise errors.invalid_input(_f(field, "gateway"), "must be an IPv4 address inside the network") from None
        if gateway not in network_range or gateway == network_range.network_address + 1 or gateway == PUBLIC_GATEWAY:
            raise errors.invalid_input(
                _f(field, "gateway"),
                f"{gateway} must be inside {network_range} and not its first address (the network's own gateway)",
            )
        for other in subnets:
            if destination.overlaps(ipaddress.ip_network(other["ip_range"])):
                raise errors.invalid_input(_f(field, "destination"), f"{destination} overlaps subnet {other['ip_range']}")
        for other in routes:
            if destination == ipaddress.ip_network(other["destination"]):
                raise errors.invalid_input(_f(field, "destination"), f"a route to {destination} already exists")
        return {"destination": str(destination), "gateway": str(gateway)}

    def check_range(self, value, field: str = "ip_range"):
        network_range = parse_network(value, field)
        if not is_private(network_range):
            raise errors.invalid_input(
                field, f"{network_range} is not a private range: use 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16"
            )
        if network_range.prefixlen > 24:
            raise errors.invalid_input(field, "is too small: a network must be at least a /24 (a /16 is recommended)")
        return network_range

    # --- API operations
    def create(self, project: int, body: dict) -> dict:
        self.validate_name(body.get("name"))
        network_range = self.check_range(body.get("ip_range"))
        labels = validate_labels(body.get("labels"))
        subnets: list[dict] = []
        for index, subnet in enumerate(body.get("subnets") or []):
            subnets.append(self.check_subnet(network_range, subnets, subnet, f"subnets[{index}]"))
        routes: list[dict] = []
        for index, route in enumerate(body.get("routes") or []):
            routes.append(self.check_route(network_range, subnets, routes, route, f"routes[{index}]"))
        expose = body.get("expose_routes_to_vswitch", False)
        if not isinstance(expose, bool):
            raise errors.invalid_input("expose_routes_to_vswitch", "must be true or false")
        self.unique_name(project, body["name"])
        network = self.new(project, name=body["name"], ip_range=str(network_range), subnets=subnets,
                           routes=routes, protection={"delete": False}, labels=labels,
                           expose_routes_to_vswitch=expose)
        self.store.put(self.kind, network)
        return Outcome(network)

    def update_extra(self, project, obj, body):
        if "expose_routes_to_vswitch" in body and body["expose_routes_to_vswitch"] is not None:
            if not isinstance(body["expose_routes_to_vswitch"], bool):
                raise errors.invalid_input("expose_routes_to_vswitch", "must be true or false")
            return {"expose_routes_to_vswitch": body["expose_routes_to_vswitch"]}
        return {}

    def delete(self, project: int, oid) -> None:
        network = self.get(project, oid)
        self.check_delete_protection(network)
        for server in self.cloud.servers.objects(project):
            if any(p["network"] == network["id"] for p in server["private_net"]):
                self.cloud.servers.drop_network(server, network["id"])
        for lb in self.cloud.load_balancers.objects(project):
            if any(p["network"] == network["id"] for p in lb["private_net"]):
                edited = self.store.edit("load_balancer", lb["id"])
                edited["private_net"] = [p for p in edited["private_net"] if p["network"] != network["id"]]
        self.store.delete(self.kind, network["id"])

    def _action(self, project, network, command, args=None):
        return self.cloud.start_action(project, command, [(self.kind, network["id"])],
                                       effect_name=None, args=args)

    def add_subnet(self, project: int, oid, body: dict) -> dict:
        network = self.get(project, oid)
        subnet = self.check_subnet(ipaddress.ip_network(network["ip_range"]), network["subnets"], body, "")
        for route in network["routes"]:
            if ipaddress.ip_network(route["destination"]).overlaps(ipaddress.ip_network(subnet["ip_range"])):
                raise errors.invalid_input("ip_range", f"{subnet['ip_range']} overlaps the route to {route['destination']}")
        self.store.edit(self.kind, network["id"])["subnets"].append(subnet)
        return self._action(project, network, "add_subnet")

    def delete_subnet(self, project: int, oid, body: dict) -> dict:
        network = self.get(project, oid)
        wanted = body.get("ip_range")
        subnet = next((s for s in network["subnets"] if s["ip_range"] == wanted), None)
        if subnet is None:
            raise errors.invalid_input("ip_range", f"the network has no subnet {wanted}")
        subnet_range = ipaddress.ip_network(wanted)
        for ip, holder in self.used_ips(network).items():
            if ipaddress.ip_address(ip) in subnet_range:
                raise errors.resource_in_use(
                    f"subnet {wanted} is still in use by {holder}: detach it from the network first"
                )
        edited = self.store.edit(self.kind, network["id"])
        edited["subnets"] = [s for s in edited["subnets"] if s["ip_range"] != wanted]
        return self._action(project, network, "delete_subnet")

    def add_route(self, project: int, oid, body: dict) -> dict:
        network = self.get(project, oid)
        route = self.check_route(ipaddress.ip_network(network["ip_range"]), network["subnets"], network["routes"],
                                 body, "")
        self.store.edit(self.kind, network["id"])["routes"].append(route)
        return self._action(project, network, "add_route")

    def delete_route(self, project: int, oid, body: dict) -> dict:
        network = self.get(project, oid)
        route = {"destination": body.get("destination"), "gateway": body.get("gateway")}
        if route not in network["routes"]:
            raise errors.invalid_input("destination", f"the network has no route to {route['destination']} via {route['gateway']}")
        self.store.edit(self.kind, network["id"])["routes"].remove(route)
        return self._action(project, network, "delete_route")

    def change_ip_range(self, project: int, oid, body: dict) -> dict:
        network = self.get(project, oid)
        new_range = self.check_range(body.get("ip_range"))
        old_range = ipaddress.ip_network(network["ip_range"])
        if not old_range.subnet_of(new_range) or new_range.network_address != old_range.network_address:
            raise errors.invalid_input(
                "ip_range", f"a network range can only be extended: {new_range} must start at "
                f"{old_range.network_address} and contain {old_range}"
            )
        self.store.edit(self.kind, network["id"])["ip_range"] = str(new_range)
        return self._action(project, network, "change_ip_range")

    # --- IP allocation, used by servers and load balancers
    def used_ips(self, network: dict) -> dict[str, str]:
        used = {}
        project = network["_project"]
        for server in self.cloud.servers.objects(project):
            for att in server["private_net"]:
                if att["network"] == network["id"]:
                    used[att["ip"]] = f"server {server['id']}"
                    for alias in att["alias_ips"]:
                        used[alias] = f"server {server['id']}"
        for lb in self.cloud.load_balancers.objects(project):
            for att in lb["private_net"]:
                if att["network"] == network["id"]:
                    used[att["ip"]] = f"load balancer {lb['id']}"
        return used

    def allocate_ip(self, network: dict, zone: str, ip=None, ip_range=None, field: str = "ip") -> str:
        subnets = [s for s in network["subnets"] if s["type"] == "cloud" and s["network_zone"] == zone]
        if not subnets:
            raise errors.specific(
                "no_subnet_available",
                f"network '{network['name']}' has no cloud subnet in network zone '{zone}': add one "
                f"(network add-subnet --network-zone {zone})",
            )
        if ip_range is not None:
            subnets = [s for s in subnets if s["ip_range"] == ip_range]
            if not subnets:
                raise errors.invalid_input("ip_range", f"network '{network['name']}' has no subnet {ip_range}")
        used = self.used_ips(network)
        gateway = ipaddress.ip_network(network["ip_range"]).network_address + 1
        if ip is not None:
            try:
                address = ipaddress.ip_address(ip)
            except ValueError:
                raise errors.invalid_input(field, f"'{ip}' is not an IPv4 address") from None
            subnet = next((s for s in subnets if address in ipaddress.ip_network(s["ip_range"])), None)
            if subnet is None:
                raise errors.invalid_input(
                    field, f"{ip} is not inside a subnet of network '{network['name']}' "
                    f"({', '.join(s['ip_range'] for s in subnets)})"
                )
            net = ipaddress.ip_network(subnet["ip_range"])
            if str(address) in used or address in (gateway, net.network_address, net.broadcast_address):
                raise errors.specific(
                    "ip_not_available",
                    f"{ip} is not available in network '{network['name']}'"
                    + (f": it is used by {used[str(address)]}" if str(address) in used else ": it is reserved"),
                )
            return str(address)
        for subnet in subnets:
            for address in ipaddress.ip_network(subnet["ip_range"]).hosts():
                if address != gateway and str(address) not in used:
                    return str(address)
        raise errors.specific("ip_not_available", f"network '{network['name']}' has no free IP left")

    def attachment(self, network: dict, ip: str, mac: str | None = None):
        from ..backends.base import NetworkAttachment
        net_range = ipaddress.ip_network(network["ip_range"])
        return NetworkAttachment(network["id"], ip, str(net_range), str(net_range.network_address + 1), mac)


@effect("nothing")
def _nothing(cloud, action, args):
    pass
