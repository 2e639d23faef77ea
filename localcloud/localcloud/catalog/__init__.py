"""The local cloud's catalogue: locations, server types, images, load balancer types, ISOs, pricing.

The data lives in the JSON files next to this module, each one exactly in the shape the
Hetzner Cloud API returns. ``CATALOG`` loads them once. Returned dicts are shared: callers
that mutate one must deep-copy it first.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone
from importlib import resources
from typing import Any

__all__ = ["Catalog", "CATALOG"]


def _load(name: str) -> Any:
    return json.loads(resources.files(__package__).joinpath(name).read_text(encoding="utf-8"))


def _parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


_INDEXES: dict[int, tuple[list, int, dict, dict]] = {}


def _index(items: list[dict]) -> tuple[dict, dict]:
    """{id: item} and {name: first item of that name} of a catalogue list (rebuilt if the list
    object or its length changes, e.g. in tests)."""
    cached = _INDEXES.get(id(items))
    if cached is None or cached[0] is not items or cached[1] != len(items):
        by_name: dict = {}
        for item in items:
            by_name.setdefault(item.get("name"), item)
        cached = _INDEXES[id(items)] = (items, len(items), {item["id"]: item for item in items}, by_name)
    return cached[2], cached[3]


def _find(items: list[dict], ref: Any) -> dict | None:
    """Look an item up by int id, numeric string id, or name."""
    if ref is None or isinstance(ref, bool):
        return None
    by_id, by_name = _index(items)
    if isinstance(ref, int):
        return by_id.get(ref)
    ref = str(ref)
    if ref.isdigit():
        return by_id.get(int(ref))
    return by_name.get(ref)


_LEGACY_DATACENTERS = {"nbg1": (2, "dc3"), "hel1": (3, "dc2"), "fsn1": (4, "dc14"), "ash": (5, "dc1"),
                       "hil": (6, "dc1"), "sin": (7, "dc1")}


class Catalog:
    locations: list[dict]
    server_types: list[dict]
    images: list[dict]
    load_balancer_types: list[dict]
    isos: list[dict]

    def __init__(self) -> None:
        self.locations = _load("locations.json")
        self.server_types = _load("server_types.json")
        # Types past their removal date: list endpoints no longer return them, but
        # GET /server_types/{id} still answers with their deprecation data (spec: deprecation_info).
        self.removed_server_types = _load("removed_server_types.json")
        self.isos = _load("isos.json")
        self.images = _load("images.json")
        self.load_balancer_types = _load("load_balancer_types.json")
        base = _load("pricing.json")
        self._pricing = {
            **base,
            "server_types": [
                {"id": t["id"], "name": t["name"], "prices": t["prices"]} for t in self.server_types
            ],
            "load_balancer_types": [
                {"id": t["id"], "name": t["name"], "prices": t["prices"]}
                for t in self.load_balancer_types
            ],
        }

    def location(self, ref: Any) -> dict | None:
        return _find(self.locations, ref)

    def server_type(self, ref: Any) -> dict | None:
        return _find(self.server_types, ref)

    def server_type_by_id(self, ref: Any) -> dict | None:
        """GET /server_types/{id}: listed types and removed ones alike."""
        return _find(self.server_types, ref) or _find(self.removed_server_types, ref)

    def iso(self, ref: Any) -> dict | None:
        return _find(self.isos, ref)

    def image(self, ref: Any, architecture: str | None = None) -> dict | None:
        """By id (architecture ignored) or by name; a name picks the ``architecture``
        variant (default x86)."""
        if ref is None or isinstance(ref, bool):
            return None
        if isinstance(ref, int) or str(ref).isdigit():
            return _find(self.images, int(ref))
        arch = architecture or "x86"
        return next(
            (i for i in self.images if i["name"] == ref and i["architecture"] == arch), None
        )

    def load_balancer_type(self, ref: Any) -> dict | None:
        return _find(self.load_balancer_types, ref)

    def legacy_datacenter(self, location_ref: Any) -> dict | None:
        """The datacenter object servers and primary IPs carried until 2026-07-01 (one per
        location, ids as the clients' tests knew them), for clients that still read it."""
        location = self.location(location_ref)
        if location is None:
            return None
        dc_id, suffix = _LEGACY_DATACENTERS.get(location["name"], (100 + location["id"], "dc1"))
        offered = [t["id"] for t in self.server_types if any(e["name"] == location["name"] for e in t["locations"])]
        available = [t["id"] for t in self.server_types if self.orderable(t, location["name"]) is None]
        return {
            "id": dc_id,
            "name": f"{location['name']}-{suffix}",
            "description": f"{location['description']} ({suffix.upper()})",
            "location": location,
            "server_types": {"supported": offered, "available": available, "available_for_migration": available},
        }

    def location_of_datacenter(self, ref: Any) -> dict | None:
        """The location a (deprecated) ``datacenter`` request field names: a datacenter id
        (int or numeric string) or a name like ``fsn1-dc14`` (its location prefix decides)."""
        if ref is None or isinstance(ref, bool) or not isinstance(ref, (int, str)):
            return None
        if isinstance(ref, int) or ref.isdigit():
            found = next((dc for dc in self.legacy_datacenters if dc["id"] == int(ref)), None)
            return found["location"] if found else None
        return self.location(ref.split("-")[0])

    @property
    def legacy_datacenters(self) -> list[dict]:
        """Every datacenter of the removed GET /datacenters (one per location), by id."""
        return sorted((self.legacy_datacenter(loc["id"]) for loc in self.locations), key=lambda dc: dc["id"])

    def pricing(self) -> dict:
        """The object under the ``pricing`` key of ``GET /pricing``."""
        return self._pricing

    def orderable(
        self, server_type: dict, location_name: str, now: datetime | None = None
    ) -> str | None:
        """None if a new server of this type can be created in the location, else the reason:
        ``"not offered"`` (type not in that location), ``"deprecated"`` (deprecation's
        ``unavailable_after`` has passed) or ``"unavailable"`` (``available`` is false)."""
        entry = next((l for l in server_type["locations"] if l["name"] == location_name), None)
        if entry is None:
            return "not offered"
        dep = entry.get("deprecation")
        if dep is not None:
            if _parse_time(dep["unavailable_after"]) <= (now or datetime.now(timezone.utc)):
                return "deprecated"
        if entry.get("available") is False:
            return "unavailable"
        return None


CATALOG = Catalog()
