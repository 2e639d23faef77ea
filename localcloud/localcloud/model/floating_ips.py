"""Floating IPs: public addresses that move between servers of any location."""
from __future__ import annotations

from .. import errors
from ..labels import validate_labels
from .base import ResourceModel
from .primary_ips import PublicAddresses, reverse_dns, set_dns_ptr


class FloatingIPs(ResourceModel):
    kind = "floating_ip"
    plural = "floating_ips"
    label = "Floating IP"
    sort_fields = ("id", "created")
    id_start = 8000

    def render(self, obj):
        data = super().render(obj)
        data["home_location"] = self.cloud.catalog.location(obj["_location"])
        return data

    def create(self, project: int, body: dict) -> dict:
        version = body.get("type")
        if version not in ("ipv4", "ipv6"):
            raise errors.invalid_input("type", "must be 'ipv4' or 'ipv6'")
        if body.get("name") is not None:
            self.validate_name(body["name"])
        labels = validate_labels(body.get("labels"))
        server = None
        if body.get("server") is not None:
            server = self.cloud.servers.get_ref(project, body["server"], "server")
            location = server["_location"]
        elif body.get("home_location") is not None:
            found = self.cloud.catalog.location(body["home_location"])
            if found is None:
                raise errors.invalid_input("home_location", f"location '{body['home_location']}' does not exist")
            location = found["name"]
        else:
            raise errors.invalid_fields({"server": ["give a server to assign the IP to, or a home_location"],
                                         "home_location": ["give a home_location, or a server to assign the IP to"]})
        if body.get("name") is not None:
            self.unique_name(project, body["name"])
        ip = PublicAddresses(self.cloud).allocate(version)
        fip = self.new(project, name=body.get("name"), description=body.get("description"), ip=ip, type=version,
                       server=server["id"] if server else None, blocked=False,
                       dns_ptr=[{"ip": ip, "dns_ptr": reverse_dns(ip)}] if version == "ipv4" else [],
                       protection={"delete": False}, labels=labels, _location=location)
        if fip["name"] is None:
            fip["name"] = f"floating_ip-{fip['id']}"
        self.store.put(self.kind, fip)
        action = None
        if server:
            action = self.cloud.start_action(project, "assign_floating_ip", [(self.kind, fip["id"]), ("server", server["id"])])
        # the spec's action is optional but not nullable: leave it out when nothing runs
        result = {"floating_ip": self.render(fip)}
        if action:
            result["action"] = self.cloud.action_json(action)
        return result

    def update_extra(self, project, obj, body):
        if "description" in body:
            if body["description"] is not None and not isinstance(body["description"], str):
                raise errors.invalid_input("description", "must be a string")
            return {"description": body["description"]}
        return {}

    def assign(self, project: int, oid, body: dict) -> dict:
        fip = self.get(project, oid)
        server = self.cloud.servers.get_ref(project, body.get("server"), "server")
        if fip["server"] == server["id"]:
            raise errors.specific("floating_ip_assigned", f"floating IP {fip['ip']} is already assigned to server '{server['name']}'")
        self.store.edit(self.kind, fip["id"])["server"] = server["id"]
        return self.cloud.start_action(project, "assign_floating_ip", [(self.kind, fip["id"]), ("server", server["id"])])

    def unassign(self, project: int, oid, body: dict) -> dict:
        fip = self.get(project, oid)
        self.store.edit(self.kind, fip["id"])["server"] = None
        return self.cloud.start_action(project, "unassign_floating_ip", [(self.kind, fip["id"])])

    def change_dns_ptr(self, project: int, oid, body: dict) -> dict:
        fip = self.get(project, oid)
        set_dns_ptr(self.store.edit(self.kind, fip["id"]), body)
        return self.cloud.start_action(project, "change_dns_ptr", [(self.kind, fip["id"])])

    def delete(self, project: int, oid) -> None:
        fip = self.get(project, oid)
        self.check_delete_protection(fip)
        if fip["server"]:
            raise errors.specific("must_be_unassigned",
                                  f"floating IP {fip['ip']} is assigned to server {fip['server']}: unassign it first")
        self.store.delete(self.kind, fip["id"])
