# Copyright (c) 2026, autoscale.hetzner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""tree_digest, host_input_digest: what site.yml compares to skip its configuration plays when nothing
changed since its last complete run. A digest that missed a change would leave a host unconfigured;
one that changed without a change would only cost a full run."""
from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError
from ansible.plugins.loader import init_plugin_loader

init_plugin_loader()

from ansible_collections.autoscale.hetzner.plugins.filter.converged import (  # noqa: E402  pylint: disable=wrong-import-position
    host_input_digest, stable_facts, tree_digest)

FACTS = {
    "distribution": "Debian", "distribution_major_version": "12", "distribution_version": "12.8", "kernel": "6.1.0-28-amd64",
    "memtotal_mb": 7941, "processor_vcpus": 2, "all_ipv4_addresses": ["198.18.0.5", "10.0.1.10"],
    "default_ipv4": {"address": "198.18.0.5", "interface": "eth0", "gateway": "198.18.0.1"},
    "virtualization_tech_guest": ["container", "systemd-nspawn"],
    "mounts": [{"mount": "/", "device": "/dev/sda1", "fstype": "ext4", "size_available": 1000},
               {"mount": "/mnt/HC_Volume_7000", "device": "/dev/sdb", "fstype": "ext4", "size_available": 5000}],
    # volatile: differ on every run
    "date_time": {"epoch": "1764871200"}, "uptime_seconds": 12345, "memfree_mb": 5100,
}


def tree(tmp_path, files):
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


def test_the_same_code_gives_the_same_digest_and_leftovers_do_not_count(tmp_path):
    one = tree(tmp_path / "a", {"roles/web/tasks/main.yml": "x: 1\n", "plugins/filter/f.py": "pass\n"})
    two = tree(tmp_path / "b", {"roles/web/tasks/main.yml": "x: 1\n", "plugins/filter/f.py": "pass\n",
                                "plugins/filter/__pycache__/f.cpython-311.pyc": "compiled"})
    assert tree_digest([str(one / "roles"), str(one / "plugins")]) == tree_digest([str(two / "roles"), str(two / "plugins")])


@pytest.mark.parametrize("change", [
    {"roles/web/tasks/main.yml": "x: 2\n"},                 # a task changed
    {"roles/web/templates/nginx.conf.j2": "server {}\n"},   # a file added
])
def test_any_change_to_a_role_changes_the_digest(tmp_path, change):
    before = tree_digest(str(tree(tmp_path / "a", {"roles/web/tasks/main.yml": "x: 1\n"}) / "roles"))
    after = tree_digest(str(tree(tmp_path / "b", {"roles/web/tasks/main.yml": "x: 1\n", **change}) / "roles"))
    assert before != after


def test_a_file_moved_to_another_role_changes_the_digest(tmp_path):
    one = tree(tmp_path / "a", {"roles/web/defaults/main.yml": "a: 1\n", "roles/app/defaults/main.yml": ""})
    two = tree(tmp_path / "b", {"roles/web/defaults/main.yml": "", "roles/app/defaults/main.yml": "a: 1\n"})
    assert tree_digest(str(one / "roles")) != tree_digest(str(two / "roles"))


def test_a_missing_directory_is_named(tmp_path):
    with pytest.raises(AnsibleFilterError, match="nowhere is not a directory"):
        tree_digest([str(tmp_path / "nowhere")])


def test_volatile_facts_and_the_order_of_lists_do_not_count():
    later = dict(FACTS, date_time={"epoch": "1764999999"}, uptime_seconds=99999, memfree_mb=10,
                 all_ipv4_addresses=["10.0.1.10", "198.18.0.5"], mounts=list(reversed(FACTS["mounts"]))
                 + [{"mount": "/run/user/0", "device": "tmpfs", "fstype": "tmpfs"}])
    assert host_input_digest({"web_port": 80}, FACTS) == host_input_digest({"web_port": 80}, later)


@pytest.mark.parametrize("variables, facts", [
    ({"web_port": 8080}, FACTS),                                                  # a variable changed
    ({"web_port": 80, "web_tls": True}, FACTS),                                   # a variable added
    ({"web_port": 80}, dict(FACTS, memtotal_mb=15882)),                           # a larger server type
    ({"web_port": 80}, dict(FACTS, all_ipv4_addresses=["198.18.0.5"])),           # the private network is gone
    ({"web_port": 80}, dict(FACTS, mounts=FACTS["mounts"][:1])),                  # the volume is no longer mounted
    ({"web_port": 80}, dict(FACTS, distribution_version="12.9")),                 # a point release
])
def test_a_changed_variable_or_stable_fact_changes_the_digest(variables, facts):
    assert host_input_digest({"web_port": 80}, FACTS) != host_input_digest(variables, facts)


def test_the_stable_facts_keep_what_the_roles_read():
    subset = stable_facts(FACTS)
    assert subset["mounts"] == [["/", "/dev/sda1", "ext4"], ["/mnt/HC_Volume_7000", "/dev/sdb", "ext4"]]
    assert subset["all_ipv4_addresses"] == ["10.0.1.10", "198.18.0.5"]
    assert subset["default_ipv4"] == {"address": "198.18.0.5", "interface": "eth0", "gateway": "198.18.0.1"}
    assert "date_time" not in subset and "memfree_mb" not in subset


def test_bad_input_is_named():
    with pytest.raises(AnsibleFilterError, match="dict of the host's variables"):
        host_input_digest(["web_port"], FACTS)
    with pytest.raises(AnsibleFilterError, match="ansible_facts"):
        host_input_digest({}, "facts")


def test_without_facts_only_the_variables_count():
    # site.yml keeps the variables' digest (from the start of a run) apart from the facts' (as the run leaves them).
    assert host_input_digest({"web_port": 80}) == host_input_digest({"web_port": 80})
    assert host_input_digest({"web_port": 80}) != host_input_digest({"web_port": 8080})
    assert host_input_digest({"web_port": 80}) != host_input_digest({"web_port": 80}, FACTS)
    assert host_input_digest({}, FACTS) != host_input_digest({}, dict(FACTS, memtotal_mb=15882))
