"""The molecule scenario of host_firewall really runs (make test), on the lab's local cloud:
create with this collection's modules, check on the fresh machines, converge, idempotence,
verify, destroy. The other roles' scenarios run with `make molecule`; their effects are what the
other modules of this directory prove on the lab, so running them here too would add ~2 minutes
each to `make test` and prove nothing new."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from lab import ROOT, lab, skip_reason  # noqa: F401  (fixture)

pytestmark = pytest.mark.skipif(skip_reason() is not None, reason=skip_reason() or "")
MOLECULE = Path(sys.executable).parent / "molecule"


@pytest.mark.skipif(not MOLECULE.exists(), reason="molecule is not in the venv (requirements-dev.txt)")
def test_molecule_scenario_of_host_firewall(lab):
    # the scenario's admin_sources name the controller as the lab's machines see it: with a lab in another slot
    # than 0 (test-roles beside test-e2e), the fixed 198.18.0.1 made host_firewall's lock-out preflight refuse
    proc = subprocess.run([str(MOLECULE), "test", "-s", "default"], cwd=ROOT / "roles" / "host_firewall",
                          env={**lab.env, "ANSIBLE_CONFIG": "", "MOLECULE_CONTROLLER_IP": lab.controller_ip}, capture_output=True, text=True, timeout=1800)
    output = re.sub(r"\x1b\[[0-9;]*m", "", proc.stdout + proc.stderr)
    assert proc.returncode == 0, output[-6000:]
    for step in ("create", "check", "converge", "idempotence", "verify", "destroy"):
        assert re.search(rf"default . {step}: Executed: Successful", output), f"molecule did not run {step}:\n{output[-3000:]}"
