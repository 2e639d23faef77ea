# Copyright (c) 2026, autoscale.hetzner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The status_report filter (module_utils/status.py rendering): names that would break Markdown tables, Mermaid or
DOT are escaped, node ids stay unique, edges only join resources that are drawn, bad input is named."""

from __future__ import annotations

import re

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.autoscale.hetzner.plugins.filter.status import status_report


def row(kind, name, drift=None, links=(), tier=None, details="", state="running"):
    return {"type": kind, "name": name, "id": 1, "state": state, "tier": tier, "details": details,
            "monthly": {"net": "1.00", "gross": "1.19"}, "drift": drift, "changes": {}, "links": [list(x) for x in links]}


def status_of(rows):
    return {"stack": "s", "resources": rows, "errors": [], "cost": None, "cost_problem": "no prices",
            "in_sync": not any(r["drift"] for r in rows),
            "drift": {key: [{"type": r["type"], "name": r["name"]} for r in rows if r["drift"] == key]
                      for key in ("missing", "changed", "undeclared", "outside")},
            "health": {"servers": [], "targets": [], "healthy": True, "run_in_progress": False}}


STATUS = status_of([
    row("server", "web-1", tier="web", links=[("network", "net", "10.0.1.10"), ("firewall", "gone", "")]),
    row("server", "web_1", tier="web", drift="missing"),
    row("server", 'odd "name" | x', drift="outside", details='a "quoted" \\ detail'),
    row("network", "net", details="10.0.0.0/16"),
])


def test_node_ids_are_unique_and_edges_join_only_drawn_resources():
    dot = status_report(STATUS, output="dot")
    ids = re.findall(r'^\s*"([^"]+)" \[label=', dot, re.M)
    assert len(ids) == len(set(ids)) == 4
    assert '"server__web_1" -> "network__net" [label="10.0.1.10"];' in dot
    assert "gone" not in dot          # a firewall that is not in the project is no node and no edge
    mermaid = status_report(STATUS, output="mermaid")
    assert "server__web_1_2[" in mermaid and "class server__web_1_2 missing" in mermaid


def test_quotes_backslashes_and_pipes_are_escaped():
    dot = status_report(STATUS, output="dot")
    assert r'server odd \"name\" | x\na \"quoted\" \\ detail\n(outside)' in dot
    mermaid = status_report(STATUS, output="mermaid")
    assert "server odd 'name' | x<br/>a 'quoted'" in mermaid
    tables = status_report(STATUS, output="tables")
    assert "| odd \"name\" \\| x | 1 | running |" in tables
    assert "Monthly cost: unknown (no prices)." in tables


def test_markdown_links_the_svg_and_bad_input_is_named():
    report = status_report(STATUS, svg="status.svg")
    assert report.index("## Servers") < report.index("```mermaid") < report.index("[status.svg](status.svg)")
    with pytest.raises(AnsibleFilterError, match="stack_info"):
        status_report({"plan": []})
    with pytest.raises(AnsibleFilterError, match="output='svg' is not one of markdown, tables, mermaid, dot"):
        status_report(STATUS, output="svg")
