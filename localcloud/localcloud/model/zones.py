"""DNS zones and their RRSets, as the Cloud API serves them since 2025 (API only: nothing answers
DNS queries). Record values are checked with dnspython, the way a nameserver would parse them;
zone files are read and written in BIND format.
"""
from __future__ import annotations

import ipaddress
import re
import time

import dns.exception
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.zone

from .. import errors
from ..labels import parse_selector, selector_matches, validate_labels
from ..listing import paginate, sort_items
from .base import Outcome, ResourceModel

NAMESERVERS = ["hydrogen.ns.hetzner.com.", "oxygen.ns.hetzner.com.", "helium.ns.hetzner.de."]
RR_TYPES = ("A", "AAAA", "CAA", "CNAME", "DS", "HINFO", "HTTPS", "MX", "NS", "PTR", "RP", "SOA", "SRV", "SVCB",
            "TLSA", "TXT")
ZONE_NAME_RE = re.compile(r"^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9-]{2,63}$")
RR_NAME_RE = re.compile(r"^(@|(\*|[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)*)$")
TTL_MIN, TTL_MAX = 60, 2_147_483_647


def _ttl(value, field: str, nullable: bool = False):
    if value is None and nullable:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not TTL_MIN <= value <= TTL_MAX:
        raise errors.invalid_input(field, f"must be a whole number of seconds from {TTL_MIN} to {TTL_MAX}")
    return value


class Zones(ResourceModel):
    kind = "zone"
    plural = "zones"
    label = "Zone"
    id_start = 7000
    delete_status = 201          # DELETE /zones/{id_or_name} answers with an action

    # --- lookup by ID or name (every zone path takes either)
    def get(self, project: int, oid) -> dict:
        if isinstance(oid, str) and not oid.isdigit():
            zone = self.by_name(project, oid.lower().rstrip("."))
            if zone is None:
                raise errors.not_found(self.label, oid)
            return zone
        return super().get(project, oid)

    def filter(self, items, query):
        mode = query.get("mode")
        if mode is not None:
            if mode not in ("primary", "secondary"):
                raise errors.invalid_input("mode", f"'{mode}' is not primary or secondary")
            items = [z for z in items if z["mode"] == mode]
        return items

    def render(self, obj: dict) -> dict:
        data = super().render(obj)
        data["record_count"] = sum(len(rr["records"]) for rr in obj["_rrsets"].values())
        data["primary_nameservers"] = obj["primary_nameservers"] or []   # [] for primary zones, as clients expect
        return data

    # --- creation
    def create(self, project: int, body: dict) -> dict:
        name = body.get("name")
        if not isinstance(name, str) or not ZONE_NAME_RE.match(name) or len(name) > 255:
            raise errors.invalid_input("name", f"'{name}' is not a zone name: a lower-case domain like example.com "
                                               "(no trailing dot, punycode for IDNs)")
        mode = body.get("mode")
        if mode not in ("primary", "secondary"):
            raise errors.invalid_input("mode", "must be primary or secondary")
        labels = validate_labels(body.get("labels"))
        ttl = _ttl(body.get("ttl", 3600), "ttl")
        nameservers = None
        if mode == "secondary":
            nameservers = self._primary_nameservers(body.get("primary_nameservers"))
            for key in ("rrsets", "zonefile"):
                if body.get(key):
                    raise errors.specific("incorrect_zone_mode", f"a secondary zone takes its records from its "
                                                                 f"primary nameservers: leave out {key}")
        elif body.get("primary_nameservers"):
            raise errors.invalid_input("primary_nameservers", "only secondary zones have primary nameservers")
        if body.get("rrsets") and body.get("zonefile"):
            raise errors.invalid_input("zonefile", "give rrsets or a zonefile, not both")
        other = self.by_name(project, name)
        if other is not None:
            raise errors.uniqueness("name", f"zone {name} already exists (zone {other['id']})")
        zone = self.new(project, name=name, mode=mode, ttl=ttl, labels=labels, protection={"delete": False},
                        status="ok", registrar="unknown",
                        authoritative_nameservers={"assigned": list(NAMESERVERS), "delegated": [],
                                                   "delegation_last_check": None, "delegation_status": "unknown"},
                        primary_nameservers=nameservers, _rrsets={}, _serial=int(time.strftime("%Y%m%d")) * 100)
        if mode == "primary":
            self._defaults(zone)
            if body.get("zonefile"):
                self._import(zone, body["zonefile"], "zonefile")
            for index, given in enumerate(body.get("rrsets") or []):
                self._put_rrset(zone, self._parse_rrset(zone, given, f"rrsets[{index}]"), f"rrsets[{index}]")
        self.store.put(self.kind, zone)
        action = self.cloud.start_action(project, "create_zone", [(self.kind, zone["id"])])
        return Outcome(zone, action=action)

    def _primary_nameservers(self, value) -> list[dict]:
        if not isinstance(value, list) or not value:
            raise errors.invalid_input("primary_nameservers", "a secondary zone needs at least one primary nameserver")
        result = []
        for index, entry in enumerate(value):
            field = f"primary_nameservers[{index}]"
            if not isinstance(entry, dict) or not isinstance(entry.get("address"), str):
                raise errors.invalid_input(f"{field}.address", "is required: the IP address of the primary nameserver")
            try:
                ipaddress.ip_address(entry["address"])
            except ValueError:
                raise errors.invalid_input(f"{field}.address", f"'{entry['address']}' is not an IP address") from None
            port = entry.get("port", 53)
            if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
                raise errors.invalid_input(f"{field}.port", "must be a port from 1 to 65535")
            ns = {"address": entry["address"], "port": port}
            if entry.get("tsig_algorithm") is not None or entry.get("tsig_key") is not None:
                if entry.get("tsig_algorithm") not in ("hmac-md5", "hmac-sha1", "hmac-sha256"):
                    raise errors.invalid_input(f"{field}.tsig_algorithm", "must be hmac-md5, hmac-sha1 or hmac-sha256")
                if not isinstance(entry.get("tsig_key"), str) or not entry["tsig_key"]:
                    raise errors.invalid_input(f"{field}.tsig_key", "is required with a tsig_algorithm")
                ns.update(tsig_algorithm=entry["tsig_algorithm"], tsig_key=entry["tsig_key"])
            result.append(ns)
        return result

    def _defaults(self, zone: dict) -> None:
        """The SOA and the three NS records every new primary zone gets."""
        soa = f"{NAMESERVERS[0]} dns.hetzner.com. {zone['_serial']} 86400 10800 3600000 3600"
        self._store_rrset(zone, "@", "SOA", None, [{"value": soa, "comment": ""}], {})
        self._store_rrset(zone, "@", "NS", None, [{"value": ns, "comment": ""} for ns in NAMESERVERS], {})

    def update(self, project: int, oid, body: dict) -> dict:
        """Only labels change: a zone's name is its identity, records change through RRSet actions."""
        zone = self.get(project, oid)
        if body.get("labels") is not None:
            self.store.edit(self.kind, zone["id"])["labels"] = validate_labels(body["labels"])
        return self.store.get(self.kind, zone["id"])

    # --- zone actions
    def _zone_for_action(self, project: int, oid, primary_only: bool = True) -> dict:
        zone = self.get(project, oid)
        self.cloud.assert_unlocked(self.kind, zone["id"], "zone")
        if primary_only and zone["mode"] != "primary":
            raise errors.specific("incorrect_zone_mode", f"zone {zone['name']} is a secondary zone: this operation "
                                                         "is only for primary zones")
        return zone

    def _act(self, project: int, zone: dict, command: str, duration: float | None = None) -> dict:
        return self.cloud.start_action(project, command, [(self.kind, zone["id"])], duration=duration)

    def _rr_act(self, project: int, zone: dict, command: str, duration: float | None = None) -> dict:
        """RRSet actions do not lock their zone: clients (hetzner.hcloud zone_rrset) start change_ttl
        and set_records together and then wait for both."""
        return self.cloud.start_action(project, command, [(self.kind, zone["id"])], duration=duration,
                                       effect_name="nothing")

    def _primary(self, project: int, oid) -> dict:
        zone = self.get(project, oid)
        if zone["mode"] != "primary":
            raise errors.specific("incorrect_zone_mode", f"zone {zone['name']} is a secondary zone: this operation "
                                                         "is only for primary zones")
        return zone

    def change_ttl(self, project: int, oid, body: dict) -> dict:
        zone = self._zone_for_action(project, oid)
        self.store.edit(self.kind, zone["id"])["ttl"] = _ttl(body.get("ttl"), "ttl")
        return self._act(project, zone, "change_zone_ttl")

    def change_protection(self, project: int, oid, body: dict) -> dict:
        zone = self.get(project, oid)
        if not isinstance(body.get("delete"), bool):
            raise errors.invalid_input("delete", "must be true or false")
        self.store.edit(self.kind, zone["id"])["protection"]["delete"] = body["delete"]
        return self._act(project, zone, "change_zone_protection", duration=0)

    def change_primary_nameservers(self, project: int, oid, body: dict) -> dict:
        zone = self.get(project, oid)
        if zone["mode"] != "secondary":
            raise errors.specific("incorrect_zone_mode", f"zone {zone['name']} is a primary zone: only secondary "
                                                         "zones have primary nameservers")
        self.store.edit(self.kind, zone["id"])["primary_nameservers"] = self._primary_nameservers(
            body.get("primary_nameservers"))
        return self._act(project, zone, "change_zone_primary_nameservers")

    def import_zonefile(self, project: int, oid, body: dict) -> dict:
        zone = self._zone_for_action(project, oid)
        protected = [rid for rid, rr in zone["_rrsets"].items() if rr["protection"]["change"]]
        if protected:
            raise errors.protected("rrset", protected[0], "replace the records of")
        edited = self.store.edit(self.kind, zone["id"])
        edited["_rrsets"] = {}
        self._import(edited, body.get("zonefile"), "zonefile")
        return self._act(project, zone, "import_zonefile")

    def _import(self, zone: dict, text, field: str) -> None:
        if not isinstance(text, str) or not text.strip():
            raise errors.invalid_input(field, "must be a zone file in BIND format")
        try:
            parsed = dns.zone.from_text(text, origin=zone["name"] + ".", relativize=True, check_origin=False)
        except (dns.exception.DNSException, ValueError) as err:
            raise errors.invalid_input(field, f"is not a valid zone file for {zone['name']}: {err}") from None
        soa_kept = zone["_rrsets"].get("@/SOA")
        zone["_rrsets"] = {}
        for name, node in parsed.nodes.items():
            rr_name = name.to_text()
            for rdataset in node.rdatasets:
                rr_type = dns.rdatatype.to_text(rdataset.rdtype)
                if rr_type not in RR_TYPES:
                    raise errors.invalid_input(field, f"record type {rr_type} of {rr_name} is not supported")
                records = [{"value": rdata.to_text(), "comment": ""} for rdata in rdataset]
                self._store_rrset(zone, rr_name, rr_type, rdataset.ttl, records, {})
        if "@/SOA" not in zone["_rrsets"]:
            if soa_kept:
                zone["_rrsets"]["@/SOA"] = soa_kept
            else:
                self._defaults(zone)
        if "@/NS" not in zone["_rrsets"]:
            self._store_rrset(zone, "@", "NS", None, [{"value": ns, "comment": ""} for ns in NAMESERVERS], {})

    def zonefile(self, project: int, oid) -> dict:
        zone = self.get(project, oid)
        if zone["mode"] != "primary":
            raise errors.specific("incorrect_zone_mode", f"zone {zone['name']} is a secondary zone: no zone file")
        lines = [f"$ORIGIN {zone['name']}.", f"$TTL {zone['ttl']}", ""]
        for rr in sorted(zone["_rrsets"].values(), key=lambda r: (r["name"] != "@", r["name"], r["type"] != "SOA", r["type"])):
            ttl = "" if rr["ttl"] is None else f"{rr['ttl']} "
            for record in rr["records"]:
                comment = f" ; {record['comment']}" if record.get("comment") else ""
                lines.append(f"{rr['name']}\t{ttl}IN\t{rr['type']}\t{record['value']}{comment}")
        return {"zonefile": "\n".join(lines) + "\n"}

    def delete(self, project: int, oid) -> dict:
        zone = self.get(project, oid)
        self.check_delete_protection(zone)
        self.cloud.assert_unlocked(self.kind, zone["id"], "zone")
        self.store.delete(self.kind, zone["id"])
        return self.cloud.start_action(project, "delete_zone", [(self.kind, zone["id"])])

    # --- RRSets
    def _parse_records(self, zone: dict, rr_type: str, value, field: str) -> list[dict]:
        if not isinstance(value, list):
            raise errors.invalid_input(field, "must be a list of records ({\"value\": ..., \"comment\": ...})")
        records = []
        for index, record in enumerate(value):
            where = f"{field}[{index}]"
            if not isinstance(record, dict) or not isinstance(record.get("value"), str) or not record["value"].strip():
                raise errors.invalid_input(f"{where}.value", "is required: the record's data, e.g. 203.0.113.10 for A")
            comment = record.get("comment", "")
            if comment is None:
                comment = ""
            if not isinstance(comment, str) or len(comment) > 255:
                raise errors.invalid_input(f"{where}.comment", "must be a string of at most 255 characters")
            try:
                dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.from_text(rr_type), record["value"],
                                    origin=dns.name.from_text(zone["name"]))
            except (dns.exception.DNSException, ValueError) as err:
                raise errors.invalid_input(f"{where}.value", f"'{record['value']}' is not valid {rr_type} record "
                                                             f"data: {err}") from None
            if any(r["value"] == record["value"] for r in records):
                raise errors.invalid_input(f"{where}.value", f"'{record['value']}' is given twice")
            records.append({"value": record["value"], "comment": comment})
        return records

    @staticmethod
    def _rr_key(name, rr_type, name_field="name", type_field="type") -> tuple[str, str]:
        if not isinstance(name, str) or not RR_NAME_RE.match(name):
            raise errors.invalid_input(name_field, f"'{name}' is not a record name relative to the zone "
                                                   "('@' for the zone itself, 'www', '*.dev', ...)")
        if rr_type not in RR_TYPES:
            raise errors.invalid_input(type_field, f"'{rr_type}' is not one of {', '.join(RR_TYPES)}")
        return name, rr_type

    def _parse_rrset(self, zone: dict, body: dict, field: str = "") -> dict:
        def name(key):
            return f"{field}.{key}" if field else key
        if not isinstance(body, dict):
            raise errors.invalid_input(field or "body", "must be an object")
        rr_name, rr_type = self._rr_key(body.get("name"), body.get("type"), name("name"), name("type"))
        if rr_type == "SOA":
            raise errors.invalid_input(name("type"), "the SOA record set is managed by the zone: change its TTL "
                                                     "with change_ttl")
        records = self._parse_records(zone, rr_type, body.get("records"), name("records"))
        if not records:
            raise errors.invalid_input(name("records"), "needs at least one record")
        return {"name": rr_name, "type": rr_type, "ttl": _ttl(body.get("ttl"), name("ttl"), nullable=True),
                "records": records, "labels": validate_labels(body.get("labels"), name("labels"))}

    def _put_rrset(self, zone: dict, parsed: dict, field: str = "") -> dict:
        key = f"{parsed['name']}/{parsed['type']}"
        if key in zone["_rrsets"]:
            raise errors.uniqueness(f"{field}.name" if field else "name",
                                    f"the record set {key} already exists in zone {zone['name']}")
        self._check_cname(zone, parsed["name"], parsed["type"], field)
        return self._store_rrset(zone, parsed["name"], parsed["type"], parsed["ttl"], parsed["records"],
                                 parsed["labels"])

    @staticmethod
    def _check_cname(zone: dict, rr_name: str, rr_type: str, field: str = "") -> None:
        others = [rr["type"] for rr in zone["_rrsets"].values() if rr["name"] == rr_name and rr["type"] != rr_type]
        if (rr_type == "CNAME" and others) or (others and "CNAME" in others):
            raise errors.invalid_input(f"{field}.type" if field else "type",
                                       f"{rr_name} cannot have a CNAME and other records ({', '.join(others + [rr_type])})")
        if rr_type == "CNAME" and rr_name == "@":
            raise errors.invalid_input(f"{field}.name" if field else "name", "the zone apex (@) cannot be a CNAME")

    @staticmethod
    def _store_rrset(zone, rr_name, rr_type, ttl, records, labels) -> dict:
        rrset = {"id": f"{rr_name}/{rr_type}", "name": rr_name, "type": rr_type, "ttl": ttl, "labels": labels,
                 "protection": {"change": False}, "records": records, "zone": zone["id"]}
        zone["_rrsets"][rrset["id"]] = rrset
        return rrset

    def _rrset(self, project: int, oid, rr_name: str, rr_type: str):
        zone = self._primary(project, oid)
        rrset = zone["_rrsets"].get(f"{rr_name}/{rr_type}")
        if rrset is None:
            raise errors.not_found("RRSet", f"{rr_name}/{rr_type}")
        return zone, rrset

    def _editable(self, project, oid, rr_name, rr_type):
        zone, rrset = self._rrset(project, oid, rr_name, rr_type)
        if rrset["protection"]["change"]:
            raise errors.protected("rrset", rrset["id"], "change")
        edited = self.store.edit(self.kind, zone["id"])
        return edited, edited["_rrsets"][rrset["id"]]

    def list_rrsets(self, project: int, oid, query) -> dict:
        zone = self._primary(project, oid)
        items = list(zone["_rrsets"].values())
        if query.get("name") is not None:
            items = [rr for rr in items if rr["name"] == query["name"]]
        types = query.getlist("type")
        for rr_type in types:
            if rr_type not in RR_TYPES:
                raise errors.invalid_input("type", f"'{rr_type}' is not one of {', '.join(RR_TYPES)}")
        if types:
            items = [rr for rr in items if rr["type"] in types]
        if query.get("label_selector") is not None:
            requirements = parse_selector(query["label_selector"])
            items = [rr for rr in items if selector_matches(requirements, rr["labels"])]
        sorts = [s.replace("created", "id") for s in query.getlist("sort")]
        items = sort_items(items, sorts, ("id", "name"))
        page, meta = paginate(items, query.get("page"), query.get("per_page"), max_per_page=100)
        return {"rrsets": page, "meta": meta}

    def get_rrset(self, project: int, oid, rr_name: str, rr_type: str) -> dict:
        return {"rrset": self._rrset(project, oid, rr_name, rr_type)[1]}

    def create_rrset(self, project: int, oid, body: dict) -> dict:
        zone = self._primary(project, oid)
        parsed = self._parse_rrset(zone, body)
        rrset = self._put_rrset(self.store.edit(self.kind, zone["id"]), parsed)
        action = self._rr_act(project, zone, "create_rrset")
        return {"rrset": rrset, "action": self.cloud.action_json(action)}

    def update_rrset(self, project: int, oid, rr_name: str, rr_type: str, body: dict) -> dict:
        zone, rrset = self._rrset(project, oid, rr_name, rr_type)
        edited = self.store.edit(self.kind, zone["id"])["_rrsets"][rrset["id"]]
        if body.get("labels") is not None:
            edited["labels"] = validate_labels(body["labels"])
        return {"rrset": edited}

    def delete_rrset(self, project: int, oid, rr_name: str, rr_type: str) -> dict:
        if rr_type == "SOA" or (rr_name == "@" and rr_type == "NS"):
            raise errors.invalid_input("type", f"the zone's own {rr_type} record set cannot be deleted")
        zone, rrset = self._editable(project, oid, rr_name, rr_type)
        del zone["_rrsets"][rrset["id"]]
        action = self._rr_act(project, zone, "delete_rrset")
        return {"action": self.cloud.action_json(action)}

    def rrset_action(self, project: int, oid, rr_name: str, rr_type: str, name: str, body: dict) -> dict:
        if name == "change_protection":
            zone, rrset = self._rrset(project, oid, rr_name, rr_type)
            if not isinstance(body.get("change"), bool):
                raise errors.invalid_input("change", "must be true or false")
            self.store.edit(self.kind, zone["id"])["_rrsets"][rrset["id"]]["protection"]["change"] = body["change"]
            return {"action": self.cloud.action_json(self._rr_act(project, zone, "change_rrset_protection", duration=0))}
        if name == "add_records":
            zone = self._primary(project, oid)
            self._rr_key(rr_name, rr_type)
            records = self._parse_records(zone, rr_type, body.get("records"), "records")
            ttl = _ttl(body.get("ttl"), "ttl", nullable=True)
            edited = self.store.edit(self.kind, zone["id"])
            current = edited["_rrsets"].get(f"{rr_name}/{rr_type}")
            if current is None:
                if rr_type == "SOA":
                    raise errors.invalid_input("type", "the SOA record set is managed by the zone")
                self._check_cname(edited, rr_name, rr_type)
                self._store_rrset(edited, rr_name, rr_type, ttl, records, {})
            else:
                if current["protection"]["change"]:
                    raise errors.protected("rrset", current["id"], "change")
                known = {r["value"] for r in current["records"]}
                current["records"] += [r for r in records if r["value"] not in known]
                if ttl is not None:
                    current["ttl"] = ttl
            return {"action": self.cloud.action_json(self._rr_act(project, zone, "add_rrset_records"))}
        zone, rrset = self._editable(project, oid, rr_name, rr_type)
        if name == "change_ttl":
            if "ttl" not in body:
                raise errors.invalid_input("ttl", "is required (null: the zone's default TTL)")
            rrset["ttl"] = _ttl(body.get("ttl"), "ttl", nullable=True)
            command = "change_rrset_ttl"
        elif name == "set_records":
            records = self._parse_records(zone, rr_type, body.get("records"), "records")
            if not records:
                raise errors.invalid_input("records", "needs at least one record: delete the record set instead")
            rrset["records"] = records
            command = "set_rrset_records"
        elif name == "remove_records":
            records = self._parse_records(zone, rr_type, body.get("records"), "records")
            values = {r["value"] for r in records}
            missing = sorted(values - {r["value"] for r in rrset["records"]})
            if missing:
                raise errors.invalid_input("records", f"{', '.join(missing)} is not a record of {rrset['id']}")
            rrset["records"] = [r for r in rrset["records"] if r["value"] not in values]
            if not rrset["records"]:
                del zone["_rrsets"][rrset["id"]]
            command = "remove_rrset_records"
        elif name == "update_records":
            records = self._parse_records(zone, rr_type, body.get("records"), "records")
            by_value = {r["value"]: r for r in rrset["records"]}
            for index, record in enumerate(records):
                if record["value"] not in by_value:
                    raise errors.invalid_input(f"records[{index}].value",
                                               f"{record['value']} is not a record of {rrset['id']}")
                by_value[record["value"]]["comment"] = record["comment"]
            command = "update_rrset_records"
        else:
            raise errors.route_not_found()
        return {"action": self.cloud.action_json(self._rr_act(project, zone, command))}
