# Copyright: (c) 2026, autoscale.hetzner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Option specs shared by the per-resource modules and the stack, and a validator that names the
full path of every offending key.

The per-resource modules and the stack declare the same nested things (firewall rules, subnets,
routes, load balancer services with health checks, targets, servers, volumes): the option dicts
live here once. They are plain Ansible argument specs, so AnsibleModule validates them; when it
refuses, :func:`argument_errors` explains *where*: Ansible's own ``ArgumentSpecValidator`` runs
level by level (its messages say ``tiers -> servers``, never which element), and this module
turns each problem into ``tiers[1].servers[0].ipp: unknown key; did you mean ip?``.
"""

from __future__ import annotations

import copy
import difflib

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.module_utils.errors import (
    ArgumentTypeError,
    ArgumentValueError,
    ElementError,
    MutuallyExclusiveError,
    RequiredError,
    UnsupportedError,
)

# --------------------------------------------------------------------------- shared option specs

LABELS = {"type": "dict"}

FIREWALL_RULE = {
    "direction": {"type": "str", "choices": ["in", "out"], "default": "in"},
    "protocol": {"type": "str", "choices": ["tcp", "udp", "icmp", "esp", "gre"], "required": True},
    "port": {"type": "str"},
    "source_ips": {"type": "list", "elements": "str"},
    "destination_ips": {"type": "list", "elements": "str"},
    "description": {"type": "str"},
}

SUBNET = {
    "ip_range": {"type": "str", "required": True},
    "network_zone": {"type": "str", "default": "eu-central"},
    "type": {"type": "str", "choices": ["cloud", "server", "vswitch"], "default": "cloud"},
    "vswitch_id": {"type": "int"},
}

ROUTE = {
    "destination": {"type": "str", "required": True},
    "gateway": {"type": "str", "required": True},
}

HEALTH_CHECK = {
    "protocol": {"type": "str", "choices": ["tcp", "http"]},
    "port": {"type": "int"},
    "interval": {"type": "int"},
    "timeout": {"type": "int"},
    "retries": {"type": "int"},
    "http": {"type": "dict", "options": {
        "domain": {"type": "str"},
        "path": {"type": "str"},
        "response": {"type": "str"},
        "status_codes": {"type": "list", "elements": "str"},
        "tls": {"type": "bool"},
    }},
}

SERVICE = {
    "protocol": {"type": "str", "choices": ["tcp", "http", "https"], "required": True},
    "listen_port": {"type": "int", "required": True},
    "destination_port": {"type": "int"},
    "proxyprotocol": {"type": "bool"},
    "http": {"type": "dict", "options": {
        "cookie_name": {"type": "str"},
        "cookie_lifetime": {"type": "int"},
        "certificates": {"type": "list", "elements": "int"},
        "redirect_http": {"type": "bool"},
        "sticky_sessions": {"type": "bool"},
        "timeout_idle": {"type": "int"},
    }},
    "health_check": {"type": "dict", "options": HEALTH_CHECK},
}

# load_balancer module targets; the stack adds `tier`
TARGET = {
    "type": {"type": "str", "choices": ["server", "label_selector"], "default": "server"},
    "server": {"type": "str"},
    "label_selector": {"type": "str"},
    "use_private_ip": {"type": "bool", "default": False},
}

SERVER_NETWORK = {
    "network": {"type": "str", "required": True},
    "ip": {"type": "str"},
    "alias_ips": {"type": "list", "elements": "str"},
}

# Settings a stack tier gives its servers, and each server may override.
SERVER_SETTINGS = {
    "server_type": {"type": "str"},
    "image": {"type": "str"},
    "location": {"type": "str"},
    "ssh_keys": {"type": "list", "elements": "str", "no_log": False},
    "firewalls": {"type": "list", "elements": "str"},
    "placement_group": {"type": "str"},
    "network": {"type": "str"},
    "enable_ipv4": {"type": "bool"},
    "enable_ipv6": {"type": "bool"},
    "backups": {"type": "bool"},
    "delete_protection": {"type": "bool"},
    "user_data": {"type": "str"},
    "state": {"type": "str", "choices": ["started", "stopped", "present"]},
    "labels": LABELS,
}

STACK_SERVER = dict(SERVER_SETTINGS, **{
    "name": {"type": "str", "required": True},
    "ip": {"type": "str"},
    "alias_ips": {"type": "list", "elements": "str"},
})

STACK_TIER = dict(SERVER_SETTINGS, **{
    "name": {"type": "str", "required": True},
    "servers": {"type": "list", "elements": "dict", "required": True, "options": STACK_SERVER},
})

STACK_TARGET = {
    "tier": {"type": "str"},
    "server": {"type": "str"},
    "label_selector": {"type": "str"},
    "use_private_ip": {"type": "bool", "default": False},
}


def _list_of(options, **extra):
    spec = {"type": "list", "elements": "dict", "options": options}
    spec.update(extra)
    return spec


# The stack's declaration: what `hetzner_stack` in group_vars holds.
STACK_DECLARATION = {
    "name": {"type": "str"},
    "location": {"type": "str"},
    "budget": {"type": "float"},
    "labels": LABELS,
    "ssh_keys": _list_of({
        "name": {"type": "str", "required": True},
        "public_key": {"type": "str", "required": True},
        "labels": LABELS,
    }, no_log=False),  # public keys are not secrets
    "networks": _list_of({
        "name": {"type": "str", "required": True},
        "ip_range": {"type": "str", "required": True},
        "subnets": _list_of(SUBNET),
        "routes": _list_of(ROUTE),
        "expose_routes_to_vswitch": {"type": "bool"},
        "delete_protection": {"type": "bool"},
        "labels": LABELS,
    }),
    "firewalls": _list_of({
        "name": {"type": "str", "required": True},
        "rules": _list_of(FIREWALL_RULE),
        "labels": LABELS,
    }),
    "placement_groups": _list_of({
        "name": {"type": "str", "required": True},
        "type": {"type": "str", "choices": ["spread"], "default": "spread"},
        "labels": LABELS,
    }),
    "tiers": _list_of(STACK_TIER),
    "volumes": _list_of({
        "name": {"type": "str", "required": True},
        "size": {"type": "int", "required": True},
        "server": {"type": "str"},
        "location": {"type": "str"},
        "format": {"type": "str", "choices": ["ext4", "xfs"]},
        "automount": {"type": "bool"},
        "delete_protection": {"type": "bool"},
        "labels": LABELS,
    }),
    "load_balancers": _list_of({
        "name": {"type": "str", "required": True},
        "load_balancer_type": {"type": "str", "required": True},
        "location": {"type": "str"},
        "network": {"type": "str"},
        "ip": {"type": "str"},
        "algorithm": {"type": "str", "choices": ["round_robin", "least_connections"]},
        "public_interface": {"type": "bool"},
        "services": _list_of(SERVICE),
        "targets": _list_of(STACK_TARGET),
        "delete_protection": {"type": "bool"},
        "labels": LABELS,
    }),
    "floating_ips": _list_of({
        "name": {"type": "str", "required": True},
        "type": {"type": "str", "choices": ["ipv4", "ipv6"], "default": "ipv4"},
        "home_location": {"type": "str"},
        "server": {"type": "str"},
        "description": {"type": "str"},
        "delete_protection": {"type": "bool"},
        "labels": LABELS,
    }),
}


def copy_spec(spec: dict) -> dict:
    """A deep copy: AnsibleModule adds to the specs it is given."""
    return copy.deepcopy(spec)


# --------------------------------------------------------------------------- path-aware validation

CONSTRAINTS = ("mutually_exclusive", "required_together", "required_one_of", "required_if", "required_by")
TYPE_NAMES = {"str": "a string", "int": "an integer", "bool": "true or false", "list": "a list", "dict": "a mapping",
              "float": "a number", "raw": "a value", "path": "a path"}


def join(path: str, key) -> str:
    if isinstance(key, int):
        return "%s[%d]" % (path, key)
    return "%s.%s" % (path, key) if path else str(key)


def _shown(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _what(value) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def suggest(word: str, candidates) -> str | None:
    """The candidate the user probably meant: a close spelling, or one that has the word as a part
    (``zone`` -> ``network_zone``)."""
    candidates = sorted(str(c) for c in candidates)
    matches = difflib.get_close_matches(str(word), candidates, n=1, cutoff=0.6)
    if matches:
        return matches[0]
    parts = [c for c in candidates if str(word) in c.split("_")]
    return parts[0] if len(parts) == 1 else None


def _level_spec(spec: dict) -> dict:
    """One level of a spec: nested `options` removed (they are checked element by element)."""
    flat = {}
    for key, option in spec.items():
        option = dict(option)
        option.pop("options", None)
        for name in CONSTRAINTS:
            option.pop(name, None)
        if option.get("elements") == "dict":
            option["elements"] = "raw"  # each element is checked (and its type named) one by one below
        flat[key] = option
    return flat


def _names(spec: dict) -> list:
    names = set(spec)
    for option in spec.values():
        names.update(option.get("aliases") or [])
    return sorted(names)


def _describe(error, path: str, spec: dict, params: dict) -> list[str]:
    """The problems of one Ansible validation error, each with its full path and the fix."""
    if isinstance(error, RequiredError):
        missing = str(error).split(":", 1)[-1]
        keys = [k.strip() for k in missing.split(",") if k.strip()]
        return ["%s: required; add it" % join(path, key) for key in keys if key in spec] or \
            ["%s: %s" % (path or "arguments", error)]
    key = _offending_key(error, spec)
    if key is not None:
        option = spec[key]
        value = params.get(key)
        where = join(path, key)
        if isinstance(error, ArgumentValueError) and option.get("choices"):
            hint = suggest(value, option["choices"]) if isinstance(value, str) else None
            return ["%s: %s is not allowed; use one of %s%s" % (
                where, _shown(value), ", ".join(str(c) for c in option["choices"]),
                "; did you mean %s?" % hint if hint else "")]
        list_elements = isinstance(error, ArgumentTypeError) and option.get("type") == "list" and isinstance(value, list)
        if isinstance(error, ElementError) or list_elements:
            return ["%s: every element must be %s; fix %s" % (
                where, TYPE_NAMES.get(option.get("elements"), option.get("elements")), _shown(value))]
        if isinstance(error, ArgumentTypeError):
            return ["%s: must be %s, got %s %s" % (
                where, TYPE_NAMES.get(option.get("type", "str"), option.get("type")), _what(value), _shown(value))]
    if isinstance(error, MutuallyExclusiveError):
        return ["%s: %s; keep only one of them" % (path or "arguments", error)]
    return ["%s: %s" % (path or "arguments", error)]


def _offending_key(error, spec: dict):
    text = str(error)
    for key in sorted(spec, key=len, reverse=True):
        for pattern in ("'%s'" % key, "value of %s " % key, "argument %s " % key):
            if pattern in text:
                return key
    return None


def argument_errors(spec: dict, params, path: str = "", constraints: dict | None = None) -> list[str]:
    """Every problem of ``params`` against ``spec`` as ``path.key: problem; fix`` (empty if valid)."""
    return validate(spec, params, path, constraints)[1]


def validate(spec: dict, params, path: str = "", constraints: dict | None = None):
    """(validated parameters with defaults, [problems]) of ``params`` against an Ansible argument spec."""
    if not isinstance(params, dict):
        return params, ["%s: must be a mapping of options, got %s %s" % (path or "arguments", _what(params),
                                                                         _shown(params))]
    constraints = constraints or {}
    validator = ArgumentSpecValidator(_level_spec(spec), **{k: constraints.get(k) for k in CONSTRAINTS})
    result = validator.validate(params)
    errors = []
    for key in sorted(str(k) for k in result.unsupported_parameters if not isinstance(k, tuple)):
        hint = suggest(key, _names(spec))
        errors.append("%s: unknown key; %s(allowed: %s)" % (
            join(path, key), "did you mean %s? " % hint if hint else "", ", ".join(_names(spec))))
    for error in result.errors:
        if isinstance(error, UnsupportedError):
            continue
        errors.extend(_describe(error, path, spec, params))
    validated = result.validated_parameters
    for key, option in spec.items():
        options = option.get("options")
        value = validated.get(key)
        if not options or value is None:
            continue
        nested = {k: option.get(k) for k in CONSTRAINTS}
        if option.get("type") == "list":
            if not isinstance(value, list):
                continue
            checked = []
            for index, element in enumerate(value):
                element_path = join(join(path, key), index)
                if not isinstance(element, dict):
                    errors.append("%s: must be a mapping with the keys %s, got %s %s" % (
                        element_path, ", ".join(_names(options)), _what(element), _shown(element)))
                    checked.append(element)
                    continue
                element_validated, element_errors = validate(options, element, element_path, nested)
                checked.append(element_validated)
                errors.extend(element_errors)
            validated[key] = checked
        elif isinstance(value, dict):
            validated[key], nested_errors = validate(options, value, join(path, key), nested)
            errors.extend(nested_errors)
    return validated, errors
