# Copyright (c) 2026, autoscale.hetzner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every per-resource module against the local cloud.

Each target in tests/integration/targets/<module>/ is a role whose tasks hold the assertions:
check mode creates nothing and plans what the real run does -> create -> rerun changes nothing ->
change one attribute -> exactly that change (diff and plan) -> delete.
"""

from __future__ import annotations

import pytest

MODULE_TARGETS = ["ssh_key", "placement_group", "network", "firewall", "server", "volume", "floating_ip",
                  "load_balancer"]


@pytest.mark.parametrize("target", MODULE_TARGETS)
def test_module_lifecycle(run_target, target):
    result = run_target(target)
    assert result.rc == 0, result.output[-8000:]
