"""Servers: creation rules, power and network actions, deletion, and the machine behind each."""
from __future__ import annotations

import ipaddress
import re
import secrets

from .. import errors
from ..backends.base import ServerSpec
from ..labels import validate_labels
from .base import Outcome, ResourceModel, effect, machine_effect

HOSTNAME_RE = re.compile(r"^(?=.{1,253}$)([a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$")
USER_DATA_LIMIT = 32 * 1024
STATUSES = ("running", "initializing", "starting", "stopping", "off", "deleting", "migrating", "rebuilding", "unknown")
POWER_COMMANDS = {
    "poweron": ("start_server", "starting", "running"),
    "poweroff": ("stop_server", "stopping", "off"),
    "shutdown": ("shutdown_server", "stopping", "off"),
    "reboot": ("reboot_server", "starting", "running"),
    "reset": ("reset_server", "starting", "running"),
}


def _bool(body: dict, key: str, default: bool) -> bool:
    value = body.get(key, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise errors.invalid_input(key, "must be true or false")
    return value


class Servers(ResourceModel):
    kind = "server"
    plural = "servers"
    label = "Server"
    id_start = 100_000

    def filter(self, items, query):
        statuses = query.getlist("status")
        if statuses:
            items = [s for s in items if self.status(s) in statuses]
        return items

    def get_ref(self, project: int, ref, field: str) -> dict:
        if not isinstance(ref, int) or isinstance(ref, bool):
            raise errors.invalid_input(field, "must be a server ID")
        server = self.store.get(self.kind, ref)
        if server is None or server["_project"] != project:
            raise errors.invalid_input(field, f"server {ref} does not exist in this project")
        return server

    # --- rendering
    def status(self, server: dict) -> str:
        if server["status"] in ("running", "off") and not self.cloud.locked("server", server["id"]):
            machine = self.cloud.backend.machine_status(server["id"])
            if machine in ("running", "off"):
                return machine
        return server["status"]

    def address(self, primary_ip_id, version):
        if not primary_ip_id:
            return None
        primary = self.store.get("primary_ip", primary_ip_id)
        if primary is None:
            return None
        if version == "ipv4":
            ptr = next((e["dns_ptr"] for e in primary["dns_ptr"] if e["ip"] == primary["ip"]), None)
            return {"id": primary["id"], "ip": primary["ip"], "blocked": False, "dns_ptr": ptr}
        return {"id": primary["id"], "ip": primary["ip"], "blocked": False, "dns_ptr": primary["dns_ptr"]}

    def references(self, project: int) -> dict[int, dict[str, list[int]]]:
        """Per server id: the floating IPs, volumes and load balancers that point at it."""
        def build():
            index: dict[int, dict[str, list[int]]] = {}

            def add(sid, kind, oid):
                index.setdefault(sid, {"floating_ips": [], "volumes": [], "load_balancers": []})[kind].append(oid)
            for fip in self.cloud.floating_ips.objects(project):
                if fip["server"]:
                    add(fip["server"], "floating_ips", fip["id"])
            for volume in self.cloud.volumes.objects(project):
                if volume["server"]:
                    add(volume["server"], "volumes", volume["id"])
            for lb in self.cloud.load_balancers.objects(project):
                for sid in self.cloud.load_balancers.target_server_ids(lb):
                    add(sid, "load_balancers", lb["id"])
            return index
        return self.cloud.memo(("server_references", project), build)

    def render(self, obj):
        data = super().render(obj)
        catalog = self.cloud.catalog
        project = obj["_project"]
        refs = self.references(project).get(obj["id"], {"floating_ips": [], "volumes": [], "load_balancers": []})
        data["status"] = self.status(obj)
        data["server_type"] = catalog.server_type(obj["_server_type"])
        data["location"] = catalog.location(obj["_location"])
        if self.cloud.settings.legacy_datacenters:
            data["datacenter"] = catalog.legacy_datacenter(obj["_location"])
        data["image"] = self.cloud.images.rendered(obj["_image"])
        data["iso"] = self.cloud.catalog.iso(obj["_iso"]) if obj.get("_iso") else None
        data["public_net"] = {
            "ipv4": self.address(obj["_ipv4"], "ipv4"),
            "ipv6": self.address(obj["_ipv6"], "ipv6"),
            "floating_ips": sorted(refs["floating_ips"]),
            "firewalls": [{"id": fw["id"], "status": "applied"} for fw in self.cloud.firewalls.firewalls_of_server(obj)],
        }
        group = self.store.get("placement_group", obj["_placement_group"]) if obj["_placement_group"] else None
        data["placement_group"] = self.cloud.placement_groups.render(group) if group else None
        data["volumes"] = sorted(refs["volumes"])
        data["load_balancers"] = sorted(refs["load_balancers"])
        data["locked"] = self.cloud.locked("server", obj["id"])
        data["primary_disk_size"] = data["server_type"]["disk"] if obj["_disk"] is None else obj["_disk"]
        return data

    # --- creation
    def resolve_type_and_location(self, body: dict):
        catalog = self.cloud.catalog
        ref = body.get("server_type")
        if ref is None:
            raise errors.invalid_input("server_type", "is required (e.g. cx23, cpx22, cax11)")
        server_type = catalog.server_type(ref) if isinstance(ref, (int, str)) and not isinstance(ref, bool) else None
        if server_type is None:
            raise errors.invalid_input("server_type", f"server type '{ref}' does not exist; list them with GET /server_types")
        location_ref = body.get("location")
        if location_ref is None and body.get("datacenter") is not None:
            found = catalog.location_of_datacenter(body["datacenter"])
            if found is None:
                raise errors.invalid_input("datacenter", f"datacenter '{body['datacenter']}' does not exist; use location")
            location_ref = found["name"]
        if location_ref is not None:
            location = catalog.location(location_ref) if not isinstance(location_ref, bool) else None
            if location is None:
                raise errors.invalid_input("location", f"location '{location_ref}' does not exist; use fsn1, nbg1, hel1, ash, hil or sin")
        else:
            offered = [catalog.location(entry["id"]) for entry in server_type["locations"]
                       if catalog.orderable(server_type, entry["name"]) is None]
            location = offered[0] if offered else catalog.location(server_type["locations"][0]["id"]) if server_type["locations"] else None
            if location is None:
                raise errors.invalid_input("location", "is required")
        self.check_orderable(server_type, location["name"])
        return server_type, location

    def check_orderable(self, server_type: dict, location_name: str) -> None:
        reason = self.cloud.catalog.orderable(server_type, location_name)
        if reason is None:
            return
        if reason == "deprecated":
            entry = next(e for e in server_type["locations"] if e["name"] == location_name)
            successor = self.successor(server_type)
            raise errors.invalid_input(
                "server_type",
                f"server type '{server_type['name']}' is deprecated and can no longer be ordered "
                f"(unavailable after {entry['deprecation']['unavailable_after']})"
                + (f"; use {successor} instead" if successor else ""),
            )
        if reason == "not offered":
            where = ", ".join(e["name"] for e in server_type["locations"]) or "no location"
            raise errors.invalid_input(
                "location", f"server type '{server_type['name']}' is not offered in {location_name}; it is offered in {where}")
        raise errors.resource_unavailable(
            f"server type '{server_type['name']}' is currently unavailable in {location_name}; try another location")

    def successor(self, server_type: dict) -> str | None:
        name = server_type["name"]
        match = re.match(r"^([a-z]+)(\d)(\d)$", name)
        if not match:
            return None
        family, size, generation = match.groups()
        for candidate in (f"{family}{size}{int(generation) + 1}", f"{family}{int(size) + 1}{int(generation) + 1}"):
            found = self.cloud.catalog.server_type(candidate)
            if found and not found.get("deprecated"):
                return candidate
        return None

    def resolve_image(self, project: int, ref, architecture: str, field: str = "image") -> dict:
        if ref is None:
            raise errors.invalid_input(field, "is required (e.g. debian-12, ubuntu-24.04)")
        if isinstance(ref, bool) or not isinstance(ref, (int, str)):
            raise errors.invalid_input(field, "must be an image name or ID")
        image = self.cloud.catalog.image(ref, architecture) or self.cloud.images.own(project, ref)
        if image is None:
            raise errors.invalid_input(field, f"image '{ref}' does not exist for architecture {architecture}; "
                                              "use debian-12, debian-13, ubuntu-22.04 or ubuntu-24.04")
        if image["architecture"] != architecture:
            raise errors.invalid_input(field, f"image {image['id']} is for {image['architecture']}, the server type is {architecture}")
        if image["status"] != "available":
            raise errors.invalid_input(field, f"image {image['id']} is {image['status']}: wait until it is available")
        if image["type"] in ("snapshot", "backup"):
            why = self.cloud.backend.disk_images_unavailable()
            if why:
                raise errors.invalid_input(field, why)
            return image
        why = self.cloud.backend.image_unavailable(image["name"])
        if why:
            raise errors.invalid_input(field, why)
        return image

    def validate_name(self, name) -> None:
        if not isinstance(name, str) or not HOSTNAME_RE.match(name):
            raise errors.invalid_input("name", f"'{name}' is not a valid hostname (RFC 1123): letters, digits and '-', "
                                               "dot-separated labels of at most 63 characters")

    def create(self, project: int, body: dict) -> dict:
        cloud = self.cloud
        self.validate_name(body.get("name"))
        server_type, location = self.resolve_type_and_location(body)
        image = self.resolve_image(project, body.get("image"), server_type["architecture"])
        labels = validate_labels(body.get("labels"))
        start = _bool(body, "start_after_create", True)
        automount = _bool(body, "automount", False)
        user_data = body.get("user_data")
        if user_data is not None and (not isinstance(user_data, str) or len(user_data.encode()) > USER_DATA_LIMIT):
            raise errors.invalid_input("user_data", f"must be a string of at most {USER_DATA_LIMIT} bytes (cloud-init)")
        ssh_keys = [cloud.ssh_keys.resolve(project, ref, "ssh_keys") for ref in self._list(body, "ssh_keys")]
        zone = location["network_zone"]
        networks = []
        for ref in self._list(body, "networks"):
            network = cloud.networks.resolve(project, ref, "networks") if isinstance(ref, int) else None
            if network is None:
                raise errors.invalid_input("networks", f"network '{ref}' must be an existing network ID")
            networks.append(network)
        public_net = body.get("public_net") or {}
        if not isinstance(public_net, dict):
            raise errors.invalid_input("public_net", "must be an object")
        enable_v4 = _bool(public_net, "enable_ipv4", True)
        enable_v6 = _bool(public_net, "enable_ipv6", True)
        primary = {}
        for version, enabled in (("ipv4", enable_v4), ("ipv6", enable_v6)):
            ref = public_net.get(version)
            if ref is not None:
                found = cloud.primary_ips.resolve(project, ref, f"public_net.{version}")
                if found["assignee_id"]:
                    raise errors.specific("primary_ip_assigned", f"primary IP {found['ip']} is already assigned")
                if found["_location"] != location["name"]:
                    raise errors.specific("primary_ip_datacenter_mismatch",
                                          f"primary IP {found['ip']} is in {found['_location']}, the server in {location['name']}")
                if found["type"] != version:
                    raise errors.specific("primary_ip_version_mismatch", f"primary IP {found['ip']} is not {version}")
                primary[version] = found
        if not enable_v4 and not enable_v6 and not networks and start:
            raise errors.invalid_input("public_net", "a server needs a public IP or a network to be powered on: enable "
                                                     "one, give networks, or create it with start_after_create false")
        firewalls = []
        for index, entry in enumerate(self._list(body, "firewalls")):
            ref = entry.get("firewall") if isinstance(entry, dict) else None
            firewalls.append(cloud.firewalls.resolve(project, ref, f"firewalls[{index}].firewall")
                             if isinstance(ref, int) else self._bad(f"firewalls[{index}].firewall", "must be a firewall ID"))
        if firewalls and not enable_v4 and not enable_v6:
            raise errors.specific("private_net_only_server",
                                  "firewalls need a public interface; Cloud Firewalls do not filter private networks")
        if len(firewalls) > 5:
            raise errors.invalid_input("firewalls", "at most 5 firewalls apply to one server")
        group = None
        if body.get("placement_group") is not None:
            if not isinstance(body["placement_group"], int):
                raise errors.invalid_input("placement_group", "must be a placement group ID")
            group = cloud.placement_groups.resolve(project, body["placement_group"], "placement_group")
            cloud.placement_groups.check_room(group)
        volumes = []
        for ref in self._list(body, "volumes"):
            volume = cloud.volumes.resolve(project, ref, "volumes") if isinstance(ref, int) else self._bad("volumes", "must be volume IDs")
            cloud.volumes.check_attachable(volume, location["name"])
            volumes.append(volume)
        self.unique_name(project, body["name"])
        ips = {}
        for network in networks:
            if cloud.networks.zone_of(network) not in (zone, None):
                raise errors.invalid_input(
                    "networks", f"network '{network['name']}' is in network zone {cloud.networks.zone_of(network)}, "
                    f"location {location['name']} is in {zone}: pick a location in that zone")
            ips[network["id"]] = cloud.networks.allocate_ip(network, zone, field="networks")
        # everything is valid: create
        server = self.new(
            project, name=body["name"], status="initializing", labels=labels,
            _server_type=server_type["id"], _location=location["name"], _image=image["id"], _disk=None,
            _ipv4=None, _ipv6=None, private_net=[], protection={"delete": False, "rebuild": False},
            rescue_enabled=False, backup_window=None, _iso=None, _placement_group=group["id"] if group else None,
            included_traffic=server_type["prices"][0]["included_traffic"] if server_type["prices"] else 0,
            ingoing_traffic=0, outgoing_traffic=0,
            _user_data=user_data, _ssh_keys=[k["public_key"] for k in ssh_keys],
        )
        self.store.put(self.kind, server)
        for version, enabled in (("ipv4", enable_v4), ("ipv6", enable_v6)):
            if version in primary:
                self.store.edit("primary_ip", primary[version]["id"])["assignee_id"] = server["id"]
                server[f"_{version}"] = primary[version]["id"]
            elif enabled:
                server[f"_{version}"] = cloud.primary_ips.new_address(project, version, location["name"], server["id"])["id"]
        for network in networks:
            server["private_net"].append(self._attachment(network["id"], ips[network["id"]], server["id"]))
        for firewall in firewalls:
            cloud.store.edit("firewall", firewall["id"])["_applied_to"].append({"type": "server", "server": {"id": server["id"]}})
        for volume in volumes:
            cloud.store.edit("volume", volume["id"])["server"] = server["id"]
        cloud.after_commit("firewalls")
        root_password = None if ssh_keys else secrets.token_urlsafe(12)
        action = cloud.start_action(project, "create_server", [("server", server["id"])],
                                    effect_name="server_created", error_effect="server_create_failed",
                                    machine="create_server", args={"start": start, "automount": automount},
                                    secret={"root_password": root_password})
        next_actions = []
        if start:
            next_actions.append(cloud.start_action(project, "start_server", [("server", server["id"])],
                                                   effect_name="server_running", after=action["id"]))
        for network in networks:
            next_actions.append(cloud.start_action(project, "attach_to_network",
                                                   [("server", server["id"]), ("network", network["id"])],
                                                   effect_name="nothing", after=action["id"], duration=0))
        return Outcome(server, action=action, next_actions=next_actions, extra={"root_password": root_password})

    @staticmethod
    def _bad(field, message):
        raise errors.invalid_input(field, message)

    @staticmethod
    def _list(body: dict, key: str) -> list:
        value = body.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            raise errors.invalid_input(key, "must be a list")
        return value

    @staticmethod
    def _attachment(network_id: int, ip: str, server_id: int) -> dict:
        mac = "86:00:00:%02x:%02x:%02x" % ((server_id >> 16) & 0xFF, (server_id >> 8) & 0xFF, server_id & 0xFF)
        return {"network": network_id, "ip": ip, "alias_ips": [], "mac_address": mac}

    def spec(self, server: dict, start: bool = True, root_password: str | None = None,
             automount: bool = False) -> ServerSpec:
        image = self.cloud.images.os_image(server["_image"])
        v4 = self.address(server["_ipv4"], "ipv4")
        attachments = tuple(
            self.cloud.networks.attachment(self.store.get("network", att["network"]), att["ip"], att.get("mac_address"))
            for att in server["private_net"]
        )
        volumes = tuple(sorted(v["id"] for v in self.store.all("volume") if v["server"] == server["id"]))
        server_type = self.cloud.catalog.server_type(server["_server_type"])
        own = self.store.get("image", server["_image"]) if server["_image"] else None
        return ServerSpec(server_id=server["id"], name=server["name"], image=image["name"] if image else "",
                          disk_image=own["id"] if own is not None else None,
                          public_ipv4=v4["ip"] if v4 else None, ssh_keys=tuple(server["_ssh_keys"]),
                          user_data=server["_user_data"], networks=attachments, start=start,
                          root_password=root_password, volumes=volumes, automount=automount,
                          cores=server_type["cores"], memory_gb=server_type["memory"])

    # --- deletion
    def delete(self, project: int, oid) -> dict:
        server = self.get(project, oid)
        if server["protection"]["delete"]:
            raise errors.protected("server", server["id"])
        if server["status"] == "deleting":
            raise errors.locked("server", server["id"])
        cloud = self.cloud
        for volume in cloud.volumes.objects(project):
            if volume["server"] == server["id"]:
                cloud.store.edit("volume", volume["id"])["server"] = None
        for fip in cloud.floating_ips.objects(project):
            if fip["server"] == server["id"]:
                cloud.store.edit("floating_ip", fip["id"])["server"] = None
        for version in ("ipv4", "ipv6"):
            primary = self.store.get("primary_ip", server[f"_{version}"]) if server[f"_{version}"] else None
            if primary:
                if primary["auto_delete"]:
                    self.store.delete("primary_ip", primary["id"])
                else:
                    self.store.edit("primary_ip", primary["id"])["assignee_id"] = None
        cloud.firewalls.forget_server(server)
        cloud.load_balancers.forget_server(server)
        cloud.images.forget_server(project, server["id"])
        edited = self.store.edit(self.kind, server["id"])
        edited.update(status="deleting", _ipv4=None, _ipv6=None, _placement_group=None)
        action = cloud.start_action(project, "delete_server", [("server", server["id"])],
                                    effect_name="server_deleted", error_effect="server_deleted",
                                    machine="delete_server")
        return action

    def drop_network(self, server: dict, network_id: int) -> None:
        """Take the server out of the network (its machine follows after the commit)."""
        edited = self.store.edit(self.kind, server["id"])
        edited["private_net"] = [p for p in edited["private_net"] if p["network"] != network_id]
        backend, sid = self.cloud.backend, server["id"]
        self.cloud.after_commit(("detach_network", sid, network_id), lambda: backend.detach_network(sid, network_id))

    # --- actions
    def _server_for_action(self, project, oid) -> dict:
        server = self.get(project, oid)
        self.cloud.assert_unlocked("server", server["id"], "server")
        if server["status"] == "deleting":
            raise errors.locked("server", server["id"])
        return server

    def power(self, project: int, oid, op: str) -> dict:
        server = self._server_for_action(project, oid)
        command, transient, final = POWER_COMMANDS[op]
        if final == "running" and not (server["_ipv4"] or server["_ipv6"] or server["private_net"]):
            raise errors.unsupported(f"server '{server['name']}' has no network interface: assign a primary IP or "
                                     "attach it to a network before powering it on")
        self.store.edit(self.kind, server["id"])["status"] = transient
        return self.cloud.start_action(project, command, [("server", server["id"])],
                                       effect_name="server_status", args={"status": final, "op": op},
                                       machine="power", error_effect="server_status_restore")

    def require_off(self, server: dict, what: str) -> None:
        if self.status(server) != "off":
            raise errors.specific("server_not_stopped", f"server '{server['name']}' must be off to {what}: power it off first")

    def change_type(self, project: int, oid, body: dict) -> dict:
        server = self._server_for_action(project, oid)
        current = self.cloud.catalog.server_type(server["_server_type"])
        new_type = self.cloud.catalog.server_type(body.get("server_type")) if isinstance(body.get("server_type"), (int, str)) else None
        if new_type is None:
            raise errors.invalid_input("server_type", f"server type '{body.get('server_type')}' does not exist")
        upgrade_disk = _bool(body, "upgrade_disk", False)
        if "upgrade_disk" not in body:
            raise errors.invalid_input("upgrade_disk", "is required: true to grow the disk (no downgrade later), false to keep it")
        self.check_orderable(new_type, server["_location"])
        if new_type["architecture"] != current["architecture"] or new_type["storage_type"] != current["storage_type"]:
            raise errors.specific("invalid_server_type",
                                  f"cannot change from {current['name']} to {new_type['name']}: architecture and storage type must stay the same")
        disk = current["disk"] if server["_disk"] is None else server["_disk"]
        if new_type["disk"] < disk:
            raise errors.specific("invalid_server_type",
                                  f"{new_type['name']} has a {new_type['disk']} GB disk, smaller than the server's {disk} GB")
        self.require_off(server, "change its type")
        return self.cloud.start_action(project, "change_server_type", [("server", server["id"])],
                                       effect_name="server_type_changed", machine="server_type",
                                       args={"server_type": new_type["id"], "disk": new_type["disk"] if upgrade_disk else disk})

    def rebuild(self, project: int, oid, body: dict) -> dict:
        server = self._server_for_action(project, oid)
        if server["protection"]["rebuild"]:
            raise errors.protected("server", server["id"], "rebuild")
        current = self.cloud.catalog.server_type(server["_server_type"])
        image = self.resolve_image(project, body.get("image"), current["architecture"])
        if body.get("user_data") is not None:
            if not isinstance(body["user_data"], str) or len(body["user_data"].encode()) > USER_DATA_LIMIT:
                raise errors.invalid_input("user_data", f"must be a string of at most {USER_DATA_LIMIT} bytes")
        edited = self.store.edit(self.kind, server["id"])
        edited.update(status="rebuilding", _image=image["id"])
        if body.get("user_data") is not None:
            edited["_user_data"] = body["user_data"]
        root_password = None if server["_ssh_keys"] else secrets.token_urlsafe(12)
        action = self.cloud.start_action(project, "rebuild_server", [("server", server["id"])],
                                         effect_name="server_status", args={"status": "running"},
                                         machine="rebuild", secret={"root_password": root_password})
        return Outcome(action=action, extra={"root_password": root_password})

    def attach_to_network(self, project: int, oid, body: dict) -> dict:
        server = self._server_for_action(project, oid)
        ref = body.get("network")
        if not isinstance(ref, int) or isinstance(ref, bool):
            raise errors.invalid_input("network", "must be a network ID")
        network = self.cloud.networks.resolve(project, ref, "network")
        if any(p["network"] == network["id"] for p in server["private_net"]):
            raise errors.specific("server_already_attached", f"server '{server['name']}' is already attached to network '{network['name']}'")
        net_range = ipaddress.ip_network(network["ip_range"])
        for att in server["private_net"]:
            other = self.store.get("network", att["network"])
            if other and net_range.overlaps(ipaddress.ip_network(other["ip_range"])):
                raise errors.specific("networks_overlap", f"network '{network['name']}' overlaps network '{other['name']}' the server is in")
        zone = self.cloud.catalog.location(server["_location"])["network_zone"]
        if self.cloud.networks.zone_of(network) not in (zone, None):
            raise errors.invalid_input("network", f"network '{network['name']}' is in zone {self.cloud.networks.zone_of(network)}, "
                                                  f"the server in {zone}")
        aliases = body.get("alias_ips") or []
        ip = self.cloud.networks.allocate_ip(network, zone, ip=body.get("ip"), ip_range=body.get("ip_range"))
        attachment = self._attachment(network["id"], ip, server["id"])
        attachment["alias_ips"] = self._aliases(network, zone, aliases, exclude=ip)
        self.store.edit(self.kind, server["id"])["private_net"].append(attachment)
        return self.cloud.start_action(project, "attach_to_network", [("server", server["id"]), ("network", network["id"])],
                                       machine="attach_network", args={"network": network["id"]})

    def _aliases(self, network, zone, aliases, exclude) -> list[str]:
        if not isinstance(aliases, list):
            raise errors.invalid_input("alias_ips", "must be a list of IPs")
        result = []
        for alias in aliases:
            if alias == exclude or alias in result:
                raise errors.invalid_input("alias_ips", f"{alias} is given twice")
            result.append(self.cloud.networks.allocate_ip(network, zone, ip=alias, field="alias_ips"))
        return result

    def detach_from_network(self, project: int, oid, body: dict) -> dict:
        server = self._server_for_action(project, oid)
        ref = body.get("network")
        if not isinstance(ref, int) or not any(p["network"] == ref for p in server["private_net"]):
            raise errors.specific("server_not_attached_to_network", f"server '{server['name']}' is not attached to network {ref}")
        edited = self.store.edit(self.kind, server["id"])
        edited["private_net"] = [p for p in edited["private_net"] if p["network"] != ref]
        return self.cloud.start_action(project, "detach_from_network", [("server", server["id"]), ("network", ref)],
                                       machine="detach_network", args={"network": ref})

    def change_alias_ips(self, project: int, oid, body: dict) -> dict:
        server = self._server_for_action(project, oid)
        ref = body.get("network")
        att = next((p for p in server["private_net"] if p["network"] == ref), None)
        if att is None:
            raise errors.specific("server_not_attached_to_network", f"server '{server['name']}' is not attached to network {ref}")
        network = self.store.get("network", ref)
        edited = self.store.edit(self.kind, server["id"])
        mine = next(p for p in edited["private_net"] if p["network"] == ref)
        mine["alias_ips"] = []
        zone = self.cloud.catalog.location(server["_location"])["network_zone"]
        mine["alias_ips"] = self._aliases(network, zone, body.get("alias_ips"), exclude=att["ip"])
        return self.cloud.start_action(project, "change_alias_ips", [("server", server["id"]), ("network", ref)])

    def change_protection(self, project: int, oid, body: dict) -> dict:
        server = self.get(project, oid)
        delete, rebuild = body.get("delete"), body.get("rebuild")
        for key, value in (("delete", delete), ("rebuild", rebuild)):
            if value is not None and not isinstance(value, bool):
                raise errors.invalid_input(key, "must be true or false")
        if delete is None and rebuild is None:
            raise errors.invalid_input("delete", "give delete and/or rebuild")
        delete = rebuild if delete is None else delete
        rebuild = delete if rebuild is None else rebuild
        if delete != rebuild:
            raise errors.invalid_input("rebuild", "delete and rebuild protection must currently have the same value")
        self.store.edit(self.kind, server["id"])["protection"] = {"delete": delete, "rebuild": rebuild}
        return self.cloud.start_action(project, "change_protection", [("server", server["id"])], duration=0)

    def enable_backup(self, project: int, oid, body: dict) -> dict:
        server = self._server_for_action(project, oid)
        self.store.edit(self.kind, server["id"])["backup_window"] = "22-02"
        return self.cloud.start_action(project, "enable_backup", [("server", server["id"])])

    def disable_backup(self, project: int, oid, body: dict) -> dict:
        server = self._server_for_action(project, oid)
        self.store.edit(self.kind, server["id"])["backup_window"] = None
        self.cloud.images.drop_backups(project, server["id"])
        return self.cloud.start_action(project, "disable_backup", [("server", server["id"])])

    def create_image(self, project: int, oid, body: dict) -> dict:
        server = self._server_for_action(project, oid)
        return self.cloud.images.create_from_server(project, server, body)

    def attach_iso(self, project: int, oid, body: dict) -> dict:
        server = self._server_for_action(project, oid)
        ref = body.get("iso")
        iso = self.cloud.catalog.iso(ref) if isinstance(ref, (int, str)) and not isinstance(ref, bool) else None
        if iso is None:
            raise errors.invalid_input("iso", f"ISO '{ref}' does not exist; list them with GET /isos")
        arch = self.cloud.catalog.server_type(server["_server_type"])["architecture"]
        if iso["architecture"] not in (None, arch):
            raise errors.invalid_input("iso", f"ISO '{iso['name']}' is for {iso['architecture']}, the server is {arch}")
        self.store.edit(self.kind, server["id"])["_iso"] = iso["id"]
        return self.cloud.start_action(project, "attach_iso", [("server", server["id"])])

    def detach_iso(self, project: int, oid, body: dict) -> dict:
        server = self._server_for_action(project, oid)
        if not server.get("_iso"):
            raise errors.specific("no_iso_attached", f"server '{server['name']}' has no ISO attached")
        self.store.edit(self.kind, server["id"])["_iso"] = None
        return self.cloud.start_action(project, "detach_iso", [("server", server["id"])])

    def add_to_placement_group(self, project: int, oid, body: dict) -> dict:
        server = self._server_for_action(project, oid)
        ref = body.get("placement_group")
        if not isinstance(ref, int):
            raise errors.invalid_input("placement_group", "must be a placement group ID")
        group = self.cloud.placement_groups.resolve(project, ref, "placement_group")
        if server["_placement_group"]:
            raise errors.specific("server_already_added", f"server '{server['name']}' is already in a placement group")
        self.require_off(server, "join a placement group")
        self.cloud.placement_groups.check_room(group)
        self.store.edit(self.kind, server["id"])["_placement_group"] = group["id"]
        return self.cloud.start_action(project, "add_to_placement_group", [("server", server["id"])])

    def remove_from_placement_group(self, project: int, oid, body: dict) -> dict:
        server = self._server_for_action(project, oid)
        self.store.edit(self.kind, server["id"])["_placement_group"] = None
        return self.cloud.start_action(project, "remove_from_placement_group", [("server", server["id"])])

    def change_dns_ptr(self, project: int, oid, body: dict) -> dict:
        from .primary_ips import set_dns_ptr
        server = self.get(project, oid)
        for version in ("ipv4", "ipv6"):
            primary = self.store.get("primary_ip", server[f"_{version}"]) if server[f"_{version}"] else None
            if primary and (body.get("ip") == primary["ip"] or (version == "ipv6" and isinstance(body.get("ip"), str)
                            and ":" in body["ip"] and ipaddress.ip_address(body["ip"]) in ipaddress.ip_network(primary["ip"]))):
                set_dns_ptr(self.store.edit("primary_ip", primary["id"]), body)
                return self.cloud.start_action(project, "change_dns_ptr", [("server", server["id"])])
        raise errors.invalid_input("ip", f"{body.get('ip')} is not a public IP of server '{server['name']}'")

    def enable_rescue(self, project: int, oid, body: dict) -> dict:
        server = self._server_for_action(project, oid)
        self.store.edit(self.kind, server["id"])["rescue_enabled"] = True
        action = self.cloud.start_action(project, "enable_rescue", [("server", server["id"])])
        return Outcome(action=action, extra={"root_password": secrets.token_urlsafe(12)})

    def disable_rescue(self, project: int, oid, body: dict) -> dict:
        server = self._server_for_action(project, oid)
        self.store.edit(self.kind, server["id"])["rescue_enabled"] = False
        return self.cloud.start_action(project, "disable_rescue", [("server", server["id"])])

    def reset_password(self, project: int, oid, body: dict) -> dict:
        server = self._server_for_action(project, oid)
        if self.status(server) != "running":
            raise errors.specific("server_not_running", f"server '{server['name']}' must be running to reset its password")
        root_password = secrets.token_urlsafe(12)
        action = self.cloud.start_action(project, "reset_password", [("server", server["id"])],
                                         machine="reset_password", secret={"root_password": root_password})
        return Outcome(action=action, extra={"root_password": root_password})

    def restore_machines(self) -> None:
        """After a restart, give every stored server its machine back, booting from the disk it had,
        with its volumes, in the power state it had."""
        for server in list(self.store.all(self.kind)):
            if server["status"] == "deleting":
                self.cloud.backend.delete_server(server["id"])     # its disk, if the delete was cut short
            else:
                self.cloud.backend.restore_server(self.spec(server, start=server["status"] != "off"))

    def metrics(self, project: int, oid, query) -> dict:
        self.get(project, oid)
        types = query.get("type")
        if not types:
            raise errors.invalid_input("type", "is required: cpu, disk and/or network")
        start, end = query.get("start"), query.get("end")
        if not start or not end:
            raise errors.invalid_input("start", "start and end are required (ISO 8601 timestamps)")
        step = query.get("step") or "60"
        if not step.isdigit() or int(step) < 1:
            raise errors.invalid_input("step", "must be a whole number of seconds")
        return {"start": start, "end": end, "step": int(step), "time_series": {}}


@effect("server_created")
def _server_created(cloud, action, args):
    server = cloud.store.get("server", action["resources"][0]["id"])
    if server is not None and server["status"] == "initializing":
        cloud.store.edit("server", server["id"])["status"] = "off"


@effect("server_create_failed")
def _server_create_failed(cloud, action, args):
    _server_created(cloud, action, args)


@effect("server_running")
def _server_running(cloud, action, args):
    server = cloud.store.get("server", action["resources"][0]["id"])
    if server is not None:
        cloud.store.edit("server", server["id"])["status"] = "running"


@effect("server_status")
def _server_status(cloud, action, args):
    server = cloud.store.get("server", action["resources"][0]["id"])
    if server is not None:
        cloud.store.edit("server", server["id"])["status"] = args["status"]


@effect("server_status_restore")
def _server_status_restore(cloud, action, args):
    server = cloud.store.get("server", action["resources"][0]["id"])
    if server is not None:
        machine = cloud.backend.machine_status(server["id"])
        cloud.store.edit("server", server["id"])["status"] = machine or "off"


@effect("server_type_changed")
def _server_type_changed(cloud, action, args):
    server = cloud.store.get("server", action["resources"][0]["id"])
    if server is not None:
        cloud.store.edit("server", server["id"]).update(_server_type=args["server_type"], _disk=args["disk"])


@effect("server_deleted")
def _server_deleted(cloud, action, args):
    sid = action["resources"][0]["id"]
    if cloud.store.get("server", sid) is not None:
        cloud.store.delete("server", sid)
        cloud.after_commit("firewalls")


# --- machine effects: the backend follows the committed state
def _server_of(cloud, action) -> dict | None:
    return cloud.store.get("server", action["resources"][0]["id"])


@machine_effect("create_server")
def _machine_create(cloud, action, args, secret):
    server = _server_of(cloud, action)
    if server is None:
        return None
    return cloud.backend.create_server(cloud.servers.spec(server, start=args["start"], automount=args.get("automount", False),
                                                          root_password=secret.get("root_password")))


@machine_effect("power")
def _machine_power(cloud, action, args, secret):
    return cloud.backend.power(action["resources"][0]["id"], args["op"])


@machine_effect("rebuild")
def _machine_rebuild(cloud, action, args, secret):
    server = _server_of(cloud, action)
    if server is None:
        return None
    return cloud.backend.rebuild(cloud.servers.spec(server, root_password=secret.get("root_password")))


@machine_effect("delete_server")
def _machine_delete(cloud, action, args, secret):
    return cloud.backend.delete_server(action["resources"][0]["id"])


@machine_effect("attach_network")
def _machine_attach_network(cloud, action, args, secret):
    server = _server_of(cloud, action)
    network = cloud.store.get("network", args["network"])
    att = next((p for p in server["private_net"] if p["network"] == args["network"]), None) if server else None
    if att is None or network is None:
        return None                     # detached again (or deleted) before this action started
    return cloud.backend.attach_network(server["id"], cloud.networks.attachment(network, att["ip"], att.get("mac_address")))


@machine_effect("detach_network")
def _machine_detach_network(cloud, action, args, secret):
    return cloud.backend.detach_network(action["resources"][0]["id"], args["network"])


@machine_effect("reset_password")
def _machine_reset_password(cloud, action, args, secret):
    return cloud.backend.reset_password(action["resources"][0]["id"], secret["root_password"])


@machine_effect("server_type")
def _machine_server_type(cloud, action, args, secret):
    server_type = cloud.catalog.server_type(args["server_type"])
    return cloud.backend.set_server_type(action["resources"][0]["id"], server_type["cores"], server_type["memory"])
