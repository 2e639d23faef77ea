"""Primary IPs: the public addresses of servers, created with the server or on their own."""
from __future__ import annotations

import ipaddress

from .. import errors
from ..labels import validate_labels
from .base import OMIT, Outcome, ResourceModel, machine_effect

PUBLIC_V4 = ipaddress.ip_network("198.18.0.0/15")
IPV6_BASE = ipaddress.ip_network("2001:db8::/32")


def reverse_dns(ip: str) -> str:
    return "static." + ".".join(reversed(ip.split("."))) + ".clients.your-server.de"


class PublicAddresses:
    """Allocation of emulated public addresses: IPv4 from 198.18.0.0/15, IPv6 /64s from 2001:db8::/32."""

    def __init__(self, cloud):
        self.cloud = cloud

    def used(self) -> set[str]:
        used = set()
        for kind in ("primary_ip", "floating_ip"):
            used.update(obj["ip"] for obj in self.cloud.store.all(kind))
        for lb in self.cloud.store.all("load_balancer"):
            v4, v6 = lb["public_net"]["ipv4"]["ip"], lb["public_net"]["ipv6"]["ip"]
            if v4:
                used.add(v4)
            if v6:                      # a load balancer holds one address of its /64: the /64 is taken
                used.add(str(ipaddress.ip_network(f"{v6}/64", strict=False)))
        return used

    def allocate(self, version: str) -> str:
        """The lowest free address (IPv4) or /64 (IPv6). Candidates are first formatted cheaply;
        only one that looks free is checked in ipaddress's canonical form."""
        used = self.used()
        if version == "ipv4":
            pool, first = self.cloud.backend.public_ipv4_pool()
            pool = ipaddress.ip_network(pool)
            candidate = int(ipaddress.ip_address(first))
            while True:
                if candidate & 0xFF not in (0, 255):
                    fast = f"{candidate >> 24}.{(candidate >> 16) & 255}.{(candidate >> 8) & 255}.{candidate & 255}"
                    if fast not in used:
                        ip = str(ipaddress.ip_address(candidate))
                        if ip not in used:
                            return ip
                candidate += 1
                if ipaddress.ip_address(candidate) not in pool:
                    raise errors.specific("resource_limit_exceeded", "no public IPv4 left in the local cloud", 403)
        base = int(IPV6_BASE.network_address)
        index = 1
        while True:
            value = base + (index << 64)
            groups = [(value >> shift) & 0xFFFF for shift in (112, 96, 80, 64)]
            fast = ":".join(f"{g:x}" for g in groups) + "::/64"     # exact unless a zero run is longer
            if fast not in used:
                net = str(ipaddress.ip_network((value, 64)))
                if net not in used:
                    return net
            index += 1


class PrimaryIPs(ResourceModel):
    kind = "primary_ip"
    plural = "primary_ips"
    label = "Primary IP"
    sort_fields = ("id", "created")
    id_start = 6000

    def filter(self, items, query):
        ip = query.get("ip")
        return [p for p in items if p["ip"] == ip] if ip is not None else items

    def render(self, obj):
        data = super().render(obj)
        data["location"] = self.cloud.catalog.location(obj["_location"])
        if self.cloud.settings.legacy_datacenters:
            data["datacenter"] = self.cloud.catalog.legacy_datacenter(obj["_location"])
        data["assignee_type"] = "server" if obj["assignee_id"] else "unassigned"
        return data

    def new_address(self, project: int, version: str, location: str, server_id: int | None, name: str | None = None,
                    auto_delete: bool = True, labels: dict | None = None) -> dict:
        ip = PublicAddresses(self.cloud).allocate(version)
        obj = self.new(project, name=None, type=version, ip=ip, assignee_id=server_id, auto_delete=auto_delete,
                       blocked=False, dns_ptr=[{"ip": ip, "dns_ptr": reverse_dns(ip)}] if version == "ipv4" else [],
                       protection={"delete": False}, labels=labels or {}, _location=location)
        obj["name"] = name or f"primary_ip-{obj['id']}"
        self.store.put(self.kind, obj)
        return obj

    def create(self, project: int, body: dict) -> dict:
        self.validate_name(body.get("name"))
        version = body.get("type")
        if version not in ("ipv4", "ipv6"):
            raise errors.invalid_input("type", "must be 'ipv4' or 'ipv6'")
        labels = validate_labels(body.get("labels"))
        auto_delete = body.get("auto_delete", False)
        if not isinstance(auto_delete, bool):
            raise errors.invalid_input("auto_delete", "must be true or false")
        server = None
        if body.get("assignee_id") is not None:
            server = self.cloud.servers.get_ref(project, body["assignee_id"], "assignee_id")
            location = server["_location"]
            self.check_assignable(server, version)
        else:
            location = body.get("location")
            loc = (self.cloud.catalog.location(location) if location is not None
                   else self.cloud.catalog.location_of_datacenter(body.get("datacenter")))
            if location is None and body.get("datacenter") is None:
                raise errors.invalid_fields({"assignee_id": ["give a server to assign the IP to, or a location"],
                                             "location": ["is required (a location name like fsn1) when no assignee_id is given"]})
            if loc is None:
                raise errors.invalid_input("location", f"location '{location}' does not exist; use fsn1, nbg1, hel1, ash, hil or sin")
            location = loc["name"]
        self.unique_name(project, body["name"])
        obj = self.new_address(project, version, location, server["id"] if server else None, body["name"],
                               auto_delete, labels)
        action = None
        if server:
            self.store.edit("server", server["id"])[f"_{version}"] = obj["id"]
            action = self.cloud.start_action(project, "assign_primary_ip", [(self.kind, obj["id"]), ("server", server["id"])],
                                             machine="public_ip", args={"server": server["id"]})
        # the spec's action is optional but not nullable: leave it out when nothing runs
        return Outcome(obj, action=action or OMIT)

    def check_assignable(self, server: dict, version: str) -> None:
        if server["status"] != "off":
            raise errors.specific("server_not_stopped", f"server '{server['name']}' must be off to change its primary IPs (poweroff first)")
        if server.get(f"_{version}"):
            raise errors.specific(f"server_has_{version}", f"server '{server['name']}' already has a primary {version}; unassign it first")

    def assign(self, project: int, oid, body: dict) -> dict:
        obj = self.get(project, oid)
        if obj["assignee_id"]:
            raise errors.specific("primary_ip_already_assigned", f"primary IP {obj['ip']} is already assigned to server {obj['assignee_id']}")
        if body.get("assignee_type", "server") != "server":
            raise errors.invalid_input("assignee_type", "must be 'server'")
        server = self.cloud.servers.get_ref(project, body.get("assignee_id"), "assignee_id")
        if server["_location"] != obj["_location"]:
            raise errors.specific("primary_ip_datacenter_mismatch",
                                  f"primary IP is in {obj['_location']}, server '{server['name']}' in {server['_location']}")
        self.check_assignable(server, obj["type"])
        self.store.edit(self.kind, obj["id"])["assignee_id"] = server["id"]
        self.store.edit("server", server["id"])[f"_{obj['type']}"] = obj["id"]
        return self.cloud.start_action(project, "assign_primary_ip", [(self.kind, obj["id"]), ("server", server["id"])],
                                       machine="public_ip", args={"server": server["id"]})

    def unassign(self, project: int, oid, body: dict) -> dict:
        obj = self.get(project, oid)
        former = obj["assignee_id"]
        if obj["assignee_id"]:
            server = self.store.get("server", obj["assignee_id"])
            if server["status"] != "off":
                raise errors.specific("server_not_stopped", f"server '{server['name']}' must be off to unassign its primary IP")
            self.store.edit("server", server["id"])[f"_{obj['type']}"] = None
            self.store.edit(self.kind, obj["id"])["assignee_id"] = None
        return self.cloud.start_action(project, "unassign_primary_ip", [(self.kind, obj["id"])],
                                       machine="public_ip", args={"server": former})

    def change_dns_ptr(self, project: int, oid, body: dict) -> dict:
        obj = self.get(project, oid)
        set_dns_ptr(self.store.edit(self.kind, obj["id"]), body)
        return self.cloud.start_action(project, "change_dns_ptr", [(self.kind, obj["id"])])

    def update_extra(self, project, obj, body):
        if body.get("auto_delete") is not None:
            if not isinstance(body["auto_delete"], bool):
                raise errors.invalid_input("auto_delete", "must be true or false")
            return {"auto_delete": body["auto_delete"]}
        return {}

    def delete(self, project: int, oid) -> None:
        obj = self.get(project, oid)
        self.check_delete_protection(obj)
        if obj["assignee_id"]:
            raise errors.specific("must_be_unassigned",
                                  f"primary IP {obj['ip']} is assigned to server {obj['assignee_id']}: unassign it first")
        self.store.delete(self.kind, obj["id"])


@machine_effect("public_ip")
def _machine_public_ip(cloud, action, args, secret):
    """The server's machine takes its (new) primary IPv4, or goes without."""
    server = cloud.store.get("server", args["server"]) if args.get("server") else None
    if server is None:
        return None
    address = cloud.servers.address(server["_ipv4"], "ipv4")
    return cloud.backend.set_public_ipv4(server["id"], address["ip"] if address else None)


def set_dns_ptr(obj: dict, body: dict) -> None:
    ip, ptr = body.get("ip"), body.get("dns_ptr")
    if not isinstance(ip, str):
        raise errors.invalid_input("ip", "must be the IP whose reverse DNS entry to set")
    if ptr is not None and (not isinstance(ptr, str) or not ptr):
        raise errors.invalid_input("dns_ptr", "must be a hostname or null to reset")
    entries = [e for e in obj["dns_ptr"] if e["ip"] != ip]
    if ptr is not None:
        entries.append({"ip": ip, "dns_ptr": ptr})
    elif obj["type"] == "ipv4" and ip == obj["ip"]:
        entries.append({"ip": ip, "dns_ptr": reverse_dns(ip)})
    obj["dns_ptr"] = entries
