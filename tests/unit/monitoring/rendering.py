# Copyright (c) 2026, autoscale.hetzner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Render a role's template as the role would (its defaults, then its vars, then the given
variables), without a host: for checks with promtool/amtool and of the generated data.

    text = render("prometheus", "autoscale.rules.yml.j2", prometheus_alert_host_down_for="10s")
"""
from __future__ import annotations

import copy
import json
from pathlib import Path

from ansible.parsing.dataloader import DataLoader
from ansible.plugins.loader import init_plugin_loader
from ansible.template import Templar, trust_as_template

init_plugin_loader()

ROOT = Path(__file__).resolve().parents[3]
ROLES = ROOT / "roles"

# A small inventory as the autoscale.hetzner.hcloud plugin makes it (groups by tier, private IPs).
INVENTORY = {
    "web-1": {"hcloud_private_ipv4": "10.0.1.10", "hcloud_labels": {"tier": "web"}},
    "web-2": {"hcloud_private_ipv4": "10.0.1.11", "hcloud_labels": {"tier": "web"}},
    "app-1": {"hcloud_private_ipv4": "10.0.1.20", "hcloud_labels": {"tier": "app"}},
    "db-1": {"hcloud_private_ipv4": "10.0.1.30", "hcloud_labels": {"tier": "db", "role": "primary"}},
    "db-2": {"hcloud_private_ipv4": "10.0.1.31", "hcloud_labels": {"tier": "db", "role": "standby"}},
    "mon-1": {"hcloud_private_ipv4": "10.0.1.40", "hcloud_labels": {"tier": "monitoring"}},
}


def groups_of(inventory: dict) -> dict:
    groups: dict[str, list[str]] = {"all": list(inventory), "hcloud": list(inventory)}
    for host, hvars in inventory.items():
        groups.setdefault(hvars["hcloud_labels"]["tier"], []).append(host)
    return groups


def role_vars(role: str, host: str = "mon-1", inventory: dict | None = None, **extra) -> dict:
    loader = DataLoader()
    inventory = copy.deepcopy(inventory or INVENTORY)
    variables: dict = {}
    for path in (ROLES / role / "defaults" / "main.yml", ROLES / role / "vars" / "main.yml"):
        if path.exists():
            variables.update(loader.load_from_file(str(path), trusted_as_template=True) or {})
    variables.update(inventory[host])
    variables.update({"inventory_hostname": host, "hostvars": inventory, "groups": groups_of(inventory),
                      "ansible_managed": "Ansible managed", "role_path": str(ROLES / role)})
    variables.update(extra)
    return variables


def render(role: str, template: str, host: str = "mon-1", inventory: dict | None = None, **extra) -> str:
    """The template rendered with the role's variables (trim_blocks, as the template module does)."""
    variables = role_vars(role, host, inventory, **extra)
    templar = Templar(loader=DataLoader(), variables=variables)
    text = (ROLES / role / "templates" / template).read_text()
    return templar.template(trust_as_template(text), escape_backslashes=False)


def value(role: str, expression: str, host: str = "mon-1", inventory: dict | None = None, **extra):
    """A Jinja expression evaluated with the role's variables (e.g. "__prometheus_targets.node")."""
    templar = Templar(loader=DataLoader(), variables=role_vars(role, host, inventory, **extra))
    return json.loads(templar.template(trust_as_template("{{ (%s) | to_json }}" % expression)))
