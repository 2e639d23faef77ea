# Copyright (c) 2026, autoscale.hetzner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""make demo's closing line (scripts/demo.py) from site.yml's output, without machines.

A production `make demo` stopped with Ctrl-C ended with "rc 99 ...; changed=0 on every host": with no
PLAY RECAP no host had changed, so it claimed a no-change run. Only a recap may say changed=0.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("demo_script", ROOT / "scripts" / "demo.py")
demo = importlib.util.module_from_spec(spec)
spec.loader.exec_module(demo)

RECAP = """
PLAY RECAP *********************************************************************
autoscale-min-db-1         : ok=300  changed={db}   unreachable=0    failed=0    skipped=121  rescued=0    ignored=0
autoscale-min-web-1        : ok=235  changed=0    unreachable=0    failed=0    skipped=66   rescued=0    ignored=0
localhost                  : ok=12   changed=1    unreachable=0    failed=0    skipped=2    rescued=0    ignored=0
"""


def test_no_change_run():
    assert demo.outcome(demo.recap(RECAP.format(db=0))) == "changed=0 on every host"


def test_changed_host_counted_the_controller_not():
    assert demo.outcome(demo.recap(RECAP.format(db=3))) == "changed on 1 of 2 hosts"


def test_interrupted_run_claims_nothing():
    interrupted = "TASK [autoscale.hetzner.host_firewall : Keep the openings of postgres_exporter] ***\n" \
                  "[ERROR]: User interrupted execution\n"
    assert "changed=0" not in demo.outcome(demo.recap(interrupted))
    assert demo.outcome(demo.recap(interrupted)) == "no play recap for the servers (site.yml did not get to its end)"


def test_colored_recap():
    colored = RECAP.format(db=0).replace("autoscale-min-web-1", "\x1b[0;32mautoscale-min-web-1\x1b[0m")
    assert demo.outcome(demo.recap(colored)) == "changed=0 on every host"
