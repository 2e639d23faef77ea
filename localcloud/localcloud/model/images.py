"""Images: the read-only system catalogue plus each project's snapshots and backups.

``GET /images`` lists both: system images come from the catalogue (shared by every project),
snapshot and backup images are rows of the project (``POST /servers/{id}/actions/create_image``,
and the backups a server with backups enabled gets). Only snapshots and backups can be updated,
protected or deleted; a backup is bound to its server (``bound_to``) and goes with it, unless it
was converted to a snapshot (``PUT {"type": "snapshot"}``).
"""
from __future__ import annotations

from .. import errors
from ..labels import parse_selector, selector_matches, validate_labels
from ..listing import paginate, parse_bool, sort_items
from .base import Outcome, ResourceModel, effect, machine_effect, public

TYPES = ("system", "app", "snapshot", "backup")
STATUSES = ("available", "creating", "unavailable")
BACKUP_SLOTS = 7            # a server with backups enabled keeps its 7 newest backups
DESCRIPTION_LIMIT = 255


class Images(ResourceModel):
    kind = "image"
    plural = "images"
    label = "Image"
    id_start = 300_000_000          # far above the catalogue's system image ids
    creatable = False               # no POST /images: images come from servers

    # --- lookup: system images first (any project), then the project's own
    def get(self, project: int, oid) -> dict:
        system = self.cloud.catalog.image(int(oid)) if str(oid).isdigit() else None
        if system is not None:
            return system
        return super().get(project, oid)

    def is_system(self, image: dict) -> bool:
        return image["type"] in ("system", "app")

    def own(self, project: int, ref) -> dict | None:
        """A snapshot or backup of the project by ID (int or numeric string), else None."""
        if isinstance(ref, bool) or not (isinstance(ref, int) or (isinstance(ref, str) and ref.isdigit())):
            return None
        image = self.store.get(self.kind, int(ref))
        return image if image is not None and image["_project"] == project else None

    def render(self, obj: dict) -> dict:
        if self.is_system(obj):
            return obj
        return public(obj)

    def rendered(self, image_id: int | None) -> dict | None:
        """The image object a server shows for the image it was created or rebuilt from."""
        if not image_id:
            return None
        system = self.cloud.catalog.image(image_id)
        if system is not None:
            return system
        own = self.store.get(self.kind, image_id)
        return self.render(own) if own is not None else None

    def os_image(self, image_id: int | None) -> dict | None:
        """The system image a server's operating system comes from (a snapshot's origin)."""
        system = self.cloud.catalog.image(image_id) if image_id else None
        if system is not None:
            return system
        own = self.store.get(self.kind, image_id) if image_id else None
        return self.cloud.catalog.image(own["_os_image"]) if own is not None else None

    # --- listing
    def list(self, project: int, query) -> tuple[list[dict], dict]:
        items = list(self.cloud.catalog.images) + self.objects(project)
        name = query.get("name")
        if name is not None:
            items = [i for i in items if i.get("name") == name]
        for key, allowed in (("type", TYPES), ("status", STATUSES)):
            wanted = query.getlist(key)
            if key == "status" and any(w.isdigit() for w in wanted):
                wanted = []        # hcloud-python (<= 2.x) sends its per_page value as status: ignore
            for value in wanted:
                if value not in allowed:
                    raise errors.invalid_input(key, f"'{value}' is not one of {', '.join(allowed)}")
            if wanted:
                items = [i for i in items if i[key] in wanted]
        architecture = query.get("architecture")
        if architecture is not None:
            if architecture not in ("x86", "arm"):
                raise errors.invalid_input("architecture", f"'{architecture}' is not x86 or arm")
            items = [i for i in items if i["architecture"] == architecture]
        bound = query.getlist("bound_to")
        if bound:
            items = [i for i in items if str(i.get("bound_to")) in bound]
        if not parse_bool(query.get("include_deprecated", "false"), "include_deprecated"):
            items = [i for i in items if not i.get("deprecated")]
        selector = query.get("label_selector")
        if selector is not None:
            requirements = parse_selector(selector)
            items = [i for i in items if selector_matches(requirements, i.get("labels") or {})]
        items = sort_items(items, query.getlist("sort"), ("id", "name", "created"))
        page, meta = paginate(items, query.get("page"), query.get("per_page"))
        return [self.render(i) for i in page], meta

    # --- create_image (called by POST /servers/{id}/actions/create_image)
    def create_from_server(self, project: int, server: dict, body: dict) -> dict:
        kind = body.get("type", "snapshot")
        if kind is None:
            kind = "snapshot"
        if kind not in ("snapshot", "backup"):
            raise errors.invalid_input("type", f"'{kind}' is not snapshot or backup")
        description = self._description(body.get("description"))
        labels = validate_labels(body.get("labels"))
        if kind == "backup" and not server.get("backup_window"):
            raise errors.specific("backup_not_enabled",
                                  f"server '{server['name']}' has no backups enabled: enable_backup first, "
                                  "or create a snapshot (type: snapshot)")
        why = self.cloud.backend.disk_images_unavailable()
        if why:
            raise errors.unsupported(why)
        image = self._new_image(project, server, kind, description, labels)
        action = self.cloud.start_action(project, "create_image", [("server", server["id"]), ("image", image["id"])],
                                         effect_name="image_created", error_effect="image_failed",
                                         machine="create_image", args={"image": image["id"]})
        if kind == "backup":
            self._drop_old_backups(project, server["id"], keep=image["id"])
        return Outcome(image, model=self, action=action)

    def _new_image(self, project: int, server: dict, kind: str, description: str | None, labels: dict) -> dict:
        os_image = self.os_image(server["_image"])
        server_type = self.cloud.catalog.server_type(server["_server_type"])
        disk = server_type["disk"] if server["_disk"] is None else server["_disk"]
        image = self.new(
            project, type=kind, status="creating", name=None,
            description=description if description is not None else
            f"{'backup' if kind == 'backup' else 'snapshot'} of {server['name']}",
            # the real API reports the compressed size of the copied data; an API-only image holds
            # the system image's files, so its size is that image's disk size
            image_size=float(os_image["disk_size"]) if os_image else None,
            disk_size=float(disk),
            created_from={"id": server["id"], "name": server["name"]},
            bound_to=server["id"] if kind == "backup" else None,
            os_flavor=os_image["os_flavor"] if os_image else "unknown",
            os_version=os_image["os_version"] if os_image else None,
            rapid_deploy=False, protection={"delete": False}, deprecated=None, deleted=None,
            labels=labels, architecture=server_type["architecture"],
            _os_image=os_image["id"] if os_image else None,
        )
        self.store.put(self.kind, image)
        return image

    def _drop_old_backups(self, project: int, server_id: int, keep: int) -> None:
        backups = sorted((i for i in self.objects(project) if i["type"] == "backup" and i["bound_to"] == server_id),
                         key=lambda i: i["id"])
        for old in backups[:-BACKUP_SLOTS]:
            if old["id"] != keep:
                self._remove(old)

    def _description(self, value) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str) or len(value) > DESCRIPTION_LIMIT:
            raise errors.invalid_input("description", f"must be a string of at most {DESCRIPTION_LIMIT} characters")
        return value

    # --- update, protection, deletion (snapshots and backups only)
    def _own_or_refuse(self, project: int, oid, what: str) -> dict:
        image = self.get(project, oid)
        if self.is_system(image):
            raise errors.unsupported(f"image {image['id']} is a {image['type']} image: only snapshot and backup "
                                     f"images can be {what}")
        return image

    def update(self, project: int, oid, body: dict) -> dict:
        image = self._own_or_refuse(project, oid, "updated")
        changes = {}
        if "description" in body and body["description"] is not None:
            changes["description"] = self._description(body["description"])
        if body.get("type") is not None:
            if body["type"] != "snapshot":
                raise errors.invalid_input("type", "an image can only be converted to a snapshot (type: snapshot)")
            changes.update(type="snapshot", bound_to=None)
        if body.get("labels") is not None:
            changes["labels"] = validate_labels(body["labels"])
        edited = self.store.edit(self.kind, image["id"])
        edited.update(changes)
        return edited

    def change_protection(self, project: int, oid, body: dict) -> dict:
        image = self._own_or_refuse(project, oid, "protected")
        if not isinstance(body.get("delete"), bool):
            raise errors.invalid_input("delete", "must be true or false")
        self.store.edit(self.kind, image["id"])["protection"]["delete"] = body["delete"]
        return self.cloud.start_action(project, "change_protection", [("image", image["id"])], duration=0)

    def delete(self, project: int, oid) -> None:
        image = self._own_or_refuse(project, oid, "deleted")
        self.check_delete_protection(image)
        self.cloud.assert_unlocked("image", image["id"], "image")
        self._remove(image)
        return None

    def _remove(self, image: dict) -> None:
        self.store.delete(self.kind, image["id"])
        # the image's disk copy goes once the delete has committed (a rolled-back request keeps it)
        self.cloud.after_commit(("image", image["id"]), lambda: self.cloud.backend.delete_image(image["id"]))

    # --- what happens to a server's images
    def forget_server(self, project: int, server_id: int) -> None:
        """A deleted server takes its backups along; snapshots survive it."""
        for image in self.objects(project):
            if image["type"] == "backup" and image["bound_to"] == server_id:
                self._remove(image)

    def drop_backups(self, project: int, server_id: int) -> None:
        """disable_backup deletes every backup of the server at once."""
        self.forget_server(project, server_id)


@effect("image_created")
def _image_created(cloud, action, args):
    image_id = next(r["id"] for r in action["resources"] if r["type"] == "image")
    if cloud.store.get("image", image_id) is not None:
        cloud.store.edit("image", image_id)["status"] = "available"


@effect("image_failed")
def _image_failed(cloud, action, args):
    image_id = next(r["id"] for r in action["resources"] if r["type"] == "image")
    if cloud.store.get("image", image_id) is not None:
        cloud.store.edit("image", image_id)["status"] = "unavailable"


@machine_effect("create_image")
def _machine_create_image(cloud, action, args, secret):
    return cloud.backend.create_image(action["resources"][0]["id"], args["image"])
