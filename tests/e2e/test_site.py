# Copyright (c) 2026, autoscale.hetzner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""site.yml end to end on the local cloud, run the way users run it: `make demo`'s script
(scripts/demo.py) with the minimal scenario's inventory, its own local cloud (a free slot) and its
own SSH key. The tests run in order on ONE stack:

1. the first run builds the minimal stack with a load balancer in front (web_load_balancer=true):
   a request to the load balancer and to every web server's public IP crosses web -> app (on the db
   server) -> PostgreSQL on the db server's volume, and the row it wrote is in the database; the
   database and the app port refuse the web tier, SSH the admins' outsiders;
2. (full) a second run with every role (site_full_run=true) changes nothing (changed=0 on every server);
3. a run with nothing changed skips the configuration plays (changed=0, no role task); then, changed by hand,
   web-1's nginx.conf (answers 418) and web-2's nginx (stopped): the next run names both, runs every role
   and both serve the page again; the run after it skips again;
4. Prometheus on the db server scrapes every exporter (waited for: the exporters started during the run);
   then status.yml lists every resource in its tables and diagrams (Mermaid, DOT, SVG), the cost the site.yml
   summary printed, the load balancer's health checks of the web servers, every service Prometheus scrapes up
   (asked on the db server), and a server made by hand as drift;
5. scaling: web 3 -> 4, through ansible-runner (ansible_runner.run, as AWX/AAP run site.yml): the new
   server answers through the load balancer, the app server lets it in, the database refuses it,
   Prometheus scrapes its exporters;
6. (full) a change of the web role's configuration (TLS with a local CA's certificate, a response header)
   rolls through the web tier in batches and web 4 -> 3 takes the fourth server out of the load
   balancer before it is deleted, while a client polling the load balancer sees no failed request;
   then HTTPS answers with the certificate, verified against the local CA.

Prometheus's targets (4): every server's node_exporter, the db server's postgres_exporter, the web tier's nginx
exporters and the blackbox probe of the load balancer `up` on the db server, the minimal scenario's monitoring server.

`make test-e2e-core` runs the tests not marked `e2e_full` (five site.yml runs: the cold run, the three of 3. and the
scaling run),
and `make test` runs it after test-ha, beside its other steps; `make test-e2e` runs them all (four runs).
"""
from __future__ import annotations

import html
import http.client
import json
import os
import re
import shlex
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from email.message import Message
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

    def site_through_runner(self, extravars: dict, name: str = "runner"):
        """site.yml through ansible_runner.run (as AWX / AAP run it), with demo.py's inventory, variables file and
        environment (its local cloud, this checkout's collection)."""
        import ansible_runner   # pylint: disable=import-outside-toplevel
        demo_py = demo_script()
        work = self.dir / "demo" / "minimal"
        env = demo_py.ansible_env(work, demo_py.cloud_env(work / "cloud"))
        envvars = {k: v for k, v in env.items() if k.startswith(("ANSIBLE_", "HCLOUD_")) or k in ("PATH", "HOME")}
        envvars.update(ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
        private = self.dir / name
        private.mkdir(exist_ok=True)
        t0 = time.monotonic()
        # ansible_runner.run installs SIGINT/SIGTERM handlers of its own in this process and leaves them there:
        # afterwards pytest ignored Ctrl-C and make test's SIGINT, and the lab was never torn down.
        handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            result = ansible_runner.run(private_data_dir=str(private), playbook=str(ROOT / "playbooks" / "site.yml"),
                                        inventory=str(ROOT / "inventories" / "minimal"), extravars=extravars,
                                        cmdline=f"-e @{work / 'demo-vars.yml'}", envvars=envvars, quiet=True, timeout=3600)
        finally:
            for sig, handler in handlers.items():
                signal.signal(sig, handler)
        print(f"\nansible_runner.run site.yml: {result.status} rc {result.rc} in {time.monotonic() - t0:.0f} s")
        return result

    def playbook(self, playbook: str, *args: str) -> subprocess.CompletedProcess:
        """Another playbook of the collection on the demo's stack, as its users run it (JSON callback)."""
        demo_py = demo_script()
        work = self.dir / "demo" / "minimal"
        env = dict(demo_py.ansible_env(work, demo_py.cloud_env(work / "cloud")), ANSIBLE_STDOUT_CALLBACK="ansible.posix.json")
        return subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(ROOT / "inventories" / "minimal"),
                               str(ROOT / "playbooks" / playbook), "-e", f"@{work / 'demo-vars.yml'}", *args],
                              env=env, cwd=ROOT, capture_output=True, text=True, timeout=900, check=False)

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


def demo_script():
    """scripts/demo.py as a module (its environment and local-cloud helpers)."""
    import importlib.util   # pylint: disable=import-outside-toplevel
    spec = importlib.util.spec_from_file_location("demo_script", ROOT / "scripts" / "demo.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Poller(threading.Thread):
    """A client asking the load balancer for the demo page every 50 ms; every answer is kept."""

    def __init__(self, url: str):
        super().__init__(daemon=True)
        self.url = url
        self.results: list[tuple[float, int, str]] = []
        # not self._stop: threading.Thread has a _stop() method of its own (join() calls it)
        self._halt = threading.Event()

    def run(self):
        while not self._halt.is_set():
            t = time.monotonic()
            try:
                status, _, body = http_get(self.url + "api/visit", timeout=10)
                detail = json.loads(body).get("web", "") if status == 200 else body[:200]
            except Exception as exc:  # pylint: disable=broad-except  (every failure counts)
                status, detail = 0, repr(exc)
            self.results.append((t, status, detail))
            self._halt.wait(0.05)

    def stop(self) -> list[tuple[float, int, str]]:
        self._halt.set()
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
    """The first run of site.yml for the minimal scenario, with a load balancer in front."""
    run = demo.up(*WITH_LB)
    run.assert_ok()
    return run


def local_ca_certificate(workdir: Path, name: str) -> tuple[Path, str, str]:
    """A CA of our own and a certificate it signed for name: (the CA's file, certificate PEM, key PEM)."""
    def openssl(*args):
        subprocess.run(["openssl", *args], cwd=workdir, check=True, capture_output=True)
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
            "-subj", "/CN=e2e test CA", "-keyout", "ca.key", "-out", "ca.crt")
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", f"/CN={name}",
            "-keyout", "site.key", "-out", "site.csr")
    (workdir / "san.ext").write_text(f"subjectAltName = DNS:{name}\nextendedKeyUsage = serverAuth\n")
    openssl("x509", "-req", "-in", "site.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2",
            "-extfile", "san.ext", "-out", "site.crt")
    return workdir / "ca.crt", (workdir / "site.crt").read_text(), (workdir / "site.key").read_text()


def https_get(ip: str, name: str, ca: Path, path: str) -> tuple[int, Message, str]:
    """GET https://name/path from ip, the certificate verified against the CA (SNI and host name: name)."""
    context = ssl.create_default_context(cafile=str(ca))
    raw = socket.create_connection((ip, 443), timeout=10)
    connection = http.client.HTTPSConnection(name, 443, timeout=10, context=context)
    connection.sock = context.wrap_socket(raw, server_hostname=name)    # to ip, checked as name
    try:
        connection.request("GET", path)
        answer = connection.getresponse()
        return answer.status, answer.headers, answer.read().decode()
    finally:
        connection.close()


def visits_in_database(demo: Demo, visit_id: int) -> str:
    """The web host PostgreSQL recorded for a visit, asked on the db server (not through the app)."""
    return demo.ssh(DB, f"runuser -u postgres -- psql -d app -Atc 'SELECT web_host FROM visits WHERE id = {visit_id}'").stdout.strip()


def test_the_minimal_stack_serves_the_demo_page_through_every_tier_to_the_database(demo, minimal):
    servers = demo.servers()
    webs = sorted(n for n in servers if "-web-" in n)
    assert webs == [f"{STACK}-web-{i}" for i in (1, 2, 3)] and DB in servers
    # The summary's cost comes from the API's /pricing through module_utils/pricing.py (as the plan's):
    # a line per server type and location: the three cx23 web servers (wherever they were placed),
    # the ccx23 db server and the load balancer.
    cost = re.search(r"Monthly cost \(the API's prices\): (\d+\.\d\d) (\w+).*", minimal.output)
    assert cost and float(cost.group(1)) > 0, minimal.output[-3000:]
    assert sum(int(n) for n in re.findall(r" (\d+) cx23 in \w+ \d+\.\d\d", cost.group(0))) == 3, cost.group(0)
    assert re.search(r" 1 ccx23 in \w+ \d+\.\d\d", cost.group(0)) and " lb11 in " in cost.group(0), cost.group(0)
    # Through the load balancer: the page says where the row went, and the row is in PostgreSQL.
    lb = demo.load_balancer_ip()
    status, headers, page = http_get(f"http://{lb}/")
    assert status == 200 and headers.get("X-Frame-Options") == "DENY", (status, headers)
    assert "written to PostgreSQL and read back" in page and f"database <b>{DB_PRIVATE_IP}</b>" in page, page
    for web in webs:
        status, _, body = http_get(f"http://{servers[web]}/api/visit")
        visit = json.loads(body)
        assert status == 200 and (visit["web"], visit["app"]) == (web, DB), visit
        assert visit["database"]["server"] == DB_PRIVATE_IP and not visit["database"]["in_recovery"], visit
        assert visits_in_database(demo, visit["visit"]) == web
    # PostgreSQL keeps its data on the db server's Hetzner Volume.
    assert demo.ssh(DB, "findmnt -no SOURCE /var/lib/postgresql").stdout.strip().startswith("/dev/"), "not on the volume"
    # The database and the app port refuse the web tier (the app, on the db server, is the database's
    # only client); sshd listens on every address, yet only the admins get in.
    assert demo.tcp(webs[0], DB_PRIVATE_IP, 5432) != "open"
    assert demo.tcp(webs[0], DB_PRIVATE_IP, 8080) == "open"
    assert demo.tcp(webs[0], DB_PRIVATE_IP, 22) == "refused"
    for port in (5432, 8080):
        assert tcp_from_controller(servers[DB], port) != "open", port
    assert "changed=0 on every host" not in minimal.output
    assert "Database: PostgreSQL" in minimal.output


@pytest.mark.e2e_full
def test_a_second_full_run_changes_nothing(demo, minimal):
    # site_full_run: every role runs (a run with nothing changed skips them: the next test), and finds
    # everything as it left it.
    run = demo.up(*WITH_LB, "-e", "site_full_run=true")
    run.assert_ok()
    assert ROLE_TASK.search(run.output), "no role ran"
    servers = set(demo.servers())
    assert servers <= set(run.recap), run.recap
    changed = {host: counts["changed"] for host, counts in run.recap.items() if host != "localhost" and counts["changed"]}
    assert not changed, (changed, {host: run.changed_tasks.get(host) for host in changed})
    assert "changed=0 on every host" in run.output, run.tail()      # what make demo tells its user


ROLE_TASK = re.compile(r"^TASK \[autoscale\.hetzner\.\w+ : ", re.M)
HANDMADE_NGINX = "events {} http { server { listen 80 default_server; return 418; } }"


def test_a_run_with_nothing_changed_skips_the_roles_and_one_after_changes_by_hand_repairs_them(demo, minimal):
    run = demo.up(*WITH_LB)
    run.assert_ok()
    assert "Nothing changed since the last complete run" in run.output, run.tail()
    assert not ROLE_TASK.search(run.output), ROLE_TASK.findall(run.output)[:5]
    assert "changed=0 on every host" in run.output, run.tail()
    # Changed by hand since: web-1's nginx.conf (a file under /etc) answers 418 to everything, and
    # web-2's nginx is stopped (no file changed). The next run sees both, runs every role, and repairs them.
    servers = demo.servers()
    web1, web2 = sorted(n for n in servers if "-web-" in n)[:2]
    demo.ssh(web1, f"printf '%s\\n' {shlex.quote(HANDMADE_NGINX)} > /etc/nginx/nginx.conf && systemctl reload nginx")
    demo.ssh(web2, "systemctl stop nginx")
    assert http_get(f"http://{servers[web1]}/")[0] == 418
    assert tcp_from_controller(servers[web2], 80) == "refused"
    run = demo.up(*WITH_LB)
    run.assert_ok()
    assert "Configuring every host, because of what changed since the last complete run:" in run.output, run.tail()
    assert f'"{web1}: /etc/nginx/nginx.conf' in run.output, run.tail()
    assert f'"{web2}: a service or the firewall rules changed"' in run.output, run.tail()
    assert run.changed_tasks.get(web1) and run.changed_tasks.get(web2), run.changed_tasks
    for web in (web1, web2):
        status, _, body = http_get(f"http://{servers[web]}/api/visit")
        assert status == 200 and json.loads(body)["web"] == web, (web, status, body)
    # ... and the run after it has nothing to do again.
    run = demo.up(*WITH_LB)
    run.assert_ok()
    assert "Nothing changed since the last complete run" in run.output, run.tail()


def prometheus_targets(demo: Demo) -> dict[tuple[str, str], dict]:
    """(job, instance) -> target of Prometheus's active targets, asked on the db server (Prometheus
    listens on its private IP only)."""
    answer = demo.ssh(DB, f"curl -sf --max-time 20 http://{DB_PRIVATE_IP}:9090/api/v1/targets?state=active").stdout
    return {(t["labels"]["job"], t["labels"]["instance"]): t for t in json.loads(answer)["data"]["activeTargets"]}


def test_prometheus_on_the_monitoring_server_scrapes_every_server(demo, minimal):
    servers = demo.servers()
    webs = sorted(n for n in servers if "-web-" in n)
    lb_url = f"http://{demo.load_balancer_ip()}/"
    expected = ({("node", name) for name in servers} | {("nginx", web) for web in webs} | {("postgres", DB)}
                | {("prometheus", DB), ("alertmanager", DB), ("blackbox", lb_url)})
    # The exporters started during the run; Prometheus scrapes every 30 s (the roles' default).
    deadline = time.monotonic() + 120
    while True:
        targets = prometheus_targets(demo)
        down = {key: (t["health"], t.get("lastError")) for key, t in targets.items() if t["health"] != "up"}
        if expected <= set(targets) and not down:
            break
        assert time.monotonic() < deadline, f"missing: {sorted(expected - set(targets))}; not up: {down}"
        time.sleep(5)
    assert set(targets) == expected, f"unexpected targets: {sorted(set(targets) - expected)}"
    # node_exporter answers the monitoring server only: a web server is refused, the internet too.
    assert demo.tcp(webs[0], DB_PRIVATE_IP, 9100) == "refused"
    assert tcp_from_controller(servers[DB], 9100) != "open"
    assert f"Monitoring: Prometheus http://{DB_PRIVATE_IP}:9090" in minimal.output


def test_status_lists_every_resource_its_cost_health_and_a_server_made_by_hand(demo, minimal, tmp_path):
    from hcloud.images import Image                 # pylint: disable=import-outside-toplevel
    from hcloud.locations import Location           # pylint: disable=import-outside-toplevel
    from hcloud.server_types import ServerType      # pylint: disable=import-outside-toplevel
    api = demo.api()
    hand = api.servers.create(name="made-by-hand", server_type=ServerType(name="cx23"), image=Image(name="debian-12"),
                              location=Location(name="nbg1")).server
    try:
        run = demo.playbook("status.yml", "-e", "web_load_balancer=true", "-e", f"status_dir={tmp_path}")
    finally:
        api.servers.delete(hand)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    tasks = {t["task"]["name"]: t["hosts"]["localhost"] for play in json.loads(run.stdout)["plays"] for t in play["tasks"]}
    info = tasks["Read the stack, its cost, drift and health (reads only)"]
    assert info["drift"]["outside"] == [{"type": "server", "name": "made-by-hand"}], info["drift"]
    assert info["in_sync"], info["drift"]
    # health from the load balancer's own checks of the real web servers, and every server running
    assert {t["target"] for t in info["health"]["targets"] if t["healthy"]} == {f"{STACK}-web-{i}" for i in (1, 2, 3)}
    assert info["health"]["healthy"] and len(info["health"]["servers"]) == 4
    # the cost is the site.yml summary's (both from /pricing through module_utils/pricing.py)
    summary = re.search(r"Monthly cost \(the API's prices\): (\d+\.\d\d) (\w+)", minimal.output)
    assert "%.2f" % float(info["cost"]["monthly"]["gross"]) == summary.group(1), (info["cost"], summary.group(0))
    shown = "\n".join(tasks["Show the status"]["msg"])
    assert "## Servers" in shown and "## Load balancers" in shown and "| made-by-hand |" in shown
    # the health of each service from Prometheus, asked on the db server (the minimal scenario's monitoring host,
    # where Prometheus listens on the private IP only): every server's node exporter and the postgres exporter up
    prometheus = info["health"]["prometheus"]
    assert prometheus["available"], prometheus["problem"]
    assert (prometheus["host"], prometheus["url"]) == (DB, f"http://{DB_PRIVATE_IP}:9090")
    up = {(s["service"], s["server"]) for s in prometheus["services"] if s["up"]}
    assert {("node", name) for name in demo.servers()} | {("postgres", DB)} <= up, prometheus["services"]
    assert not prometheus["down"] and prometheus["healthy"], prometheus["down"]
    assert "## Services (Prometheus)" in shown and f"| {DB} | postgres | up |" in shown, shown
    assert tasks["Ask Prometheus for its targets on the monitoring host (reads only)"]["changed"] is False
    # the report's diagram lists every resource of the project (Mermaid, DOT and the SVG Graphviz rendered)
    report = (tmp_path / "status.md").read_text()
    diagrams = {"mermaid": report.split("```mermaid", 1)[1], "dot": (tmp_path / "status.dot").read_text(),
                "svg": html.unescape((tmp_path / "status.svg").read_text())}
    names = [r.name for r in api.servers.get_all()] + [r.name for r in api.networks.get_all()] + \
        [r.name for r in api.volumes.get_all()] + [r.name for r in api.load_balancers.get_all()] + \
        [r.name for r in api.firewalls.get_all()] + [r.name for r in api.ssh_keys.get_all()] + ["made-by-hand"]
    assert len(names) >= 10
    for name in names:
        for kind, text in diagrams.items():
            assert name in text, (name, kind)


def test_scaling_the_web_tier_from_3_to_4_through_ansible_runner(demo, minimal):
    # site.yml through ansible-runner, as AWX / AAP run it (issue 15), with web_servers 3 -> 4
    run = demo.site_through_runner({"web_load_balancer": True, "web_servers": 4})
    output = run.stdout.read()
    assert (run.status, run.rc) == ("successful", 0), output[-3000:]
    new = f"{STACK}-web-4"
    assert new in demo.servers() and new in run.stats["ok"], run.stats
    assert not run.stats["failures"] and not run.stats["dark"], run.stats
    lb = demo.load_balancer_ip()
    served_by = set()
    for _ in range(40):                       # round robin over 4 targets
        status, _, body = http_get(f"http://{lb}/api/visit")
        assert status == 200, body
        visit = json.loads(body)
        assert visit["database"]["server"] == DB_PRIVATE_IP, visit
        served_by.add(visit["web"])
        if len(served_by) == 4:
            break
    assert served_by == {f"{STACK}-web-{i}" for i in (1, 2, 3, 4)}, served_by
    # The app server lets the new server in (the host firewall's app opening follows the web group);
    # the database refuses it, as it refuses every web server.
    assert demo.tcp(new, DB_PRIVATE_IP, 8080) == "open"
    assert demo.tcp(new, DB_PRIVATE_IP, 5432) != "open"
    # Prometheus scrapes the new server (its node exporter and nginx exporter), the same run
    deadline = time.monotonic() + 120
    while True:
        targets = prometheus_targets(demo)
        health = {job: targets.get((job, new), {}).get("health") for job in ("node", "nginx")}
        if set(health.values()) == {"up"}:
            break
        assert time.monotonic() < deadline, (health, sorted(targets))
        time.sleep(5)


@pytest.mark.e2e_full
def test_a_change_rolls_through_and_scaling_down_drains_first_while_the_load_balancer_serves(demo, minimal, tmp_path):
    name = "demo.autoscale.test"
    ca, certificate, key = local_ca_certificate(tmp_path, name)
    # The load balancer talks HTTP to the web servers over the private network; clients that come
    # to a web server directly get HTTPS with the certificate (no redirect, so the LB's HTTP stays).
    change = {"web_servers": 3, "web_load_balancer": True, "web_response_headers": {"X-Release": "2"},
              "web_tls": "certificate", "web_tls_certificate": certificate, "web_tls_private_key": key,
              "web_tls_redirect_http": False, "web_server_names": [name]}
    (tmp_path / "change.json").write_text(json.dumps(change))
    lb = demo.load_balancer_ip()
    poller = Poller(f"http://{lb}/")
    poller.start()
    try:
        run = demo.up("-e", f"@{tmp_path / 'change.json'}")
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
        status, headers, body = https_get(servers[web], name, ca, "/api/visit")
        assert status == 200 and headers.get("X-Release") == "2", (web, status, headers)
        assert headers.get("Strict-Transport-Security", "").startswith("max-age="), headers
        assert json.loads(body)["database"]["server"] == DB_PRIVATE_IP
    # Every answer after the run comes from the three servers left.
    served = {poller.results[i][2] for i in range(-20, 0)}
    assert served <= {f"{STACK}-web-{i}" for i in (1, 2, 3)}, served
