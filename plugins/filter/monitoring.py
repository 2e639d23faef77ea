# Copyright: (c) 2026, autoscale.hetzner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Prometheus scrape targets from the inventory (file_sd target groups).

Documentation: prometheus_targets.yml next to this file.
"""

from __future__ import annotations

from ansible.errors import AnsibleFilterError


def _hostport(address, port):
    address = str(address)
    return "[%s]:%s" % (address, port) if ":" in address else "%s:%s" % (address, port)


def prometheus_targets(hosts, hostvars, port, port_var=None, address_var="hcloud_private_ipv4", labels=None):
    """One file_sd target group per host: its address and port, its inventory name as `instance`,
    its tier and role (the hcloud labels) as labels. Hosts without the address variable are left out
    (prometheus_target_problems names them)."""
    if not isinstance(hosts, (list, tuple)):
        raise AnsibleFilterError("prometheus_targets: the hosts must be a list of inventory names, got %s"
                                 % type(hosts).__name__)
    groups = []
    # Sorted and unique: the same file whatever order the hosts come in (a set difference, a
    # group union), so a second run changes nothing.
    for host in sorted({str(h) for h in hosts}):
        hvars = hostvars[host] if host in hostvars else {}
        address = hvars.get(address_var)
        if not address:
            continue
        host_port = hvars.get(port_var, port) if port_var else port
        target_labels = {"instance": str(host)}
        hcloud_labels = hvars.get("hcloud_labels") or {}
        for key in ("tier", "role"):
            if hcloud_labels.get(key):
                target_labels[key] = str(hcloud_labels[key])
        target_labels.update({str(k): str(v) for k, v in (labels or {}).items()})
        groups.append({"targets": [_hostport(address, host_port)], "labels": target_labels})
    return groups


def prometheus_target_problems(hosts, hostvars, where, address_var="hcloud_private_ipv4"):
    """A message per host of `where` that has no address to scrape."""
    missing = [str(h) for h in hosts or [] if not (hostvars[h] if h in hostvars else {}).get(address_var)]
    if not missing:
        return []
    return ["%s: %s ha%s no %s (no private network?); attach them to the stack's network or leave them out of %s."
            % (where, ", ".join(missing), "s" if len(missing) == 1 else "ve", address_var, where)]


class FilterModule:
    def filters(self):
        return {"prometheus_targets": prometheus_targets, "prometheus_target_problems": prometheus_target_problems}
