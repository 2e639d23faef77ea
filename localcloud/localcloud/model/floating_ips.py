"""Floating IPs: public addresses that move between servers of any location."""
from __future__ import annotations

from .. import errors
from ..labels import validate_labels
from .base import OMIT, Outcome, ResourceModel, machine_effect
from .primary_ips import PublicAddresses, reverse_dns, set_dns_ptr


class FloatingIPs(ResourceModel):
    kind = "floating_ip"
    plural = "floating_ips"
    label = "Floating IP"
    sort_fields = ("id", "created")
    id_start = 8000

    def __init__(self, cloud):
        super().__init__(cloud)
        self._sent: dict[int, tuple[str, int | None]] = {}      # id -> (ip, server) the backend routes

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
            action = self.cloud.start_action(project, "assign_floating_ip", [(self.kind, fip["id"]), ("server", server["id"])],
                                             machine="floating_ip")
        # the spec's action is optional but not nullable: leave it out when nothing runs
        return Outcome(fip, action=action or OMIT)

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
        return self.cloud.start_action(project, "assign_floating_ip", [(self.kind, fip["id"]), ("server", server["id"])],
                                       machine="floating_ip")

    def unassign(self, project: int, oid, body: dict) -> dict:
        fip = self.get(project, oid)
        self.store.edit(self.kind, fip["id"])["server"] = None
        return self.cloud.start_action(project, "unassign_floating_ip", [(self.kind, fip["id"])], machine="floating_ip")

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

    # --- the data path: where the backend routes each floating IPv4
    def sync(self, fip_id: int):
        fip = self.store.get(self.kind, fip_id)
        if fip is None:
            gone = self._sent.pop(fip_id, None)
            return self.cloud.backend.route_floating_ip(gone[0], None) if gone else None
        if fip["type"] != "ipv4":
            return None                   # the machines have no public IPv6
        wanted = (fip["ip"], fip["server"])
        if self._sent.get(fip_id) == wanted:
            return None
        self._sent[fip_id] = wanted
        return self.cloud.backend.route_floating_ip(*wanted)

    def sync_backend(self) -> None:
        for fip_id in sorted({f["id"] for f in self.store.all(self.kind)} | set(self._sent)):
            self.sync(fip_id)


@machine_effect("floating_ip")
def _machine_floating_ip(cloud, action, args, secret):
    return cloud.floating_ips.sync(action["resources"][0]["id"])
