# Copyright (c) 2026, autoscale.hetzner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The machine benchmarks' stacks are declarations the stack module accepts.

tests/bench/bench_security_roles.py, bench_postgresql.py and bench_monitoring.py cut the role lab's
stack (tests/roles/lab_stack.yml) down to the servers they measure. When the lab grew a monitoring
tier with a volume, the security bench kept the volume but not its server: the stack module refused
the declaration and the bench died before its first machine, which only showed on a `make bench`
with machines. Here each cut stack is planned (check mode, no machines) on the local cloud.
"""

from __future__ import annotations

import importlib.util

import pytest

from test_stack import PUBLIC_KEY, ROOT, new_project, run_provision  # noqa: E402

BENCHES = {
    "security": ("bench_security_roles.py", "bench_stack"),
    "postgresql": ("bench_postgresql.py", "bench_stack"),
    "monitoring": ("bench_monitoring.py", "production_stack"),
}


def bench_stack(name: str) -> dict:
    file_name, function = BENCHES[name]
    spec = importlib.util.spec_from_file_location(f"bench_{name}_under_test", ROOT / "tests" / "bench" / file_name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    stack = getattr(module, function)()
    stack["ssh_keys"][0]["public_key"] = PUBLIC_KEY      # lab.py puts the lab's own key here
    return stack


@pytest.mark.parametrize("name", sorted(BENCHES))
def test_bench_stack_is_accepted(localcloud, run_playbook, name):
    stack = bench_stack(name)
    servers = {s["name"] for tier in stack["tiers"] for s in tier["servers"]}
    # every volume is on a server the bench keeps (the security bench's bug)
    assert {v["server"] for v in stack.get("volumes", []) if v.get("server")} <= servers
    token = new_project(localcloud, f"bench-{name}")
    result, data = run_provision(run_playbook, token, stack=stack, check=True)
    assert result.rc == 0, result.output[-3000:]
    planned = {p["name"] for p in data["plan"] if p["type"] == "server" and p["action"] == "create"}
    assert planned == servers
