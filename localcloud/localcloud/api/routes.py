"""The URL table: every API path in one place, each mapped to one model method."""
from __future__ import annotations

from . import schemas

# resource plural -> (create schema, update schema, {action name: (model method, takes body)})
RESOURCES = {
    "ssh_keys": (schemas.CreateSSHKey, schemas.Update, {}),
    "placement_groups": (schemas.CreatePlacementGroup, schemas.Update, {}),
    "networks": (schemas.CreateNetwork, schemas.Update, {
        "add_subnet": "add_subnet", "delete_subnet": "delete_subnet", "add_route": "add_route",
        "delete_route": "delete_route", "change_ip_range": "change_ip_range", "change_protection": "change_protection",
    }),
    "firewalls": (schemas.CreateFirewall, schemas.Update, {
        "set_rules": "set_rules", "apply_to_resources": "apply_to_resources",
        "remove_from_resources": "remove_from_resources",
    }),
    "servers": (schemas.CreateServer, schemas.Update, {
        "poweron": "power", "poweroff": "power", "shutdown": "power", "reboot": "power", "reset": "power",
        "change_type": "change_type", "rebuild": "rebuild", "attach_to_network": "attach_to_network",
        "detach_from_network": "detach_from_network", "change_alias_ips": "change_alias_ips",
        "change_protection": "change_protection", "enable_backup": "enable_backup", "disable_backup": "disable_backup",
        "add_to_placement_group": "add_to_placement_group", "remove_from_placement_group": "remove_from_placement_group",
        "change_dns_ptr": "change_dns_ptr", "enable_rescue": "enable_rescue", "disable_rescue": "disable_rescue",
        "reset_password": "reset_password", "create_image": "create_image", "attach_iso": "attach_iso",
        "detach_iso": "detach_iso",
    }),
    "primary_ips": (schemas.CreatePrimaryIP, schemas.Update, {
        "assign": "assign", "unassign": "unassign", "change_dns_ptr": "change_dns_ptr",
        "change_protection": "change_protection",
    }),
    "floating_ips": (schemas.CreateFloatingIP, schemas.Update, {
        "assign": "assign", "unassign": "unassign", "change_dns_ptr": "change_dns_ptr",
        "change_protection": "change_protection",
    }),
    "volumes": (schemas.CreateVolume, schemas.Update, {
        "attach": "attach", "detach": "detach", "resize": "resize", "change_protection": "change_protection",
    }),
    "certificates": (schemas.CreateCertificate, schemas.Update, {"retry": "retry"}),
    "zones": (schemas.CreateZone, schemas.UpdateLabels, {
        "change_primary_nameservers": "change_primary_nameservers", "change_protection": "change_protection",
        "change_ttl": "change_ttl", "import_zonefile": "import_zonefile",
    }),
    "images": (None, schemas.UpdateImage, {"change_protection": "change_protection"}),
    "load_balancers": (schemas.CreateLoadBalancer, schemas.Update, {
        "add_service": "add_service", "update_service": "update_service", "delete_service": "delete_service",
        "add_target": "add_target", "remove_target": "remove_target", "attach_to_network": "attach_to_network",
        "detach_from_network": "detach_from_network", "change_algorithm": "change_algorithm",
        "change_type": "change_type", "change_protection": "change_protection", "change_dns_ptr": "change_dns_ptr",
        "enable_public_interface": "enable_public_interface", "disable_public_interface": "disable_public_interface",
    }),
}

# RRSet actions: POST /zones/{id_or_name}/rrsets/{rr_name}/{rr_type}/actions/<name> -> status
RRSET_ACTIONS = {"add_records": 201, "remove_records": 201, "set_records": 201, "change_ttl": 201,
                 "change_protection": 201, "update_records": 200}

# catalogue: plural -> (singular, Catalog attribute, Catalog lookup)
CATALOGUE = {
    "locations": ("location", "locations", "location"),
    "server_types": ("server_type", "server_types", "server_type_by_id"),
    "load_balancer_types": ("load_balancer_type", "load_balancer_types", "load_balancer_type"),
}
