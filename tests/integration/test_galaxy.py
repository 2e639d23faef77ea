# Copyright (c) 2026, autoscale.hetzner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The collection as a Galaxy user gets it: `ansible-galaxy collection build`, then `install` of the
tarball into an empty collections path where only the dependencies galaxy.yml declares are present
(offline: there is no Galaxy server here, so they are the copies the `ansible` package bundles, put in
that path as if installed earlier), then from that path alone (no sys.path scan, so neither this
checkout nor the other bundled collections are visible):

- `ansible-doc` of every module, filter, lookup, the inventory plugin and every role (argument_specs);
- every FQCN the installed files use resolves, to this collection, ansible.builtin or a declared
  dependency, and every declared dependency is used (galaxy.yml declares exactly what is used);
- one module run from the installed copy against the local cloud.

On both toolchains: ansible-core 2.19 (.venv) and 2.21 (.venv-ansible14, with its own bundled
dependency versions), so the declared version ranges fit both.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
GALAXY = yaml.safe_load((ROOT / "galaxy.yml").read_text())
TOOLCHAINS = {"ansible-core 2.19": Path(sys.executable).parent, "ansible-core 2.21": ROOT / ".venv-ansible14" / "bin"}

# Declared for roles on branches that are not merged yet; delete an entry when its role lands (the
# "declared but unused" check then covers it). Each names who uses it.
DECLARED_FOR_PENDING_ROLES: dict[str, str] = {}

# What must never be in the artefact: the local cloud, tests, development helpers and docs.
DEV_ONLY = re.compile(r"^(localcloud|tests|scripts|\.ci|\.config|build|roles/[^/]+/molecule)(/|$)"
                      r"|^(Makefile|requirements-dev\.txt|requirements-ansible14\.txt|\.gitignore|\.yamllint"
                      r"|\.ansible-lint)$"
                      r"|^docs/(development|localcloud|machines|benchmarks|architecture)\.md$")
USER_FILES = ["MANIFEST.json", "FILES.json", "README.md", "meta/runtime.yml",
              "meta/execution-environment.yml", "requirements.txt", "plugins/inventory/hcloud.py",
              "plugins/modules/stack.py", "plugins/module_utils/pricing.py", "plugins/lookup/hcloud_token.py",
              "playbooks/provision.yml",
              "playbooks/destroy.yml", "bindep.txt", "docs/migrating.md", "docs/provisioning.md", "docs/runbook.md"]

FQCN = re.compile(r"(?<![\w.])(?:group/)?([a-z][a-z0-9_]*)\.([a-z][a-z0-9_]*)\.([a-z][a-z0-9_]*)(?![\w])")
PY_IMPORT = re.compile(r"ansible_collections\.([a-z][a-z0-9_]*)\.([a-z][a-z0-9_]*)")
DOC_FRAGMENT = re.compile(r"^\s*-\s*([a-z][a-z0-9_]*)\.([a-z][a-z0-9_]*)\.([a-z][a-z0-9_.]*)\s*$", re.M)


def run(cmd, env, cwd, check=True):
    proc = subprocess.run([str(c) for c in cmd], env=env, cwd=str(cwd), capture_output=True, text=True,
                          check=False)
    if check:
        assert proc.returncode == 0, "%s\n%s%s" % (" ".join(map(str, cmd)), proc.stdout[-3000:], proc.stderr[-3000:])
    return proc


def bundled_collections(bin_dir: Path) -> Path:
    """The ansible_collections directory of the `ansible` package in that venv."""
    out = subprocess.run([str(bin_dir / "python"), "-c",
                          "import ansible, os; print(os.path.dirname(os.path.dirname(ansible.__file__)))"],
                         capture_output=True, text=True, check=True).stdout.strip()
    return Path(out) / "ansible_collections"


def dependency_closure(bundled: Path, collections) -> set:
    """The collections and, recursively, what their MANIFEST.json says they depend on."""
    todo, seen = list(collections), set()
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            manifest = json.loads((bundled / name.replace(".", "/") / "MANIFEST.json").read_text())
            todo.extend(manifest["collection_info"].get("dependencies") or {})
    return seen


@pytest.fixture(scope="module")
def tarball(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("galaxy-build")
    env = dict(os.environ, ANSIBLE_NOCOLOR="1")
    run([Path(sys.executable).parent / "ansible-galaxy", "collection", "build", "--output-path", out, ROOT], env, ROOT)
    (path,) = out.glob("autoscale-hetzner-*.tar.gz")
    return path


def test_tarball_holds_the_collection_and_no_development_files(tarball):
    with tarfile.open(tarball) as tar:
        names = [m.name for m in tar.getmembers() if m.isfile()]
    leaked = sorted(n for n in names if DEV_ONLY.search(n))
    assert not leaked, "development-only files in the artefact: %s" % leaked[:20]
    missing = [f for f in USER_FILES if f not in names]
    assert not missing, missing
    for role in (p.name for p in (ROOT / "roles").iterdir() if p.is_dir()):
        assert "roles/%s/meta/argument_specs.yml" % role in names, role


@pytest.fixture(scope="module", params=sorted(TOOLCHAINS))
def installed(request, tarball, tmp_path_factory):
    """(bin_dir, env, path): the tarball installed into an empty path with only the declared dependencies."""
    bin_dir = TOOLCHAINS[request.param]
    if not (bin_dir / "ansible-galaxy").exists():
        if os.environ.get("CI"):
            pytest.fail("%s missing: make venv builds it" % bin_dir)
        pytest.skip("%s missing (make venv builds it)" % bin_dir)
    base = tmp_path_factory.mktemp("collections")
    bundled = bundled_collections(bin_dir)
    for dep in dependency_closure(bundled, GALAXY["dependencies"]):
        namespace, name = dep.split(".")
        (base / "ansible_collections" / namespace).mkdir(parents=True, exist_ok=True)
        (base / "ansible_collections" / namespace / name).symlink_to(bundled / namespace / name)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update({
        "ANSIBLE_COLLECTIONS_PATH": str(base),
        "ANSIBLE_COLLECTIONS_SCAN_SYS_PATH": "False",   # neither this checkout nor the bundled ones
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_LOCAL_TEMP": str(base / "tmp"),
        "PATH": "%s%s%s" % (bin_dir, os.pathsep, os.environ.get("PATH", "")),
    })
    proc = run([bin_dir / "ansible-galaxy", "collection", "install", "--offline", "-p", base, tarball], env, base)
    assert "autoscale.hetzner" in proc.stdout
    listed = run([bin_dir / "ansible-galaxy", "collection", "list", "--format", "json", "-p", base], env, base)
    names = set(json.loads(listed.stdout)[str(base / "ansible_collections")])
    assert names == {"autoscale.hetzner", *dependency_closure(bundled, GALAXY["dependencies"])}, names
    return bin_dir, env, base / "ansible_collections" / "autoscale" / "hetzner"


def test_ansible_doc_shows_every_plugin_and_role_from_the_installed_copy(installed):
    bin_dir, env, path = installed
    modules = sorted("autoscale.hetzner." + p.stem for p in (path / "plugins" / "modules").glob("*.py"))
    filters = sorted("autoscale.hetzner." + p.stem for p in (path / "plugins" / "filter").glob("*.yml"))
    lookups = sorted("autoscale.hetzner." + p.stem for p in (path / "plugins" / "lookup").glob("*.py"))
    roles = sorted("autoscale.hetzner." + p.name for p in (path / "roles").iterdir() if p.is_dir())
    assert modules and lookups and roles
    for kind, names in (("module", modules), ("filter", filters), ("lookup", lookups),
                        ("inventory", ["autoscale.hetzner.hcloud"]), ("role", roles)):
        docs = json.loads(run([bin_dir / "ansible-doc", "-t", kind, "--json"] + names, env, path.parent).stdout)
        assert sorted(docs) == names, (kind, sorted(docs))
        for name, doc in docs.items():
            if kind == "role":
                main = doc["entry_points"]["main"]
                assert main.get("short_description") and main.get("options"), name
                assert doc["path"].startswith(str(path.parent.parent)), doc["path"]
            else:
                assert doc["doc"].get("short_description"), name
                assert doc["doc"]["filename"].startswith(str(path)), doc["doc"]["filename"]


def used_collections(path: Path) -> dict:
    """{fqcn: [files]} of what the installed files use from any collection the ansible package knows."""
    known = {"%s.%s" % (ns.name, c.name) for ns in bundled_collections(TOOLCHAINS["ansible-core 2.19"]).iterdir()
             if ns.is_dir() for c in ns.iterdir() if c.is_dir()}
    known |= {"autoscale.hetzner", "ansible.builtin", "ansible.legacy"}
    used = {}
    for file in path.rglob("*"):
        if not file.is_file() or file.suffix not in (".yml", ".yaml", ".j2", ".py"):
            continue
        text = file.read_text(errors="replace")
        if file.suffix == ".py":
            # imports and documentation fragments, not prose in docstrings
            found = ["%s.%s.x" % m for m in PY_IMPORT.findall(text)] + ["%s.%s.%s" % m for m in DOC_FRAGMENT.findall(text)]
        else:
            text = "\n".join(line.split(" #")[0] for line in text.splitlines() if not line.lstrip().startswith("#"))
            found = [m.group(0) for m in FQCN.finditer(text)]
        for fqcn in found:
            collection = ".".join(fqcn.removeprefix("group/").split(".")[:2])
            if collection in known:
                used.setdefault(fqcn, set()).add(str(file.relative_to(path)))
    return used


RESOLVE = r"""
import json, sys
from ansible.plugins.loader import (init_plugin_loader, module_loader, filter_loader, test_loader, lookup_loader,
                                    inventory_loader, fragment_loader)
from ansible.utils.collection_loader._collection_finder import _get_collection_metadata, _get_collection_role_path
init_plugin_loader()


def action_group(fqcn):
    namespace, name, group = fqcn.split(".")
    return group in (_get_collection_metadata(namespace + "." + name).get("action_groups") or {})


def resolves(fqcn):
    if fqcn.startswith("group/"):
        return action_group(fqcn[len("group/"):])
    if fqcn.count(".") == 3:  # a documentation fragment's section: ns.coll.fragment.SECTION
        return fragment_loader.find_plugin_with_context(fqcn.rsplit(".", 1)[0]).resolved
    if module_loader.find_plugin_with_context(fqcn).resolved or inventory_loader.find_plugin_with_context(fqcn).resolved:
        return True
    for loader in (filter_loader, test_loader, lookup_loader):
        try:
            if loader.get(fqcn) is not None:
                return True
        except KeyError:  # the collection has no plugins of that type at all
            pass
    return _get_collection_role_path(fqcn) is not None or action_group(fqcn)


print(json.dumps({fqcn: bool(resolves(fqcn)) for fqcn in json.loads(sys.argv[1])}))
"""


def test_every_fqcn_used_resolves_to_the_collection_or_a_declared_dependency(installed):
    bin_dir, env, path = installed
    used = used_collections(path)
    collections = {".".join(f.removeprefix("group/").split(".")[:2]) for f in used}
    allowed = {"autoscale.hetzner", "ansible.builtin", "ansible.legacy", *GALAXY["dependencies"]}
    undeclared = {f: sorted(files) for f, files in used.items()
                  if ".".join(f.removeprefix("group/").split(".")[:2]) not in allowed}
    assert not undeclared, "used but not declared in galaxy.yml dependencies: %s" % undeclared
    unused = set(GALAXY["dependencies"]) - collections - set(DECLARED_FOR_PENDING_ROLES)
    assert not unused, "declared in galaxy.yml but used by nothing: %s" % sorted(unused)
    plugins = sorted(f for f in used if not f.endswith(".x") and not f.startswith(("ansible.builtin.", "ansible.legacy.")))
    resolved = json.loads(run([bin_dir / "python", "-c", RESOLVE, json.dumps(plugins)], env, path.parent).stdout)
    assert len(resolved) >= 3, resolved  # the modules and filters the roles use, at least
    missing = {f: sorted(used[f]) for f, ok in resolved.items() if not ok}
    assert not missing, "FQCNs that do not resolve in the installed collection path: %s" % missing


def test_a_module_runs_from_the_installed_copy_against_the_local_cloud(installed, localcloud, tmp_path):
    bin_dir, env, path = installed
    name = "galaxy-%s" % bin_dir.parent.name.strip(".")
    play = tmp_path / "play.yml"
    play.write_text("""
- hosts: localhost
  gather_facts: false
  vars:
    ansible_python_interpreter: "{{ ansible_playbook_python }}"
  tasks:
    - name: A network, from the installed collection
      autoscale.hetzner.network:
        name: %s
        ip_range: 10.77.0.0/16
      register: created
    - name: It was created
      ansible.builtin.assert:
        that: [created is changed, created.hcloud_network.ip_range == "10.77.0.0/16"]
""" % name)
    env = dict(env, HCLOUD_ENDPOINT=localcloud["endpoint"], HCLOUD_TOKEN=localcloud["token"])
    proc = run([bin_dir / "ansible-playbook", "-vvv", "-i", "localhost,", "-c", "local", play], env, tmp_path)
    assert str(path / "plugins" / "modules" / "network.py") in proc.stdout, proc.stdout[-2000:]
    networks = localcloud_get(localcloud, "/networks?name=" + name)["networks"]
    assert [n["ip_range"] for n in networks] == ["10.77.0.0/16"]


def localcloud_get(localcloud, path):
    import requests  # pylint: disable=import-outside-toplevel
    answer = requests.get(localcloud["endpoint"] + path, timeout=10,
                          headers={"Authorization": "Bearer " + localcloud["token"]})
    answer.raise_for_status()
    return answer.json()


def documented_ee_definition() -> str:
    """The execution-environment.yml example of docs/provisioning.md (so the documented one is tested)."""
    text = (ROOT / "docs" / "provisioning.md").read_text()
    section = text[text.index("## Execution environments"):]
    return section[section.index("```yaml\n") + len("```yaml\n"):section.index("\n```", section.index("```yaml"))]


def test_ansible_builder_create_writes_a_build_context_for_the_documented_definition(tmp_path):
    builder = Path(sys.executable).parent / "ansible-builder"
    definition = tmp_path / "execution-environment.yml"
    definition.write_text(documented_ee_definition())
    assert yaml.safe_load(definition.read_text())["version"] == 3
    run([builder, "create", "-f", definition, "--context", tmp_path / "context", "--output-filename", "Containerfile"],
        dict(os.environ), tmp_path)
    containerfile = (tmp_path / "context" / "Containerfile").read_text()
    assert 'EE_BASE_IMAGE="quay.io/centos/centos:stream9"' in containerfile
    assert "ansible-galaxy collection install" in containerfile and "introspect" in containerfile
    galaxy_requirements = yaml.safe_load((tmp_path / "context" / "_build" / "requirements.yml").read_text())
    assert {"name": "autoscale.hetzner"} in galaxy_requirements["collections"]


def test_ansible_builder_introspect_reads_the_installed_collections_requirements(installed, tmp_path):
    """What the EE build derives from meta/execution-environment.yml of the installed collection."""
    bin_dir, env, path = installed
    if bin_dir != Path(sys.executable).parent:
        pytest.skip("ansible-builder is in .venv only")
    pip, bindep = tmp_path / "pip.txt", tmp_path / "bindep.txt"
    run([bin_dir / "ansible-builder", "introspect", "--write-pip", pip, "--write-bindep", bindep,
         path.parent.parent.parent], env, tmp_path)
    ours = [line.split("#")[0].strip() for line in pip.read_text().splitlines() if "autoscale.hetzner" in line]
    wanted = [line for line in (ROOT / "requirements.txt").read_text().splitlines() if line and not line.startswith("#")]
    assert ours == wanted, pip.read_text()
    system = [line.split("#")[0].strip() for line in bindep.read_text().splitlines() if "autoscale.hetzner" in line]
    assert "openssh-client [platform:dpkg]" in system, bindep.read_text()
    # bindep itself accepts the file, and this Debian machine has what it lists
    run([bin_dir / "bindep", "-b", "-f", path / "bindep.txt"], env, tmp_path)
