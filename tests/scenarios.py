# Copyright (c) 2026, autoscale.hetzner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The scenario inventories' stack declaration as a playbook sees it (templates resolved).

inventories/<name>/group_vars/all.yml declares `hetzner_stack` with Jinja in it (the server lists
come from a count, `numbered_servers`; the admin key and networks from variables). Tests and
benchmarks that hand the declaration to the stack module render it here with Ansible's own
loader and templar, so they see exactly what site.yml and provision.yml would send.
"""
from __future__ import annotations

import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPxVf7L/6fLNm6rfdpaJnp0rD7mA4X61GgFWQSvbD24B test@autoscale"


def scenario_vars(name: str, **overrides) -> dict:
    """group_vars/all.yml of inventories/<name>, every value templated; overrides win (like -e)."""
    from ansible.parsing.dataloader import DataLoader
    from ansible.plugins.loader import init_plugin_loader
    from ansible.template import Templar, trust_as_template

    with warnings.catch_warnings():       # already configured by the test session: keep its paths
        warnings.simplefilter("ignore")
        init_plugin_loader(collections_paths())
    loader = DataLoader()
    data = loader.load_from_file(str(ROOT / "inventories" / name / "group_vars" / "all.yml"))
    variables = {key: _trusted(value, trust_as_template) for key, value in data.items()}
    variables.update({"admin_public_key": TEST_KEY, "inventory_dir": str(ROOT / "inventories" / name)})
    variables.update(overrides)
    templar = Templar(loader=loader, variables=variables)
    return {key: templar.template(variables[key]) for key in ("hetzner_stack",) + tuple(overrides)}


def collections_paths() -> list[str]:
    """This checkout's collection first: the venv's site-packages links it (scripts/bootstrap.sh), and
    a copy installed in ~/.ansible/collections must not shadow it."""
    import ansible
    return [str(Path(ansible.__file__).resolve().parents[1])]


def _trusted(value, trust):
    """Strings of the scenario file are templates (as they are for Ansible reading group_vars)."""
    if isinstance(value, str):
        return trust(value)
    if isinstance(value, dict):
        return {k: _trusted(v, trust) for k, v in value.items()}
    if isinstance(value, list):
        return [_trusted(v, trust) for v in value]
    return value


def scenario(name: str, **overrides) -> dict:
    """The rendered hetzner_stack of inventories/<name> (a deep copy: change it freely)."""
    return scenario_vars(name, **overrides)["hetzner_stack"]
