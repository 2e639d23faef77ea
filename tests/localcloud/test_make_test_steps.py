# Copyright (c) 2026, autoscale.hetzner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""`make test`'s step runner (scripts/test_steps.sh) on a Makefile of its own: steps joined with "+" run at the
same time, each line of their output prefixed, each whole in its log, each with its time in the summary; a failed
step does not stop the others and makes the exit status non-zero; FAIL_FAST stops after it; SIGINT reaches the
running steps (pytest then tears its labs down) and no further step starts. A member may be a sequence of steps
joined with ",", run one after the other beside the other members."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "test_steps.sh"

MAKEFILE = """\
slow-a:
\t@echo a starts; sleep 2; echo a ends
slow-b:
\t@echo b starts; sleep 2; echo b ends
slow-c:
\t@echo c starts; sleep 2; echo c ends
broken:
\t@echo broken starts; sleep 1; echo broken fails; exit 3
after:
\t@echo after runs
pytest-fails:
\t@echo "E       AssertionError: writes through HAProxy stopped for 12.3 s"; echo "many more lines"; \\
\t  echo "FAILED tests/ha/test_x.py::test_router - AssertionError: writes through HAProxy stopped"; \\
\t  echo "===== 1 failed, 5 passed in 1498.00s ====="; exit 1
interruptible:
\t@python3 interruptible.py
"""
INTERRUPTIBLE = """\
import sys, time
print("interruptible started", flush=True)
try:
    time.sleep(60)
except KeyboardInterrupt:
    time.sleep(0.5)
    print("interruptible tore its lab down", flush=True)
    sys.exit(2)
"""


@pytest.fixture()
def project(tmp_path):
    (tmp_path / "Makefile").write_text(MAKEFILE)
    (tmp_path / "interruptible.py").write_text(INTERRUPTIBLE)
    return tmp_path


def steps(project: Path, *names: str, **env: str) -> subprocess.Popen:
    return subprocess.Popen(["bash", str(SCRIPT), *names], cwd=project, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=dict(os.environ, TEST_LOG_DIR=str(project / "logs"), **env),
                            start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def interrupt_once_started(proc: subprocess.Popen, project: Path) -> str:
    """Ctrl-C once the step `interruptible` runs; the whole output."""
    deadline = time.monotonic() + 20
    while not (project / "logs" / "interruptible.log").exists() or \
            "started" not in (project / "logs" / "interruptible.log").read_text():
        assert time.monotonic() < deadline, "the member did not start"
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    return proc.communicate(timeout=30)[0]


def summary(output: str) -> dict[str, tuple[str, int, str]]:
    """step -> (result, seconds, note) from the summary."""
    lines = output.split("=== make test summary\n", 1)[1].splitlines()
    found = {}
    for line in lines:
        m = re.match(r"^  (\S+)\s+(ok|FAILED)\s+(\d+)s(?:  (.*))?$", line)
        if m:
            found[m.group(1)] = (m.group(2), int(m.group(3)), m.group(4) or "")
    return found


def test_a_group_runs_at_the_same_time_with_prefixed_output_its_own_logs_and_times(project):
    t0 = time.monotonic()
    proc = steps(project, "after", "slow-a+slow-b+slow-c", "after")
    output, _ = proc.communicate(timeout=60)
    wall = time.monotonic() - t0
    assert proc.returncode == 0, output
    assert wall < 5, f"three 2-second steps took {wall:.1f} s: not at the same time\n{output}"
    for member in "abc":
        assert f"[slow-{member}] {member} starts" in output and f"[slow-{member}] {member} ends" in output, output
        assert (project / "logs" / f"slow-{member}.log").read_text() == f"{member} starts\n{member} ends\n"
    # the members' lines interleave: every one started before any ended
    starts = [output.index(f"{m} starts") for m in "abc"]
    ends = [output.index(f"{m} ends") for m in "abc"]
    assert max(starts) < min(ends), output
    found = summary(output)
    for member, others in (("slow-a", "slow-b+slow-c"), ("slow-b", "slow-a+slow-c"), ("slow-c", "slow-a+slow-b")):
        result, seconds, note = found[member]
        assert (result, note) == ("ok", f"(with {others})") and 1 <= seconds <= 4, found[member]
    result, seconds, _ = found["slow-a+slow-b+slow-c"]
    assert result == "ok" and 1 <= seconds <= 4, found
    assert output.count("after runs") == 2


def test_a_member_can_be_a_sequence_that_runs_beside_the_other_members(project):
    t0 = time.monotonic()
    proc = steps(project, "slow-a+slow-b,broken,slow-c", "after")
    output, _ = proc.communicate(timeout=60)
    wall = time.monotonic() - t0
    assert proc.returncode == 1, output
    # slow-a (2 s) beside the sequence slow-b (2 s), broken (1 s), slow-c (2 s): about 5 s, not 7
    assert 4.5 < wall < 7, f"{wall:.1f} s\n{output}"
    for step in ("slow-b", "broken", "slow-c"):
        assert (project / "logs" / f"{step}.log").exists(), step
    # in the sequence's order, each after the one before it ended; slow-a beside them
    assert output.index("[slow-b] b ends") < output.index("[broken] broken starts") < output.index("[slow-c] c starts")
    assert output.index("[slow-a] a starts") < output.index("[slow-b] b ends")
    found = summary(output)
    assert found["slow-a"][:1] == ("ok",) and found["slow-a"][2] == "(with slow-b then broken then slow-c)", found
    assert found["slow-b"][0] == "ok" and found["slow-c"][0] == "ok" and found["slow-c"][2] == "(with slow-a)", found
    assert found["broken"][0] == "FAILED" and found["slow-a+slow-b,broken,slow-c"][0] == "FAILED", found
    assert "after runs" in output and output.rstrip().endswith("FAILED: broken"), output


def test_fail_fast_ends_a_sequence_at_its_failed_step(project):
    proc = steps(project, "slow-a+broken,slow-c", "after", FAIL_FAST="1")
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 1 and "c starts" not in output and "after runs" not in output, output
    assert "[slow-a] a ends" in output
    assert re.search(r"^  slow-c\s+-\s+0s  \(not run", output, re.M), output


def test_a_failed_member_leaves_the_others_and_later_steps_running_and_fails_the_run(project):
    proc = steps(project, "slow-a+broken", "after")
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 1, output
    assert "[slow-a] a ends" in output and "after runs" in output, output
    found = summary(output)
    assert found["slow-a"][0] == "ok" and found["after"][0] == "ok"
    assert found["broken"][0] == "FAILED" and f"log: {project / 'logs' / 'broken.log'}" in found["broken"][2], found
    assert found["slow-a+broken"][0] == "FAILED"
    assert output.rstrip().endswith("FAILED: broken"), output
    assert "broken fails" in (project / "logs" / "broken.log").read_text()


def test_the_failed_tests_of_a_step_that_ended_early_are_named_again_at_the_end(project):
    # CI shows only the end of the output: the group's failed step (test-ha) ends long before the last one
    proc = steps(project, "pytest-fails+slow-a,slow-b")
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 1, output
    tail = output.split("=== make test summary\n", 1)[1].splitlines()
    assert tail[-4:] == [
        "  [pytest-fails] E       AssertionError: writes through HAProxy stopped for 12.3 s",
        "  [pytest-fails] FAILED tests/ha/test_x.py::test_router - AssertionError: writes through HAProxy stopped",
        "  [pytest-fails] ===== 1 failed, 5 passed in 1498.00s =====",
        "FAILED: pytest-fails"], output
    assert "many more lines" not in output.split("=== make test summary", 1)[1]


def test_fail_fast_stops_after_the_group_that_failed(project):
    proc = steps(project, "slow-a+broken", "after", FAIL_FAST="1")
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 1 and "after runs" not in output, output
    assert "[slow-a] a ends" in output, "the group's other member runs to its end"


def test_sigint_reaches_every_member_and_no_further_step_starts(project):
    proc = steps(project, "interruptible+slow-a", "after")
    output = interrupt_once_started(proc, project)
    assert proc.returncode == 1, output
    # the member's teardown output still reaches the console and its log (tee and sed outlive make)
    assert "[interruptible] interruptible tore its lab down" in output, output
    assert "interruptible tore its lab down" in (project / "logs" / "interruptible.log").read_text()
    assert "after runs" not in output and "=== interrupted" in output, output
    assert summary(output)["interruptible"][0] == "FAILED"


def test_sigint_ends_a_sequence_after_its_running_step(project):
    proc = steps(project, "interruptible,slow-c+slow-a", "after")
    output = interrupt_once_started(proc, project)
    assert proc.returncode == 1, output
    assert "[interruptible] interruptible tore its lab down" in output, output
    assert "c starts" not in output and "after runs" not in output, output
    found = summary(output)
    assert found["interruptible"][0] == "FAILED", found
    assert re.search(r"^  slow-c\s+-\s+0s  \(not run", output, re.M), output
