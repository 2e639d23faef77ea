# Copyright (c) 2026, autoscale.hetzner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""node_exporter's stack cost collector, checked without a host: it counts the resources the stack module
labels (the same label keys and value), and its unit as the role writes it passes `systemd-analyze verify`,
runs it as its own user and holds no token. Its numbers against the local cloud's /pricing are
tests/integration/test_stack_cost_collector.py's; the alert it feeds, on machines, tests/roles/test_monitoring.py's."""
from __future__ import annotations

import importlib.machinery
import importlib.util
import shutil
import subprocess
import sys

import pytest

from ansible_collections.autoscale.hetzner.plugins.module_utils import pricing, stack
from rendering import ROLES, render, value

SCRIPT = ROLES / "node_exporter" / "files" / "textfile-stack_cost"
ON_THE_MONITORING_HOST = {"node_exporter_stack_cost_token": "a-secret-token-0123456789",
                          "node_exporter_stack_cost_stack": "prod", "node_exporter_stack_cost_budget": 49.9}


def load_collector():
    sys.modules.setdefault("pricing", pricing)       # what `import pricing` finds beside it on the host
    loader = importlib.machinery.SourceFileLoader("textfile_stack_cost", str(SCRIPT))
    module = importlib.util.module_from_spec(importlib.util.spec_from_loader(loader.name, loader))
    loader.exec_module(module)
    return module


def test_the_collector_counts_what_the_stack_module_labels():
    collector = load_collector()
    assert collector.MANAGED_BY == (stack.MANAGED_BY_KEY, stack.MANAGED_BY_VALUE)
    assert collector.STACK_KEY == stack.STACK_KEY
    assert collector.PATHS == {kind: stack.LIST_PATHS[kind] for kind in collector.PATHS}


def stack_cost_unit(**extra) -> str:
    variables = {**ON_THE_MONITORING_HOST, **extra}
    item = next(c for c in value("node_exporter", "__node_exporter_textfile_collectors", **variables)
                if c["name"] == "stack_cost")
    return render("node_exporter", "textfile.service.j2", item=item, **variables)


def test_the_unit_runs_the_collector_as_its_user_without_the_token_and_systemd_accepts_it(tmp_path):
    text = stack_cost_unit(node_exporter_stack_cost_endpoint="http://198.18.0.1:8080/v1?x=%41$HOME")
    assert ON_THE_MONITORING_HOST["node_exporter_stack_cost_token"] not in text
    lines = dict(line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#"))
    assert "setpriv --reuid=autoscale-stack-cost --regid=autoscale-stack-cost --clear-groups -- " in lines["ExecStart"]
    # systemd would expand % specifiers and $VARIABLES in the endpoint: they are escaped.
    assert '--endpoint "http://198.18.0.1:8080/v1?x=%%41$$HOME"' in lines["ExecStart"]
    assert "--token-file /etc/autoscale-stack-cost/token --budget 49.9 > " in lines["ExecStart"]
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed")
    unit = tmp_path / "autoscale-textfile-stack_cost.service"
    unit.write_text(text)
    proc = subprocess.run(["systemd-analyze", "verify", "--man=no", str(unit)], capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode == 0 and "autoscale-textfile-stack_cost" not in proc.stderr, proc.stderr


def test_without_a_budget_the_collector_exports_the_cost_only():
    text = stack_cost_unit(node_exporter_stack_cost_budget="")
    assert "--budget" not in text
