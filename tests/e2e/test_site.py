# Copyright (c) 2026, autoscale.hetzner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""site.yml end to end on the local cloud, run the way users run it: `make demo`'s script
(scripts/demo.py) with the minimal scenario's inventory, its own local cloud (a free slot) and its
own SSH key. The tests run in order on one stack:

1. the first run builds the minimal stack: every web server's public IP serves the demo page through
   web -> app (on the db server); the app port is open to the web tier only, SSH to the admins only;
2. a second run changes nothing;
3. scaling: web 3 -> 4 with a load balancer in front (two variables): the new server answers through
   the load balancer and the app server's host firewall lets it in;
4. a change that breaks the web tier stops the roll at the first batch, whose host drains itself;
5. a good change rolls through the web tier and web 4 -> 3 takes the fourth server out of the load
   balancer before it is deleted, while a client polling the load balancer sees no failed request.

site.yml runs no database or monitoring role yet: the app runs without a database (app_database:
false in the scenario), so the path ends at the app server.
"""
from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
for path in (ROOT / "tests", ROOT / "localcloud"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from harness import PlaybookRun, http_get, machines_skip_reason, ssh, tcp_from, tcp_from_controller  # noqa: E402  pylint: disable=wrong-import-position

pytestmark = pytest.mark.skipif(machines_skip_reason("end-to-end tests") is not None,
                                reason=machines_skip_reason("end-to-end tests") or "")
STACK = "autoscale-min"
DB = "autoscale-min-db-1"
DB_PRIVATE_IP = "10.0.3.10"
WITH_LB = ["-e", "web_load_balancer=true"]


class Demo:
    """scripts/demo.py up/down with a state directory and SSH key of the test's own."""

    def __init__(self, workdir: Path):
        self.dir = workdir
        self.key = workdir / "id_ed25519"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "e2e", "-f", str(self.key)], check=True)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "HCLOUD_", "DEMO_"))}
        self.env.update(DEMO_DIR=str(workdir / "demo"), DEMO_SSH_KEY=str(self.key), ANSIBLE_NOCOLOR="1",
                        ANSIBLE_FORCE_COLOR="0")
        self.runs: list[PlaybookRun] = []

    def up(self, *args: str) -> PlaybookRun:
        env = dict(self.env, DEMO_ARGS=shlex.join(args))
        t0 = time.monotonic()
        proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "demo.py"), "up", "--scenario", "minimal"], env=env,
                              cwd=ROOT, capture_output=True, text=True, timeout=3600, check=False)
        run = PlaybookRun.parse(["demo.py", "up", *args], proc.returncode, proc.stdout + proc.stderr, time.monotonic() - t0)
        self.runs.append(run)
        print(f"\ndemo.py up {shlex.join(args)}: rc {run.rc} in {run.seconds:.0f} s")
        return run

    def down(self):
        subprocess.run([sys.executable, str(ROOT / "scripts" / "demo.py"), "down"], env=self.env, cwd=ROOT,
                       capture_output=True, text=True, timeout=900, check=False)

    def api(self):
        from hcloud import Client   # pylint: disable=import-outside-toplevel
        values = dict(line.split("=", 1) for line in (self.dir / "demo" / "minimal" / "cloud" / "env").read_text().split())
        return Client(token=values["HCLOUD_TOKEN"], api_endpoint=values["HCLOUD_ENDPOINT"])

    def servers(self) -> dict[str, str]:
        """name -> public IPv4 of the stack's servers."""
        return {s.name: s.public_net.ipv4.ip for s in self.api().servers.get_all(label_selector=f"stack={STACK}")}

    def load_balancer_ip(self) -> str:
        balancers = self.api().load_balancers.get_all(label_selector=f"stack={STACK}")
        assert len(balancers) == 1, balancers
        return balancers[0].public_net.ipv4.ip

    def ssh(self, name: str, command: str, check: bool = True):
        return ssh(self.servers()[name], self.key, command, check=check)

    def tcp(self, source: str, ip: str, port: int) -> str:
        return tcp_from(self.servers()[source], self.key, ip, port)


class Poller(threading.Thread):
    """A client asking the load balancer for the demo page every 50 ms; every answer is kept."""

    def __init__(self, url: str):
        super().__init__(daemon=True)
        self.url = url
        self.results: list[tuple[float, int, str]] = []
        self._stop = threading.Event()

    def run(self):
        while not self._stop.is_set():
            t = time.monotonic()
            try:
                status, _, body = http_get(self.url + "api/visit", timeout=10)
                detail = json.loads(body).get("web", "") if status == 200 else body[:200]
            except Exception as exc:  # pylint: disable=broad-except  (every failure counts)
                status, detail = 0, repr(exc)
            self.results.append((t, status, detail))
            self._stop.wait(0.05)

    def stop(self) -> list[tuple[float, int, str]]:
        self._stop.set()
        self.join(30)
        return [r for r in self.results if r[1] != 200]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    demo = Demo(tmp_path_factory.mktemp("e2e"))
    try:
        yield demo
    finally:
        demo.down()


@pytest.fixture(scope="module")
def minimal(demo):
    """The first run of site.yml for the minimal scenario."""
    run = demo.up()
    run.assert_ok()
    return run


def test_the_minimal_stack_serves_the_demo_page_through_every_tier(demo, minimal):
    servers = demo.servers()
    webs = sorted(n for n in servers if "-web-" in n)
    assert webs == [f"{STACK}-web-{i}" for i in (1, 2, 3)] and DB in servers
    counts = []
    for web in webs:
        status, headers, _ = http_get(f"http://{servers[web]}/")
        assert status == 200 and headers.get("X-Frame-Options") == "DENY", (web, status, headers)
        status, _, body = http_get(f"http://{servers[web]}/api/visit")
        visit = json.loads(body)
        # web -> app (on the db server in the minimal scenario), no database yet
        assert (visit["web"], visit["app"], visit["database"]) == (web, DB, None), visit
        counts.append(visit["visits"])
    assert counts == sorted(counts) and counts[-1] > counts[0], counts
    # The app port answers the web tier on the private network and nobody outside; sshd listens
    # on every address, yet a web server cannot reach it: the host firewall lets the admins in only.
    assert demo.tcp(webs[0], DB_PRIVATE_IP, 8080) == "open"
    assert demo.tcp(webs[0], DB_PRIVATE_IP, 22) == "refused"
    assert tcp_from_controller(servers[DB], 8080) != "open"
    assert "changed=0 on every host" not in minimal.output


def test_a_second_run_changes_nothing(demo, minimal):
    run = demo.up()
    run.assert_unchanged()
    assert "changed=0 on every host" in run.output


def test_scaling_the_web_tier_from_3_to_4_behind_a_load_balancer(demo, minimal):
    run = demo.up("-e", "web_servers=4", *WITH_LB)
    run.assert_ok()
    new = f"{STACK}-web-4"
    assert new in run.recap and new in demo.servers()
    lb = demo.load_balancer_ip()
    served_by = set()
    for _ in range(40):                       # round robin over 4 targets
        status, _, body = http_get(f"http://{lb}/api/visit")
        assert status == 200, body
        served_by.add(json.loads(body)["web"])
        if new in served_by and len(served_by) == 4:
            break
    assert served_by == {f"{STACK}-web-{i}" for i in (1, 2, 3, 4)}, served_by
    # The app server takes the new server (the host firewall's app opening follows the web group,
    # and the app server rejects whoever is not in it: see the first test).
    assert demo.tcp(new, DB_PRIVATE_IP, 8080) == "open"


def test_a_change_that_breaks_a_web_server_stops_the_roll(demo, minimal):
    bad = {"web_upstreams": [f"{DB_PRIVATE_IP}:9"], "web_servers": 4, "web_load_balancer": True}
    run = demo.up("-e", json.dumps(bad))
    assert run.rc != 0
    webs = [f"{STACK}-web-{i}" for i in (1, 2, 3, 4)]
    failed = [w for w in webs if run.recap.get(w, {}).get("failed")]
    # The first batch is one host (the inventory's order, not the names'): it failed, nobody else was touched.
    assert len(failed) == 1, run.recap
    others = [w for w in webs if w != failed[0]]
    assert "nginx.conf" not in " ".join(sum((run.changed_tasks.get(w, []) for w in others), []))
    assert demo.ssh(failed[0], "curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1/healthz", check=False).stdout == "503"
    for web in others:
        assert ":9 " not in demo.ssh(web, "grep -A3 'upstream autoscale_app' /etc/nginx/nginx.conf").stdout


def test_a_change_rolls_through_and_scaling_down_drains_first_while_the_load_balancer_serves(demo, minimal):
    lb = demo.load_balancer_ip()
    poller = Poller(f"http://{lb}/")
    poller.start()
    try:
        change = {"web_servers": 3, "web_load_balancer": True, "web_response_headers": {"X-Release": "2"}}
        run = demo.up("-e", json.dumps(change))
    finally:
        failures = poller.stop()
    run.assert_ok()
    assert len(poller.results) > 100, len(poller.results)
    assert not failures, failures[:10]
    assert f"{STACK}-web-4" not in demo.servers()
    # The roll went in batches (1, then half of the rest, ...): one play header per batch.
    assert run.output.count("PLAY [Web tier, in batches]") >= 2
    servers = demo.servers()
    for web in (f"{STACK}-web-{i}" for i in (1, 2, 3)):
        status, headers, _ = http_get(f"http://{servers[web]}/healthz")
        assert status == 200 and headers.get("X-Release") == "2", (web, status, headers)
    # Every answer after the run comes from the three servers left.
    served = {poller.results[i][2] for i in range(-20, 0)}
    assert served <= {f"{STACK}-web-{i}" for i in (1, 2, 3)}, served
