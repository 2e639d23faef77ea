"""Volumes: block storage in one location, attached to at most one server there."""
from __future__ import annotations

from .. import errors
from ..backends.base import VolumeSpec
from ..labels import validate_labels
from .base import Outcome, ResourceModel, effect, log, machine_effect

MIN_SIZE, MAX_SIZE = 10, 10240


class Volumes(ResourceModel):
    kind = "volume"
    plural = "volumes"
    label = "Volume"
    id_start = 7000

    def filter(self, items, query):
        statuses = query.getlist("status")
        return [v for v in items if v["status"] in statuses] if statuses else items

    def render(self, obj):
        data = super().render(obj)
        data["location"] = self.cloud.catalog.location(obj["_location"])
        data["linux_device"] = f"/dev/disk/by-id/scsi-0HC_Volume_{obj['id']}"
        return data

    def check_attachable(self, volume: dict, location: str) -> None:
        if volume["server"]:
            raise errors.specific("volume_already_attached", f"volume '{volume['name']}' is attached to server {volume['server']}: detach it first")
        if volume["_location"] != location:
            raise errors.invalid_input("server", f"volume '{volume['name']}' is in {volume['_location']}, the server in {location}: "
                                                 "a volume attaches only to servers in its location")

    def create(self, project: int, body: dict) -> dict:
        self.validate_name(body.get("name"))
        size = body.get("size")
        if not isinstance(size, int) or isinstance(size, bool) or not MIN_SIZE <= size <= MAX_SIZE:
            raise errors.invalid_input("size", f"must be a whole number of GB from {MIN_SIZE} to {MAX_SIZE}")
        fmt = body.get("format")
        if fmt is not None and fmt not in ("ext4", "xfs"):
            raise errors.invalid_input("format", "must be ext4 or xfs")
        labels = validate_labels(body.get("labels"))
        automount = body.get("automount", False)
        if not isinstance(automount, bool):
            raise errors.invalid_input("automount", "must be true or false")
        server = None
        if body.get("server") is not None:
            server = self.cloud.servers.get_ref(project, body["server"], "server")
            location = server["_location"]
        elif body.get("location") is not None:
            found = self.cloud.catalog.location(body["location"])
            if found is None:
                raise errors.invalid_input("location", f"location '{body['location']}' does not exist")
            location = found["name"]
        else:
            raise errors.invalid_fields({"location": ["give a location, or a server to attach the volume to"],
                                         "server": ["give a server to attach the volume to, or a location"]})
        if automount and server is None:
            raise errors.invalid_input("automount", "needs a server")
        if body.get("location") is not None and server is not None and self.cloud.catalog.location(body["location"]) \
                and self.cloud.catalog.location(body["location"])["name"] != location:
            raise errors.invalid_input("location", f"the server is in {location}")
        self.unique_name(project, body["name"])
        volume = self.new(project, name=body["name"], size=size, server=None, status="creating", format=fmt,
                          protection={"delete": False}, labels=labels, _location=location)
        self.store.put(self.kind, volume)
        action = self.cloud.start_action(project, "create_volume", [(self.kind, volume["id"])], effect_name="volume_available",
                                         machine="create_volume")
        next_actions = []
        if server:
            volume["server"] = server["id"]
            next_actions.append(self.cloud.start_action(project, "attach_volume", [(self.kind, volume["id"]), ("server", server["id"])],
                                                        after=action["id"], machine="attach_volume",
                                                        args={"server": server["id"], "automount": automount}))
        return Outcome(volume, action=action, next_actions=next_actions)

    def attach(self, project: int, oid, body: dict) -> dict:
        volume = self.get(project, oid)
        self.cloud.assert_unlocked(self.kind, volume["id"], "volume")
        server = self.cloud.servers.get_ref(project, body.get("server"), "server")
        automount = body.get("automount", False)
        if automount is not None and not isinstance(automount, bool):
            raise errors.invalid_input("automount", "must be true or false")
        self.check_attachable(volume, server["_location"])
        self.store.edit(self.kind, volume["id"])["server"] = server["id"]
        return self.cloud.start_action(project, "attach_volume", [(self.kind, volume["id"]), ("server", server["id"])],
                                       machine="attach_volume", args={"server": server["id"], "automount": bool(automount)})

    def detach(self, project: int, oid, body: dict) -> dict:
        volume = self.get(project, oid)
        self.cloud.assert_unlocked(self.kind, volume["id"], "volume")
        former = volume["server"]
        self.store.edit(self.kind, volume["id"])["server"] = None
        return self.cloud.start_action(project, "detach_volume", [(self.kind, volume["id"])],
                                       machine="detach_volume", args={"server": former})

    def resize(self, project: int, oid, body: dict) -> dict:
        volume = self.get(project, oid)
        self.cloud.assert_unlocked(self.kind, volume["id"], "volume")
        size = body.get("size")
        if not isinstance(size, int) or isinstance(size, bool) or size > MAX_SIZE:
            raise errors.invalid_input("size", f"must be a whole number of GB up to {MAX_SIZE}")
        if size <= volume["size"]:
            raise errors.invalid_input("size", f"a volume can only grow: it has {volume['size']} GB, give more")
        self.store.edit(self.kind, volume["id"])["size"] = size
        return self.cloud.start_action(project, "resize_volume", [(self.kind, volume["id"])], machine="resize_volume")

    def delete(self, project: int, oid) -> None:
        volume = self.get(project, oid)
        self.check_delete_protection(volume)
        if volume["server"]:
            raise errors.resource_in_use(f"volume '{volume['name']}' is still in use: attached to server {volume['server']}, detach it first")
        self.store.delete(self.kind, volume["id"])
        backend, vid = self.cloud.backend, volume["id"]
        self.cloud.after_commit(("delete_volume", vid), lambda: backend.delete_volume(vid))

    @staticmethod
    def spec(volume: dict) -> VolumeSpec:
        return VolumeSpec(volume["id"], volume["size"], volume["format"])

    def restore(self) -> None:
        """After a restart: every volume's storage is there again (kept files stay as they are)."""
        for future in [self.cloud.backend.create_volume(self.spec(v)) for v in list(self.store.all(self.kind))]:
            try:
                future.result()
            except Exception as exc:  # noqa: BLE001 - one broken volume must not keep the cloud down
                log.warning("volume storage could not be restored: %s", exc)


@effect("volume_available")
def _volume_available(cloud, action, args):
    volume = cloud.store.get("volume", action["resources"][0]["id"])
    if volume is not None:
        cloud.store.edit("volume", volume["id"])["status"] = "available"


@machine_effect("create_volume")
def _machine_create_volume(cloud, action, args, secret):
    volume = cloud.store.get("volume", action["resources"][0]["id"])
    return cloud.backend.create_volume(Volumes.spec(volume)) if volume else None


@machine_effect("attach_volume")
def _machine_attach_volume(cloud, action, args, secret):
    volume = cloud.store.get("volume", action["resources"][0]["id"])
    if volume is None or volume["server"] != args["server"]:
        return None
    return cloud.backend.attach_volume(args["server"], volume["id"], args.get("automount", False))


@machine_effect("detach_volume")
def _machine_detach_volume(cloud, action, args, secret):
    if not args.get("server"):
        return None
    return cloud.backend.detach_volume(args["server"], action["resources"][0]["id"])


@machine_effect("resize_volume")
def _machine_resize_volume(cloud, action, args, secret):
    volume = cloud.store.get("volume", action["resources"][0]["id"])
    return cloud.backend.resize_volume(volume["id"], volume["size"]) if volume else None
