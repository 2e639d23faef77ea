"""Placement groups (spread): servers join via the server's add_to_placement_group action."""
from __future__ import annotations

from .. import errors
from ..labels import validate_labels
from .base import Outcome, ResourceModel

MAX_SPREAD_SERVERS = 10


class PlacementGroups(ResourceModel):
    kind = "placement_group"
    plural = "placement_groups"
    label = "Placement group"
    has_actions = False
    id_start = 3000

    def filter(self, items, query):
        types = query.getlist("type")
        return [g for g in items if g["type"] in types] if types else items

    def render(self, obj):
        data = super().render(obj)
        data["servers"] = sorted(
            s["id"] for s in self.cloud.servers.objects(obj["_project"]) if s.get("_placement_group") == obj["id"]
        )
        return data

    def create(self, project: int, body: dict) -> dict:
        self.validate_name(body.get("name"))
        if body.get("type") != "spread":
            raise errors.invalid_input("type", "must be 'spread' (the only placement group type)")
        labels = validate_labels(body.get("labels"))
        self.unique_name(project, body["name"])
        group = self.new(project, name=body["name"], type="spread", labels=labels)
        self.store.put(self.kind, group)
        return Outcome(group, action=None)

    def check_room(self, group: dict, adding: int = 1) -> None:
        members = [s for s in self.cloud.servers.objects(group["_project"]) if s.get("_placement_group") == group["id"]]
        if len(members) + adding > MAX_SPREAD_SERVERS:
            raise errors.specific(
                "placement_error",
                f"placement group '{group['name']}' already holds {len(members)} servers; a spread group takes at "
                f"most {MAX_SPREAD_SERVERS}: create a second group",
            )

    def delete(self, project: int, oid) -> None:
        group = self.get(project, oid)
        for server in self.cloud.servers.objects(project):
            if server.get("_placement_group") == group["id"]:
                self.store.edit("server", server["id"])["_placement_group"] = None
        self.store.delete(self.kind, group["id"])
