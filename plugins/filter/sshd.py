# Copyright: (c) 2026, autoscale.hetzner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""sshd's login access rules (AllowUsers, DenyUsers, AllowGroups, DenyGroups), for lock-out checks.

Documentation: sshd_login_refusal.yml next to this file.
"""

from __future__ import annotations

import fnmatch
import ipaddress

from ansible.errors import AnsibleFilterError


def _glob(value, pattern):
    # sshd's match_pattern knows only * and ?; escape [ so fnmatch does not read it as a class
    return fnmatch.fnmatchcase(value, pattern.replace("[", "[[]"))


def _host_matches(source, pattern):
    """The HOST part of USER@HOST: an address glob or a CIDR (sshd's match_host_and_ip)."""
    if not source:
        return False
    if "/" in pattern:
        try:
            return ipaddress.ip_address(source) in ipaddress.ip_network(pattern, strict=False)
        except ValueError:
            return False
    return _glob(source, pattern)


def _user_matches(user, source, pattern):
    name, sep, host = pattern.partition("@")
    if not _glob(user, name):
        return False
    return not sep or _host_matches(source, host)


def _as_list(values, name):
    if values is None:
        return []
    if isinstance(values, str):
        return values.split()
    if isinstance(values, (list, tuple)):
        return [str(v) for v in values]
    raise AnsibleFilterError("sshd_login_refusal: %s must be a list" % name)


def sshd_login_refusal(user, groups=None, source="", allow_users=None, allow_groups=None,
                       deny_users=None, deny_groups=None):
    """Why sshd would refuse USER (member of GROUPS) connecting from SOURCE, or "" if it would not.

    The order is sshd's (auth.c allowed_user): DenyUsers, AllowUsers, DenyGroups, AllowGroups.
    """
    groups = _as_list(groups, "groups")
    allow_users, deny_users = _as_list(allow_users, "allow_users"), _as_list(deny_users, "deny_users")
    allow_groups, deny_groups = _as_list(allow_groups, "allow_groups"), _as_list(deny_groups, "deny_groups")
    source = str(source or "")

    denied = [p for p in deny_users if _user_matches(user, source, p)]
    if denied:
        return "DenyUsers %s matches %s" % (" ".join(denied), user)
    if allow_users and not any(_user_matches(user, source, p) for p in allow_users):
        return "AllowUsers %s does not match %s%s" % (" ".join(allow_users), user, " from " + source if source else "")
    denied = [p for p in deny_groups if any(_glob(g, p) for g in groups)]
    if denied:
        return "DenyGroups %s matches a group of %s (%s)" % (" ".join(denied), user, " ".join(groups))
    if allow_groups and not any(_glob(g, p) for g in groups for p in allow_groups):
        return "AllowGroups %s matches none of the groups of %s (%s)" % (" ".join(allow_groups), user, " ".join(groups))
    return ""


class FilterModule:
    def filters(self):
        return {"sshd_login_refusal": sshd_login_refusal}
