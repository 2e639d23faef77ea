#!/usr/bin/env python
# Copyright (c) 2026, autoscale.hetzner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""`make molecule`: `molecule test` of every role's scenario on local-cloud machines.

Uses the local cloud in HCLOUD_ENDPOINT/HCLOUD_TOKEN when both are set; otherwise starts one with
machines (waiting for the host lock like the tests) and removes it afterwards (`localcloud down`).

    .venv/bin/python tests/molecule/run.py [role ...]      # default: every role with molecule/default
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
sys.path.insert(0, str(ROOT / "localcloud"))


def molecule_test(role: str, env: dict) -> tuple[int, float]:
    t0 = time.monotonic()
    proc = subprocess.run([str(BIN / "molecule"), "test", "-s", "default"], cwd=ROOT / "roles" / role,
                          env={**env, "PATH": f"{BIN}:{env.get('PATH', '')}", "ANSIBLE_NOCOLOR": "1"})
    return proc.returncode, time.monotonic() - t0


def main(roles: list[str]) -> int:
    roles = roles or sorted(p.parent.parent.name for p in (ROOT / "roles").glob("*/molecule/default/molecule.yml"))
    env = dict(os.environ)
    cloud = state = None
    if not (env.get("HCLOUD_ENDPOINT") and env.get("HCLOUD_TOKEN")):
        if os.geteuid() != 0:
            print("make molecule: the scenarios run on local-cloud machines, which need root", file=sys.stderr)
            return 2
        from localcloud.testing import start_cloud
        state = Path(tempfile.mkdtemp(prefix="molecule-cloud-"))
        # slot 0: the scenarios' admin_sources (.config/molecule/config.yml) name its controller address
        cloud = start_cloud(state, "--machines", "nspawn", "--action-time", "0.1", "--rate-limit", "0", "--slot", "0")
        env.update(cloud.env)
    try:
        results = [(role, *molecule_test(role, env)) for role in roles]
    finally:
        if cloud is not None:
            cloud.stop()
            subprocess.run([sys.executable, "-m", "localcloud.cli", "down", "--state", str(state)],
                           cwd=ROOT / "localcloud", capture_output=True, timeout=600)
    print("\nmolecule test:")
    for role, rc, seconds in results:
        print(f"  {role:15} {'ok' if rc == 0 else 'FAILED'}  {seconds:5.0f} s")
    return 0 if all(rc == 0 for _, rc, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
