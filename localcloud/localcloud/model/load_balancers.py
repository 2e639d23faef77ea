"""Load balancers: services with health checks, targets by server or label selector, networks."""
from __future__ import annotations

import copy
import ipaddress

from .. import errors
from ..backends.base import LBService, LBTarget, LoadBalancerSpec
from ..labels import parse_selector, selector_matches, validate_labels
from .base import Outcome, ResourceModel, machine_effect
from .primary_ips import IPV6_BASE, PUBLIC_V4, PublicAddresses, reverse_dns

ALGORITHMS = ("round_robin", "least_connections")


def _int(value, field, low, high):
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise errors.invalid_input(field, f"must be a whole number from {low} to {high}")
    return value


def validate_service(body: dict, field: str = "", existing: dict | None = None) -> dict:
    def name(key):
        return f"{field}.{key}" if field else key
    if not isinstance(body, dict):
        raise errors.invalid_input(field or "service", "must be an object")
    merged = copy.deepcopy(existing) if existing else {}
    protocol = body.get("protocol", merged.get("protocol"))
    if protocol not in ("tcp", "http", "https"):
        raise errors.invalid_input(name("protocol"), "must be tcp, http or https")
    default_port = {"http": 80, "https": 443}.get(protocol)
    listen = body.get("listen_port", merged.get("listen_port", default_port))
    if listen is None:
        raise errors.invalid_input(name("listen_port"), "is required for tcp services")
    listen = _int(listen, name("listen_port"), 1, 65535)
    destination = _int(body.get("destination_port", merged.get("destination_port", listen if protocol == "tcp" else 80)),
                       name("destination_port"), 1, 65535)
    proxyprotocol = body.get("proxyprotocol", merged.get("proxyprotocol", False))
    if not isinstance(proxyprotocol, bool):
        raise errors.invalid_input(name("proxyprotocol"), "must be true or false")
    http = None
    if protocol in ("http", "https"):
        given = body.get("http") or {}
        old = merged.get("http") or {}
        http = {
            "cookie_name": given.get("cookie_name", old.get("cookie_name", "HCLBSTICKY")),
            "cookie_lifetime": _int(given.get("cookie_lifetime", old.get("cookie_lifetime", 300)), name("http.cookie_lifetime"), 1, 2**31),
            "certificates": given.get("certificates", old.get("certificates", [])),
            "redirect_http": bool(given.get("redirect_http", old.get("redirect_http", False))),
            "sticky_sessions": bool(given.get("sticky_sessions", old.get("sticky_sessions", False))),
            "timeout_idle": _int(given.get("timeout_idle", old.get("timeout_idle", 50)), name("http.timeout_idle"), 30, 300),
        }
        if protocol == "https" and not http["certificates"]:
            raise errors.invalid_input(name("http.certificates"), "an https service needs at least one certificate")
    given_hc = body.get("health_check") or {}
    old_hc = merged.get("health_check") or {}
    hc_protocol = given_hc.get("protocol", old_hc.get("protocol", "http" if protocol != "tcp" else "tcp"))
    if hc_protocol not in ("tcp", "http", "https"):
        raise errors.invalid_input(name("health_check.protocol"), "must be tcp, http or https")
    health_check = {
        "protocol": hc_protocol,
        "port": _int(given_hc.get("port", old_hc.get("port", destination)), name("health_check.port"), 1, 65535),
        "interval": _int(given_hc.get("interval", old_hc.get("interval", 15)), name("health_check.interval"), 3, 60),
        "timeout": _int(given_hc.get("timeout", old_hc.get("timeout", 10)), name("health_check.timeout"), 1, 60),
        "retries": _int(given_hc.get("retries", old_hc.get("retries", 3)), name("health_check.retries"), 0, 5),
    }
    if health_check["timeout"] > health_check["interval"]:
        raise errors.invalid_input(name("health_check.timeout"), "must not be longer than the interval")
    if hc_protocol != "tcp":
        given_http = given_hc.get("http") or {}
        old_http = old_hc.get("http") or {}
        path = given_http.get("path", old_http.get("path", "/"))
        if not isinstance(path, str) or not path.startswith("/"):
            raise errors.invalid_input(name("health_check.http.path"), "must start with '/'")
        health_check["http"] = {
            "domain": given_http.get("domain", old_http.get("domain")),
            "path": path,
            "response": given_http.get("response", old_http.get("response", "")),
            "status_codes": given_http.get("status_codes", old_http.get("status_codes", ["2??", "3??"])),
            "tls": bool(given_http.get("tls", old_http.get("tls", False))),
        }
    else:
        health_check["http"] = None
    return {"protocol": protocol, "listen_port": listen, "destination_port": destination,
            "proxyprotocol": proxyprotocol, "http": http, "health_check": health_check}


class LoadBalancers(ResourceModel):
    kind = "load_balancer"
    plural = "load_balancers"
    label = "Load balancer"
    id_start = 9000

    def __init__(self, cloud):
        super().__init__(cloud)
        self._sent: dict[int, LoadBalancerSpec] = {}       # what the backend carries out now, per id

    def selector_servers(self, project, selector):
        requirements = parse_selector(selector)
        return [s for s in self.cloud.servers.objects(project) if selector_matches(requirements, s["labels"])]

    def target_server_ids(self, lb: dict) -> set[int]:
        ids = set()
        for target in lb["_targets"]:
            if target["type"] == "server":
                ids.add(target["server"]["id"])
            elif target["type"] == "label_selector":
                ids.update(s["id"] for s in self.selector_servers(lb["_project"], target["label_selector"]["selector"]))
        return ids

    def render(self, obj):
        data = super().render(obj)
        data["location"] = self.cloud.catalog.location(obj["_location"])
        data["load_balancer_type"] = self.cloud.catalog.load_balancer_type(obj["_type"])
        checked = self.cloud.backend.load_balancer_health(obj["id"])

        def health(key):
            # from the backend's real checks; a backend without a data path reports every target healthy
            return [{"listen_port": s["listen_port"],
                     "status": "healthy" if checked is None else checked.get(s["listen_port"], {}).get(key, "unknown")}
                    for s in obj["services"]]
        targets = []
        for target in obj["_targets"]:
            entry = copy.deepcopy(target)
            if target["type"] == "server":
                entry["health_status"] = health(f"server:{target['server']['id']}")
            elif target["type"] == "label_selector":
                entry["targets"] = [
                    {"type": "server", "server": {"id": s["id"]}, "use_private_ip": target["use_private_ip"],
                     "health_status": health(f"server:{s['id']}")}
                    for s in self.selector_servers(obj["_project"], target["label_selector"]["selector"])]
            else:
                entry["health_status"] = health(f"ip:{target['ip']['ip']}")
            targets.append(entry)
        data["targets"] = targets
        return data

    # --- the data path: what the backend carries out for a load balancer
    def backend_spec(self, lb: dict) -> LoadBalancerSpec:
        networks = {p["network"]: p["ip"] for p in lb["private_net"]}
        targets: dict[str, LBTarget] = {}

        def add_server(server, use_private_ip):
            if use_private_ip:
                ip = next((p["ip"] for p in server["private_net"] if p["network"] in networks), None)
            else:
                ip = self.cloud.servers.address(server["_ipv4"], "ipv4")
                ip = ip["ip"] if ip else None
            key = f"server:{server['id']}"
            if ip and key not in targets:
                targets[key] = LBTarget(key, ip)
        for target in lb["_targets"]:
            if target["type"] == "server":
                server = self.store.get("server", target["server"]["id"])
                if server is not None:
                    add_server(server, target["use_private_ip"])
            elif target["type"] == "label_selector":
                for server in self.selector_servers(lb["_project"], target["label_selector"]["selector"]):
                    add_server(server, target["use_private_ip"])
            elif target["type"] == "ip":
                targets.setdefault(f"ip:{target['ip']['ip']}", LBTarget(f"ip:{target['ip']['ip']}", target["ip"]["ip"]))
        services = tuple(
            LBService(protocol=s["protocol"], listen_port=s["listen_port"], destination_port=s["destination_port"],
                      proxyprotocol=s["proxyprotocol"], health_check=copy.deepcopy(s["health_check"]),
                      http=copy.deepcopy(s["http"]), certificates=self._pem_pairs(s))
            for s in lb["services"])
        attachments = tuple(self.cloud.networks.attachment(self.store.get("network", nid), ip)
                            for nid, ip in networks.items() if self.store.get("network", nid))
        lb_type = self.cloud.catalog.load_balancer_type(lb["_type"])
        return LoadBalancerSpec(
            lb_id=lb["id"], public_ipv4=lb["public_net"]["ipv4"]["ip"] if lb["public_net"]["enabled"] else None,
            networks=attachments, algorithm=lb["algorithm"]["type"], services=services,
            targets=tuple(targets[k] for k in sorted(targets)), max_connections=lb_type["max_connections"])

    def _pem_pairs(self, service: dict) -> tuple[tuple[str, str], ...]:
        """(certificate chain, private key) of each certificate an https service names that is issued."""
        if service["protocol"] != "https":
            return ()
        pairs = []
        for ref in (service["http"] or {}).get("certificates") or []:
            cert = self.store.get("certificate", ref) if isinstance(ref, int) else None
            if cert and cert.get("certificate") and cert.get("_private_key"):
                pairs.append((cert["certificate"], cert["_private_key"]))
        return tuple(pairs)

    def sync(self, lb_id: int):
        """Hand the backend what this load balancer is now, if that changed; the future of that."""
        lb = self.store.get(self.kind, lb_id)
        if lb is None:
            if self._sent.pop(lb_id, None) is None:
                return None
            return self.cloud.backend.delete_load_balancer(lb_id)
        spec = self.backend_spec(lb)
        if self._sent.get(lb_id) == spec:
            return None
        self._sent[lb_id] = spec
        return self.cloud.backend.set_load_balancer(spec)

    def sync_backend(self) -> None:
        """After a commit that may change what a load balancer carries (its own settings, a server's
        labels, addresses or networks): every load balancer follows."""
        with self.cloud.memo_scope():
            for lb_id in sorted({lb["id"] for lb in self.store.all(self.kind)} | set(self._sent)):
                self.sync(lb_id)

    def parse_target(self, project, lb_networks: list[int], body: dict, field: str = "") -> dict:
        def name(key):
            return f"{field}.{key}" if field else key
        if not isinstance(body, dict):
            raise errors.invalid_input(field or "target", "must be an object")
        kind = body.get("type")
        use_private = body.get("use_private_ip", False)
        if not isinstance(use_private, bool):
            raise errors.invalid_input(name("use_private_ip"), "must be true or false")
        if kind == "server":
            ref = (body.get("server") or {}).get("id") if isinstance(body.get("server"), dict) else None
            server = self.cloud.servers.get_ref(project, ref, name("server.id"))
            if use_private:
                if not lb_networks:
                    raise errors.specific("load_balancer_not_attached_to_network",
                                          "use_private_ip needs the load balancer in a network: attach it first")
                if not any(p["network"] in lb_networks for p in server["private_net"]):
                    raise errors.specific("server_not_attached_to_network",
                                          f"server '{server['name']}' is not in the load balancer's network")
            return {"type": "server", "server": {"id": server["id"]}, "use_private_ip": use_private}
        if kind == "label_selector":
            selector = (body.get("label_selector") or {}).get("selector") if isinstance(body.get("label_selector"), dict) else None
            parse_selector(selector if isinstance(selector, str) else "", name("label_selector.selector"))
            if use_private and not lb_networks:
                raise errors.specific("load_balancer_not_attached_to_network",
                                      "use_private_ip needs the load balancer in a network: attach it first")
            return {"type": "label_selector", "label_selector": {"selector": selector}, "use_private_ip": use_private}
        if kind == "ip":
            return self._ip_target(body, name)
        raise errors.invalid_input(name("type"), "must be server, label_selector or ip")

    def _ip_target(self, body: dict, name) -> dict:
        """IP targets are dedicated (Robot) servers of the same customer: an address of a cloud resource is
        refused (cloud_resource_ip_not_allowed), any other is not the project's (ip_not_owned): the local
        cloud has no dedicated servers."""
        ip = (body.get("ip") or {}).get("ip") if isinstance(body.get("ip"), dict) else None
        try:
            address = ipaddress.ip_address(ip) if isinstance(ip, str) else None
        except ValueError:
            address = None
        if address is None:
            raise errors.invalid_input(name("ip.ip"), f"'{ip}' is not an IP address")
        if any(address in net for net in (PUBLIC_V4, IPV6_BASE) if net.version == address.version):
            raise errors.specific("cloud_resource_ip_not_allowed",
                                  f"{ip} belongs to a Hetzner Cloud resource: target the server itself (type server)")
        raise errors.specific("ip_not_owned", f"{ip} is not an IP of a dedicated server of this account")

    def _check_certificates(self, project: int, service: dict, field: str, lb_type: dict) -> dict:
        self.cloud.certificates.check_service(project, service, field, lb_type["max_assigned_certificates"])
        return service

    def create(self, project: int, body: dict) -> dict:
        catalog = self.cloud.catalog
        self.validate_name(body.get("name"))
        lb_type = catalog.load_balancer_type(body.get("load_balancer_type"))
        if lb_type is None:
            raise errors.invalid_input("load_balancer_type", f"load balancer type '{body.get('load_balancer_type')}' does not exist; use lb11, lb21 or lb31")
        labels = validate_labels(body.get("labels"))
        if body.get("location") is not None:
            location = catalog.location(body["location"])
            if location is None:
                raise errors.invalid_input("location", f"location '{body['location']}' does not exist")
        elif body.get("network_zone") is not None:
            location = next((l for l in catalog.locations if l["network_zone"] == body["network_zone"]), None)
            if location is None:
                raise errors.invalid_input("network_zone", f"network zone '{body['network_zone']}' does not exist")
        else:
            raise errors.invalid_fields({"location": ["give a location or a network_zone"],
                                         "network_zone": ["give a network_zone or a location"]})
        algorithm = (body.get("algorithm") or {}).get("type", "round_robin")
        if algorithm not in ALGORITHMS:
            raise errors.invalid_input("algorithm.type", "must be round_robin or least_connections")
        network, private_net = None, []
        if body.get("network") is not None:
            network = self.cloud.networks.resolve(project, body["network"], "network")
            zone = self.cloud.networks.zone_of(network)
            if zone not in (location["network_zone"], None):
                raise errors.invalid_input("network", f"network '{network['name']}' is in zone {zone}, the load balancer in {location['network_zone']}")
            private_net = [{"network": network["id"], "ip": self.cloud.networks.allocate_ip(network, location["network_zone"], field="network")}]
        services = []
        for index, service in enumerate(body.get("services") or []):
            parsed = self._check_certificates(project, validate_service(service, f"services[{index}]"),
                                              f"services[{index}]", lb_type)
            if any(s["listen_port"] == parsed["listen_port"] for s in services):
                raise errors.specific("source_port_already_used", f"two services listen on port {parsed['listen_port']}")
            services.append(parsed)
        if len(services) > lb_type["max_services"]:
            raise errors.invalid_input("services", f"{lb_type['name']} takes at most {lb_type['max_services']} services")
        targets = [self.parse_target(project, [p["network"] for p in private_net], t, f"targets[{i}]")
                   for i, t in enumerate(body.get("targets") or [])]
        public_interface = body.get("public_interface", True)
        if not public_interface and not private_net:
            raise errors.invalid_input("public_interface", "a load balancer without public interface needs a network")
        self.unique_name(project, body["name"])
        allocator = PublicAddresses(self.cloud)
        lb = self.new(project, name=body["name"], labels=labels, _location=location["name"], _type=lb_type["id"],
                      algorithm={"type": algorithm}, services=services, _targets=targets, private_net=private_net,
                      protection={"delete": False}, included_traffic=21990232555520, ingoing_traffic=0, outgoing_traffic=0,
                      public_net={"enabled": public_interface, "ipv4": {"ip": None, "dns_ptr": None},
                                  "ipv6": {"ip": None, "dns_ptr": None}})
        v4 = allocator.allocate("ipv4")
        lb["public_net"]["ipv4"] = {"ip": v4, "dns_ptr": reverse_dns(v4)}
        self.store.put(self.kind, lb)
        v6 = PublicAddresses(self.cloud).allocate("ipv6").split("/")[0] + "1"
        lb["public_net"]["ipv6"] = {"ip": v6, "dns_ptr": None}
        action = self.cloud.start_action(project, "create_load_balancer", [(self.kind, lb["id"])], machine="load_balancer")
        return Outcome(lb, action=action)

    def _lb(self, project, oid):
        lb = self.get(project, oid)
        self.cloud.assert_unlocked(self.kind, lb["id"], "load balancer")
        return lb

    def _act(self, project, lb, command, *extra):
        return self.cloud.start_action(project, command, [(self.kind, lb["id"]), *extra], machine="load_balancer")

    def add_service(self, project, oid, body):
        lb = self._lb(project, oid)
        lb_type = self.cloud.catalog.load_balancer_type(lb["_type"])
        service = self._check_certificates(project, validate_service(body), "", lb_type)
        if any(s["listen_port"] == service["listen_port"] for s in lb["services"]):
            raise errors.specific("source_port_already_used", f"a service already listens on port {service['listen_port']}")
        lb_type = self.cloud.catalog.load_balancer_type(lb["_type"])
        if len(lb["services"]) >= lb_type["max_services"]:
            raise errors.specific("resource_limit_exceeded", f"{lb_type['name']} takes at most {lb_type['max_services']} services", 403)
        self.store.edit(self.kind, lb["id"])["services"].append(service)
        return self._act(project, lb, "add_service")

    def update_service(self, project, oid, body):
        lb = self._lb(project, oid)
        current = next((s for s in lb["services"] if s["listen_port"] == body.get("listen_port")), None)
        if current is None:
            raise errors.invalid_input("listen_port", f"no service listens on port {body.get('listen_port')}")
        updated = self._check_certificates(project, validate_service(body, existing=current), "",
                                           self.cloud.catalog.load_balancer_type(lb["_type"]))
        edited = self.store.edit(self.kind, lb["id"])
        edited["services"] = [updated if s["listen_port"] == current["listen_port"] else s for s in edited["services"]]
        return self._act(project, lb, "update_service")

    def delete_service(self, project, oid, body):
        lb = self._lb(project, oid)
        if not any(s["listen_port"] == body.get("listen_port") for s in lb["services"]):
            raise errors.invalid_input("listen_port", f"no service listens on port {body.get('listen_port')}")
        edited = self.store.edit(self.kind, lb["id"])
        edited["services"] = [s for s in edited["services"] if s["listen_port"] != body["listen_port"]]
        return self._act(project, lb, "delete_service")

    def add_target(self, project, oid, body):
        lb = self._lb(project, oid)
        target = self.parse_target(project, [p["network"] for p in lb["private_net"]], body)
        if any({k: v for k, v in t.items() if k != "use_private_ip"} == {k: v for k, v in target.items() if k != "use_private_ip"}
               for t in lb["_targets"]):
            raise errors.specific("target_already_defined", "the load balancer already has this target")
        lb_type = self.cloud.catalog.load_balancer_type(lb["_type"])
        if len(lb["_targets"]) >= lb_type["max_targets"]:
            raise errors.specific("resource_limit_exceeded", f"{lb_type['name']} takes at most {lb_type['max_targets']} targets", 403)
        self.store.edit(self.kind, lb["id"])["_targets"].append(target)
        return self._act(project, lb, "add_target")

    def remove_target(self, project, oid, body):
        lb = self._lb(project, oid)
        wanted = self.parse_target(project, [p["network"] for p in lb["private_net"]], {**body, "use_private_ip": False}) \
            if body.get("type") != "server" or isinstance(body.get("server"), dict) else None
        strip = lambda t: {k: v for k, v in t.items() if k != "use_private_ip"}
        if wanted is None or not any(strip(t) == strip(wanted) for t in lb["_targets"]):
            raise errors.invalid_input("type", "the load balancer has no such target")
        edited = self.store.edit(self.kind, lb["id"])
        edited["_targets"] = [t for t in edited["_targets"] if strip(t) != strip(wanted)]
        return self._act(project, lb, "remove_target")

    def attach_to_network(self, project, oid, body):
        lb = self._lb(project, oid)
        network = self.cloud.networks.resolve(project, body.get("network"), "network") if isinstance(body.get("network"), int) \
            else self.cloud.servers._bad("network", "must be a network ID")
        if any(p["network"] == network["id"] for p in lb["private_net"]):
            raise errors.specific("load_balancer_already_attached", f"the load balancer is already in network '{network['name']}'")
        zone = self.cloud.catalog.location(lb["_location"])["network_zone"]
        ip = self.cloud.networks.allocate_ip(network, zone, ip=body.get("ip"), ip_range=body.get("ip_range"))
        self.store.edit(self.kind, lb["id"])["private_net"].append({"network": network["id"], "ip": ip})
        return self._act(project, lb, "attach_to_network", ("network", network["id"]))

    def detach_from_network(self, project, oid, body):
        lb = self._lb(project, oid)
        ref = body.get("network")
        if not any(p["network"] == ref for p in lb["private_net"]):
            raise errors.specific("load_balancer_not_attached_to_network", f"the load balancer is not in network {ref}")
        if not lb["public_net"]["enabled"] and len(lb["private_net"]) == 1:
            raise errors.invalid_input("network", "the public interface is disabled: this is the load balancer's only interface")
        edited = self.store.edit(self.kind, lb["id"])
        edited["private_net"] = [p for p in edited["private_net"] if p["network"] != ref]
        return self._act(project, lb, "detach_from_network", ("network", ref))

    def change_algorithm(self, project, oid, body):
        lb = self._lb(project, oid)
        if body.get("type") not in ALGORITHMS:
            raise errors.invalid_input("type", "must be round_robin or least_connections")
        self.store.edit(self.kind, lb["id"])["algorithm"] = {"type": body["type"]}
        return self._act(project, lb, "change_algorithm")

    def change_type(self, project, oid, body):
        lb = self._lb(project, oid)
        lb_type = self.cloud.catalog.load_balancer_type(body.get("load_balancer_type"))
        if lb_type is None:
            raise errors.invalid_input("load_balancer_type", "must be lb11, lb21 or lb31")
        if len(lb["_targets"]) > lb_type["max_targets"] or len(lb["services"]) > lb_type["max_services"]:
            raise errors.specific("invalid_load_balancer_type", f"{lb_type['name']} is too small for the load balancer's services and targets")
        self.store.edit(self.kind, lb["id"])["_type"] = lb_type["id"]
        return self._act(project, lb, "change_load_balancer_type")

    def change_dns_ptr(self, project, oid, body):
        lb = self._lb(project, oid)
        edited = self.store.edit(self.kind, lb["id"])
        for version in ("ipv4", "ipv6"):
            if edited["public_net"][version]["ip"] == body.get("ip"):
                edited["public_net"][version]["dns_ptr"] = body.get("dns_ptr")
                return self._act(project, lb, "change_dns_ptr")
        raise errors.invalid_input("ip", f"{body.get('ip')} is not a public IP of the load balancer")

    def enable_public_interface(self, project, oid, body):
        lb = self._lb(project, oid)
        self.store.edit(self.kind, lb["id"])["public_net"]["enabled"] = True
        return self._act(project, lb, "enable_public_interface")

    def disable_public_interface(self, project, oid, body):
        lb = self._lb(project, oid)
        if not lb["private_net"]:
            raise errors.invalid_input("public_interface", "attach the load balancer to a network first")
        if any(not t["use_private_ip"] for t in lb["_targets"]):
            raise errors.specific("targets_without_use_private_ip", "every target must use its private IP first")
        self.store.edit(self.kind, lb["id"])["public_net"]["enabled"] = False
        return self._act(project, lb, "disable_public_interface")

    def forget_server(self, server: dict) -> None:
        for lb in self.objects(server["_project"]):
            target = next((t for t in lb["_targets"] if t["type"] == "server" and t["server"]["id"] == server["id"]), None)
            if target:
                self.store.edit(self.kind, lb["id"])["_targets"].remove(target)

    def delete(self, project: int, oid) -> None:
        lb = self.get(project, oid)
        self.check_delete_protection(lb)
        self.store.delete(self.kind, lb["id"])
        self.cloud.after_commit("load_balancers")


@machine_effect("load_balancer")
def _machine_load_balancer(cloud, action, args, secret):
    return cloud.load_balancers.sync(action["resources"][0]["id"])
