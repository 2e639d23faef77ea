# Copyright: (c) 2026, autoscale.hetzner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What site.yml compares to know that nothing changed since its last complete run (then it skips the
configuration plays): the collection's code, and each host's variables and the facts the roles read.

Documentation: tree_digest.yml and host_input_digest.yml next to this file.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping

from ansible.errors import AnsibleFilterError

# Facts the roles read that stay the same while nothing changes on the server. Left out on purpose:
# clocks, uptime, free memory and disk space, load, counters (they differ on every run).
STABLE_FACTS = (
    "architecture", "distribution", "distribution_major_version", "distribution_release", "distribution_version",
    "kernel", "memtotal_mb", "processor_count", "processor_cores", "processor_vcpus",
    "virtualization_role", "virtualization_type", "hostname", "fqdn", "domain", "python_version",
)
# Of the default route's interface: what it is, not its counters.
ROUTE_KEYS = ("address", "gateway", "interface", "netmask", "prefix")
# Only filesystems on block devices (a volume, the root disk): tmpfs and the like come and go with sessions.
REAL_DEVICE_PREFIX = "/dev/"


def tree_digest(paths):
    """sha256 over every file below the given directories (relative path and content), in a fixed order."""
    if isinstance(paths, str):
        paths = [paths]
    if not isinstance(paths, (list, tuple)) or not paths:
        raise AnsibleFilterError("tree_digest: the input must be a directory or a list of directories, got %r" % (paths,))
    digest = hashlib.sha256()
    for top in paths:
        top = os.path.realpath(os.path.expanduser(str(top)))
        if not os.path.isdir(top):
            raise AnsibleFilterError("tree_digest: %s is not a directory" % top)
        digest.update(b"dir\0" + os.path.basename(top).encode() + b"\0")
        for root, dirs, files in os.walk(top):
            # Compiled Python and editor or test leftovers are not the code.
            dirs[:] = sorted(d for d in dirs if d not in ("__pycache__", ".pytest_cache") and not d.startswith(".git"))
            for name in sorted(files):
                if name.endswith((".pyc", ".pyo", "~", ".swp")):
                    continue
                path = os.path.join(root, name)
                digest.update(os.path.relpath(path, top).encode() + b"\0")
                try:
                    with open(path, "rb") as handle:
                        digest.update(handle.read())
                except OSError as exc:
                    raise AnsibleFilterError("tree_digest: cannot read %s (%s)" % (path, exc))
                digest.update(b"\0")
    return digest.hexdigest()


def stable_facts(facts):
    """The subset of ansible_facts that host_input_digest hashes (also shown when they differ)."""
    if not isinstance(facts, Mapping):
        raise AnsibleFilterError("stable_facts: the input must be ansible_facts (a dict), got %r" % (type(facts).__name__,))
    subset = {key: facts[key] for key in STABLE_FACTS if key in facts}
    for family in ("all_ipv4_addresses", "all_ipv6_addresses"):
        subset[family] = sorted(facts.get(family) or [])
    for route in ("default_ipv4", "default_ipv6"):
        subset[route] = {key: value for key, value in (facts.get(route) or {}).items() if key in ROUTE_KEYS}
    subset["virtualization_tech_guest"] = sorted(facts.get("virtualization_tech_guest") or [])
    subset["mounts"] = sorted(
        [m.get("mount"), m.get("device"), m.get("fstype")]
        for m in facts.get("mounts") or [] if isinstance(m, Mapping) and str(m.get("device", "")).startswith(REAL_DEVICE_PREFIX))
    return subset


def _canonical(value):
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def host_input_digest(variables, facts=None):
    """sha256 of a host's variables (a dict of name: value) and, when given, its stable facts; independent of key order."""
    if not isinstance(variables, Mapping):
        raise AnsibleFilterError("host_input_digest: the input must be a dict of the host's variables, got %r" % (type(variables).__name__,))
    try:
        text = _canonical({"variables": dict(variables), "facts": None if facts is None else stable_facts(facts)})
    except (TypeError, ValueError) as exc:
        raise AnsibleFilterError("host_input_digest: the variables cannot be written as JSON (%s)" % exc)
    return hashlib.sha256(text.encode()).hexdigest()


class FilterModule:
    def filters(self):
        return {"tree_digest": tree_digest, "host_input_digest": host_input_digest, "stable_facts": stable_facts}
