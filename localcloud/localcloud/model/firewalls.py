"""Cloud Firewalls: rules on the public interface, applied to servers and label selectors."""
from __future__ import annotations

import ipaddress

from .. import errors
from ..labels import parse_selector, selector_matches, validate_labels
from .base import Outcome, ResourceModel

PROTOCOLS = ("tcp", "udp", "icmp", "esp", "gre")
MAX_FIREWALLS_PER_SERVER = 5
MAX_RULES = 50
MAX_IPS_PER_RULE = 100


def _port(value, field: str) -> str:
    if not isinstance(value, str) or not value:
        raise errors.invalid_input(field, "must be a port like '80' or a range like '1024-5000' for tcp and udp")
    if value == "any":
        return "any"
    low, sep, high = value.partition("-")
    try:
        numbers = [int(low)] + ([int(high)] if sep else [])
    except ValueError:
        raise errors.invalid_input(field, f"'{value}' is not a port or port range like '80' or '1024-5000'") from None
    if not all(1 <= n <= 65535 for n in numbers) or (sep and numbers[0] >= numbers[1]):
        raise errors.invalid_input(field, f"'{value}' is out of range: ports are 1-65535, ranges ascending")
    return value


def _cidrs(values, field: str) -> list[str]:
    if not isinstance(values, list):
        raise errors.invalid_input(field, "must be a list of CIDRs like '0.0.0.0/0' or '203.0.113.7/32'")
    if len(values) > MAX_IPS_PER_RULE:
        raise errors.invalid_input(field, f"has {len(values)} entries; a rule takes at most {MAX_IPS_PER_RULE}")
    result = []
    for value in values:
        try:
            result.append(str(ipaddress.ip_interface(value)))
        except ValueError:
            raise errors.invalid_input(field, f"'{value}' is not an IP address or CIDR range") from None
    return result


def validate_rules(rules, field: str = "rules") -> list[dict]:
    if rules is None:
        return []
    if not isinstance(rules, list):
        raise errors.invalid_input(field, "must be a list of rules")
    if len(rules) > MAX_RULES:
        raise errors.invalid_input(field, f"has {len(rules)} rules; a firewall takes at most {MAX_RULES}")
    result = []
    for index, rule in enumerate(rules):
        where = f"{field}[{index}]"
        if not isinstance(rule, dict):
            raise errors.invalid_input(where, "must be an object with direction, protocol, port and source_ips")
        direction = rule.get("direction")
        if direction not in ("in", "out"):
            raise errors.invalid_input(f"{where}.direction", "must be 'in' or 'out'")
        protocol = rule.get("protocol")
        if protocol not in PROTOCOLS:
            raise errors.invalid_input(f"{where}.protocol", f"must be one of {', '.join(PROTOCOLS)}")
        port = rule.get("port")
        if protocol in ("tcp", "udp"):
            port = _port(port, f"{where}.port")
        elif port is not None:
            raise errors.invalid_input(f"{where}.port", f"must be left out for protocol {protocol} (ports exist only for tcp and udp)")
        source_ips = _cidrs(rule.get("source_ips") or [], f"{where}.source_ips")
        destination_ips = _cidrs(rule.get("destination_ips") or [], f"{where}.destination_ips")
        if direction == "in" and not source_ips:
            raise errors.invalid_input(f"{where}.source_ips", "an inbound rule needs source_ips, e.g. ['0.0.0.0/0', '::/0']")
        if direction == "out" and not destination_ips:
            raise errors.invalid_input(f"{where}.destination_ips", "an outbound rule needs destination_ips")
        if direction == "in" and destination_ips:
            raise errors.invalid_input(f"{where}.destination_ips", "is only allowed on outbound rules")
        if direction == "out" and source_ips:
            raise errors.invalid_input(f"{where}.source_ips", "is only allowed on inbound rules")
        description = rule.get("description")
        if description is not None and (not isinstance(description, str) or len(description) > 255):
            raise errors.invalid_input(f"{where}.description", "must be a string of at most 255 characters")
        result.append({"direction": direction, "protocol": protocol, "port": port, "source_ips": source_ips,
                       "destination_ips": destination_ips, "description": description})
    return result


class Firewalls(ResourceModel):
    kind = "firewall"
    plural = "firewalls"
    label = "Firewall"
    id_start = 5000

    def __init__(self, cloud):
        super().__init__(cloud)
        self._sent: dict[int, object] = {}

    # --- membership
    def selector_servers(self, project: int, selector: str) -> list[dict]:
        requirements = parse_selector(selector)
        return [s for s in self.cloud.servers.objects(project) if selector_matches(requirements, s["labels"])]

    def servers_of(self, firewall: dict) -> set[int]:
        ids = set()
        for target in firewall["_applied_to"]:
            if target["type"] == "server":
                ids.add(target["server"]["id"])
            else:
                ids.update(s["id"] for s in self.selector_servers(firewall["_project"], target["label_selector"]["selector"]))
        return ids

    def firewalls_by_server(self, project: int) -> dict[int, list[dict]]:
        def build():
            index: dict[int, list[dict]] = {}
            for fw in self.objects(project):
                if not fw["_applied_to"]:
                    continue
                for sid in self.servers_of(fw):
                    index.setdefault(sid, []).append(fw)
            return index
        return self.cloud.memo(("firewalls_by_server", project), build)

    def firewalls_of_server(self, server: dict) -> list[dict]:
        return self.firewalls_by_server(server["_project"]).get(server["id"], [])

    def render(self, obj):
        data = super().render(obj)
        applied = []
        for target in obj["_applied_to"]:
            entry = dict(target)
            if target["type"] == "label_selector":
                entry["applied_to_resources"] = [
                    {"type": "server", "server": {"id": s["id"]}}
                    for s in self.selector_servers(obj["_project"], target["label_selector"]["selector"])
                ]
            applied.append(entry)
        data["applied_to"] = applied
        return data

    # --- validation of apply_to / remove_from
    def parse_targets(self, project: int, targets, field: str) -> list[dict]:
        if not isinstance(targets, list):
            raise errors.invalid_input(field, "must be a list of {type: server, server: {id}} or {type: label_selector, ...}")
        result = []
        for index, target in enumerate(targets):
            where = f"{field}[{index}]"
            kind = target.get("type") if isinstance(target, dict) else None
            if kind == "server":
                ref = (target.get("server") or {}).get("id") if isinstance(target.get("server"), dict) else None
                if not isinstance(ref, int) or isinstance(ref, bool):
                    raise errors.invalid_input(f"{where}.server.id", "must be a server ID")
                server = self.store.get("server", ref)
                if server is None or server["_project"] != project:
                    raise errors.specific("firewall_resource_not_found", f"server {ref} does not exist in this project")
                result.append({"type": "server", "server": {"id": ref}})
            elif kind == "label_selector":
                selector = (target.get("label_selector") or {}).get("selector") if isinstance(target.get("label_selector"), dict) else None
                parse_selector(selector if isinstance(selector, str) else "", f"{where}.label_selector.selector")
                result.append({"type": "label_selector", "label_selector": {"selector": selector}})
            else:
                raise errors.invalid_input(f"{where}.type", "must be 'server' or 'label_selector'")
        return result

    def check_servers_can_take(self, project: int, firewall_id: int | None, targets: list[dict]) -> None:
        for target in targets:
            servers = ([self.store.get("server", target["server"]["id"])] if target["type"] == "server"
                       else self.selector_servers(project, target["label_selector"]["selector"]))
            for server in servers:
                if not server["_ipv4"] and not server["_ipv6"]:
                    raise errors.specific(
                        "private_net_only_server",
                        f"server '{server['name']}' has no public interface; Cloud Firewalls only filter public "
                        "interfaces (use a host firewall for private networks)",
                    )
                count = len([fw for fw in self.firewalls_of_server(server) if fw["id"] != firewall_id])
                if count >= MAX_FIREWALLS_PER_SERVER:
                    raise errors.specific(
                        "resource_limit_exceeded",
                        f"server '{server['name']}' already has {count} firewalls; at most {MAX_FIREWALLS_PER_SERVER} apply to one server",
                        status=403, details={"limits": [{"name": "firewalls_per_server"}]},
                    )

    # --- API operations
    def _apply_actions(self, project, firewall, targets, command):
        actions = []
        for target in targets:
            servers = ([target["server"]["id"]] if target["type"] == "server"
                       else [s["id"] for s in self.selector_servers(project, target["label_selector"]["selector"])])
            for sid in servers:
                actions.append(self.cloud.start_action(project, command, [("firewall", firewall["id"]), ("server", sid)]))
            if not servers and target["type"] == "label_selector":
                actions.append(self.cloud.start_action(project, command, [("firewall", firewall["id"])]))
        self.cloud.after_commit("firewalls")
        return actions

    def create(self, project: int, body: dict) -> dict:
        self.validate_name(body.get("name"))
        labels = validate_labels(body.get("labels"))
        rules = validate_rules(body.get("rules"))
        targets = self.parse_targets(project, body.get("apply_to") or [], "apply_to")
        self.unique_name(project, body["name"])
        self.check_servers_can_take(project, None, targets)
        firewall = self.new(project, name=body["name"], labels=labels, rules=rules, _applied_to=targets)
        self.store.put(self.kind, firewall)
        actions = self._apply_actions(project, firewall, targets, "apply_firewall")
        return Outcome(firewall, actions=actions)

    def set_rules(self, project: int, oid, body: dict) -> list[dict]:
        firewall = self.get(project, oid)
        rules = validate_rules(body.get("rules"), "rules")
        self.store.edit(self.kind, firewall["id"])["rules"] = rules
        actions = [self.cloud.start_action(project, "set_firewall_rules", [("firewall", firewall["id"])])]
        actions += [self.cloud.start_action(project, "apply_firewall", [("firewall", firewall["id"]), ("server", sid)])
                    for sid in sorted(self.servers_of(firewall))]
        self.cloud.after_commit("firewalls")
        return actions

    def apply_to_resources(self, project: int, oid, body: dict) -> list[dict]:
        firewall = self.get(project, oid)
        targets = self.parse_targets(project, body.get("apply_to"), "apply_to")
        for target in targets:
            if target in firewall["_applied_to"]:
                what = (f"server {target['server']['id']}" if target["type"] == "server"
                        else f"label selector '{target['label_selector']['selector']}'")
                raise errors.specific("firewall_already_applied", f"firewall '{firewall['name']}' is already applied to {what}")
        self.check_servers_can_take(project, firewall["id"], targets)
        self.store.edit(self.kind, firewall["id"])["_applied_to"].extend(targets)
        return self._apply_actions(project, firewall, targets, "apply_firewall")

    def remove_from_resources(self, project: int, oid, body: dict) -> list[dict]:
        firewall = self.get(project, oid)
        targets = self.parse_targets(project, body.get("remove_from"), "remove_from")
        for target in targets:
            if target not in firewall["_applied_to"]:
                if target["type"] == "server" and target["server"]["id"] in self.servers_of(firewall):
                    raise errors.specific(
                        "firewall_managed_by_label_selector",
                        f"server {target['server']['id']} gets firewall '{firewall['name']}' through a label selector: "
                        "change its labels or remove the selector instead",
                    )
                raise errors.specific("firewall_resource_not_found",
                                      f"firewall '{firewall['name']}' is not applied to that resource", status=404)
        actions = self._apply_actions(project, firewall, targets, "remove_firewall")
        edited = self.store.edit(self.kind, firewall["id"])
        edited["_applied_to"] = [t for t in edited["_applied_to"] if t not in targets]
        return actions

    def delete(self, project: int, oid) -> None:
        firewall = self.get(project, oid)
        if firewall["_applied_to"]:
            raise errors.resource_in_use(
                f"firewall '{firewall['name']}' is still in use: remove it from its resources first "
                "(remove_from_resources)"
            )
        self.store.delete(self.kind, firewall["id"])
        self.cloud.after_commit("firewalls")

    def forget_server(self, server: dict) -> None:
        for firewall in self.objects(server["_project"]):
            target = {"type": "server", "server": {"id": server["id"]}}
            if target in firewall["_applied_to"]:
                self.store.edit(self.kind, firewall["id"])["_applied_to"].remove(target)
        self.cloud.after_commit("firewalls")

    # --- enforcement by the machine backend
    def effective_rules(self, server: dict) -> list[dict] | None:
        firewalls = self.firewalls_of_server(server)
        if not firewalls:
            return None
        return [rule for fw in sorted(firewalls, key=lambda f: f["id"]) for rule in fw["rules"]]

    def sync_backend(self) -> None:
        seen = set()
        with self.cloud.memo_scope():
            for server in self.store.all("server"):
                seen.add(server["id"])
                rules = self.effective_rules(server)
                if self._sent.get(server["id"], ...) != rules:
                    self._sent[server["id"]] = rules
                    self.cloud.backend.set_firewall(server["id"], rules)
        for gone in set(self._sent) - seen:
            del self._sent[gone]
