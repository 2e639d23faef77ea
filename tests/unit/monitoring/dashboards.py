# Copyright (c) 2026, autoscale.hetzner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The grafana role's dashboards as data: every panel query with its template variables filled
in, the way Grafana would send it (used by the unit tests and by the lab test that asks Prometheus)."""
from __future__ import annotations

import json
import re
from pathlib import Path

DASHBOARDS = Path(__file__).resolve().parents[3] / "roles" / "grafana" / "files" / "dashboards"
# Grafana's built-in variables, as it fills them for a 6-hour view at a 30 s scrape interval.
BUILTINS = {"__rate_interval": "2m", "__interval": "30s", "__range": "6h"}


def load(name: str) -> dict:
    return json.loads((DASHBOARDS / f"autoscale-{name}.json").read_text())


def names() -> list[str]:
    return sorted(p.stem.removeprefix("autoscale-") for p in DASHBOARDS.glob("autoscale-*.json"))


def panels(dashboard: dict):
    for panel in dashboard["panels"]:
        yield from panel.get("panels", [])
        yield panel


def queries(dashboard: dict) -> list[tuple[str, str]]:
    """(panel title, expr) of every query of every panel."""
    return [(p["title"], t["expr"]) for p in panels(dashboard) for t in p.get("targets", [])]


def variables(dashboard: dict) -> list[dict]:
    return dashboard.get("templating", {}).get("list", [])


def fill(expr: str, values: dict[str, str]) -> str:
    """The query with $name / ${name} replaced: a template variable's value (a regex alternation of
    the chosen values, as Grafana sends a multi-value variable) or a built-in."""
    every = {**BUILTINS, **values}

    def replace(match):
        name = match.group(1) or match.group(2)
        if name not in every:
            raise KeyError(f"{name} is not a variable of the dashboard: {expr}")
        return every[name]
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", replace, expr)


def multi_value(values: list[str]) -> str:
    """A multi-value variable with every value chosen ("All"), as Grafana's Prometheus data source
    sends it: each value regex-escaped for the PromQL string it lands in (a special character gets two
    backslashes, which the string reads as one; PromQL refuses a single one before a dot as an unknown
    escape), the values joined by |."""
    def escape(value: str) -> str:
        return re.sub(r"([$^*{}\[\]'+?.()|])", r"\\\\\1", value.replace("\\", "\\\\\\\\"))
    return "|".join(escape(v) for v in values)


def label_of(query: str) -> tuple[str, str]:
    """label_values(<selector>, <label>) -> (selector, label)."""
    match = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", query.strip())
    if not match:
        raise ValueError(f"not a label_values() query: {query}")
    return match.group(1), match.group(2)
