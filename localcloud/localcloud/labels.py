"""Labels (validation) and label selectors (parsing, matching), as the API defines them."""
from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import invalid_input

_NAME = r"[a-zA-Z0-9]([a-zA-Z0-9._-]{0,61}[a-zA-Z0-9])?"
_PREFIX = r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*"
KEY_RE = re.compile(rf"^(({_PREFIX})/)?{_NAME}$")
VALUE_RE = re.compile(r"^(|[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9._-]{0,61}[a-zA-Z0-9])$")
RESERVED_PREFIX = "hetzner.cloud/"


def validate_labels(labels, field: str = "labels") -> dict[str, str]:
    if labels is None:
        return {}
    if not isinstance(labels, dict):
        raise invalid_input(field, "must be an object of string keys and string values")
    for key, value in labels.items():
        if not isinstance(value, str):
            raise invalid_input(field, f"value of label '{key}' must be a string")
        prefix = key.split("/", 1)[0] if "/" in key else ""
        if len(key) > 63 + (len(prefix) + 1 if prefix else 0) or len(prefix) > 253 or not KEY_RE.match(key):
            raise invalid_input(
                field,
                f"label key '{key}' is invalid: at most 63 characters (plus an optional DNS prefix and '/'), "
                "starting and ending with a letter or digit, with '-', '_' or '.' inside",
            )
        if key.startswith(RESERVED_PREFIX):
            raise invalid_input(field, f"label key '{key}' uses the reserved prefix '{RESERVED_PREFIX}'")
        if len(value) > 63 or not VALUE_RE.match(value):
            raise invalid_input(
                field,
                f"label value '{value}' of '{key}' is invalid: at most 63 characters, empty or starting and "
                "ending with a letter or digit, with '-', '_' or '.' inside",
            )
    return dict(labels)


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str                      # "=", "!=", "in", "notin", "exists", "!exists"
    values: tuple[str, ...] = ()

    def matches(self, labels: dict[str, str]) -> bool:
        present = self.key in labels
        if self.op == "exists":
            return present
        if self.op == "!exists":
            return not present
        if self.op == "=":
            return present and labels[self.key] == self.values[0]
        if self.op == "in":
            return present and labels[self.key] in self.values
        # Kubernetes semantics, which the API copies: a missing key satisfies != and notin.
        if self.op == "!=":
            return not present or labels[self.key] != self.values[0]
        return not present or labels[self.key] not in self.values


_SET_RE = re.compile(r"^\s*(\S+)\s+(in|notin)\s*\(([^()]*)\)\s*$")
_EQ_RE = re.compile(r"^\s*([^=!\s]+)\s*(==|=|!=)\s*([^=!\s]*)\s*$")
_EXISTS_RE = re.compile(r"^\s*(!?)\s*([^=!\s(),]+)\s*$")


def _split_terms(selector: str) -> list[str]:
    terms, depth, current = [], 0, []
    for char in selector:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth < 0:
                raise ValueError("unbalanced ')'")
        if char == "," and depth == 0:
            terms.append("".join(current))
            current = []
        else:
            current.append(char)
    if depth:
        raise ValueError("unbalanced '('")
    terms.append("".join(current))
    return terms


def parse_selector(selector: str, field: str = "label_selector") -> tuple[Requirement, ...]:
    """Parse ``k=v,k!=v,k in (a,b),k notin (a),k,!k``; raises invalid_input naming the field."""
    def bad(reason: str):
        return invalid_input(
            field,
            f"label selector '{selector}' is invalid: {reason}; use e.g. 'tier=web', 'env!=dev', "
            "'tier in (web,app)', 'backup' or '!backup', joined by commas",
        )

    if not selector or not selector.strip():
        raise bad("it is empty")
    try:
        terms = _split_terms(selector)
    except ValueError as err:
        raise bad(str(err)) from None
    requirements = []
    for term in terms:
        if not term.strip():
            raise bad("it has an empty term")
        if m := _SET_RE.match(term):
            values = tuple(v.strip() for v in m.group(3).split(","))
            if not all(VALUE_RE.match(v) for v in values) or values == ("",):
                raise bad(f"the values of '{term.strip()}' are invalid")
            requirements.append(Requirement(m.group(1), m.group(2), values))
        elif m := _EQ_RE.match(term):
            key, op, value = m.groups()
            if not VALUE_RE.match(value):
                raise bad(f"the value of '{term.strip()}' is invalid")
            requirements.append(Requirement(key, "!=" if op == "!=" else "=", (value,)))
        elif m := _EXISTS_RE.match(term):
            requirements.append(Requirement(m.group(2), "!exists" if m.group(1) else "exists"))
        else:
            raise bad(f"'{term.strip()}' is not a valid expression")
        if not KEY_RE.match(requirements[-1].key):
            raise bad(f"'{requirements[-1].key}' is not a valid label key")
    return tuple(requirements)


def selector_matches(requirements: tuple[Requirement, ...], labels: dict[str, str]) -> bool:
    return all(req.matches(labels) for req in requirements)
