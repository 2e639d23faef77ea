# Copyright (c) 2026, autoscale.hetzner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The monitoring stack on the role lab, shared by the monitoring tests (and the benchmark):

- `Webhook`: Alertmanager's test receiver, an HTTP server on the controller at the lab's public
  gateway (lab.controller_ip, the host side of the slot's public bridge, which every lab machine
  reaches), recording what Alertmanager posts;
- `monitored(lab)`: playbooks/monitoring.yml on the lab's hosts (after the security baseline and the
  postgresql role's primary + standby on db-1/db-2, shared with test_postgresql.py, and the web and
  app roles on web-1 and app-1, shared with test_web_app.py: the load balancer answers through them) with short
  intervals and the webhook as the only receiver; the second run follows at once;
- `Prometheus`: its HTTP API, asked on the monitoring host (it listens on the private IP only);
- `ApiRelay`: the local cloud's API where the lab's machines reach it (it listens on the controller's
  loopback): the node_exporter role's stack cost collector on the monitoring host reads the lab stack's
  cost through it with the default project's read-only token, as it reads api.hetzner.cloud in production.
"""
from __future__ import annotations

import json
import shlex
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from lab import ROOT, hardened, web_app  # noqa: F401  (fixtures)
from postgresql_lab import PRIMARY, STANDBY, postgres  # noqa: F401  (fixture)

MON = "rolelab-mon-1"
# Short enough for tests, as a user would set them for a quick rehearsal; production defaults are
# in the roles (30s scrapes, HostDown after 2m).
SCRAPE, EVALUATION, HOST_DOWN_FOR, DISK_FOR, REPLICATION_FOR = "5s", "5s", "15s", "15s", "15s"
LAG_SECONDS, LAG_FOR = 10, "15s"     # PostgresReplicationLagging: replay this many seconds behind, for
OVER_BUDGET_FOR = "15s"              # StackOverBudget
# The lab stack's budget for the collector: far above its cost (StackOverBudget stays quiet until a test lowers it).
HIGH_BUDGET = 100000


class Webhook:
    """Alertmanager's webhook receiver: every POST is kept with the time it arrived."""

    def __init__(self, host: str):
        self.events: list[tuple[float, dict]] = []
        self._lock = threading.Condition()
        webhook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802  (http.server's name)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with webhook._lock:
                    webhook.events.append((time.monotonic(), json.loads(body or b"{}")))
                    webhook._lock.notify_all()
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.url = f"http://{host}:{self.server.server_address[1]}/alerts"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def alerts(self, since: float = 0.0):
        """(arrival time, alert) of every alert posted since a time.monotonic() value."""
        with self._lock:
            return [(t, alert) for t, payload in self.events if t >= since for alert in payload.get("alerts", [])]

    def wait_for(self, status: str, since: float, timeout: float, **labels) -> tuple[float, dict] | None:
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                for t, alert in self.alerts(since):
                    if alert.get("status") == status and all(alert["labels"].get(k) == v for k, v in labels.items()):
                        return t, alert
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._lock.wait(min(left, 1.0))

    def close(self):
        self.server.shutdown()


class ApiRelay:
    """A TCP relay from the controller's address on the lab's bridge (which the machines reach) to the local
    cloud's API on the controller's loopback: byte for byte, so the collector talks HTTP to the API itself."""

    def __init__(self, host: str, endpoint: str):
        target = endpoint.split("//", 1)[1].split("/", 1)[0]
        self.target = (target.rsplit(":", 1)[0], int(target.rsplit(":", 1)[1]))
        self.server = socket.create_server((host, 0))
        self.endpoint = f"http://{host}:{self.server.getsockname()[1]}/v1"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=10)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pipe(source, sink):
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self):
        self.server.close()


def monitoring_vars(webhook_url: str, probe_urls: list[str], api_endpoint: str = "", readonly_token: str = "") -> dict:
    return {
        "prometheus_blackbox_targets": probe_urls,
        # Every lab host but the fresh ones (which no role converges).
        "monitoring_exporter_hosts": "hcloud:!fresh",
        "prometheus_node_exporter_hosts": "{{ groups['hcloud'] | difference(groups['fresh'] | default([])) }}",
        # Grafana's APT repository is out of reach of the lab's machines: the role says so and skips.
        "grafana_when_unreachable": "skip", "grafana_admin_password": "lab-grafana-Passw0rd",
        "prometheus_scrape_interval": SCRAPE, "prometheus_scrape_timeout": "4s",
        "prometheus_evaluation_interval": EVALUATION,
        "prometheus_alert_host_down_for": HOST_DOWN_FOR, "prometheus_alert_disk_for": DISK_FOR,
        "prometheus_alert_replication_broken_for": REPLICATION_FOR,
        "prometheus_alert_replication_lag_seconds": LAG_SECONDS, "prometheus_alert_replication_lag_for": LAG_FOR,
        "alertmanager_receivers": [{"name": "lab-webhook", "webhook_configs": [{"url": webhook_url, "send_resolved": True}]}],
        "alertmanager_route": {"receiver": "lab-webhook", "group_by": ["alertname", "instance"],
                               "group_wait": "1s", "group_interval": "5s", "repeat_interval": "1h"},
        # The stack's cost on the monitoring host (node_exporter's stack_cost collector): the lab stack
        # (hetzner_stack.name, rolelab) read with the default project's read-only token.
        "node_exporter_stack_cost_token": readonly_token, "node_exporter_stack_cost_endpoint": api_endpoint,
        "node_exporter_stack_cost_budget": HIGH_BUDGET, "prometheus_alert_over_budget_for": OVER_BUDGET_FOR,
    }


def load_balancer_url(lab) -> str:
    lb = lab.api().load_balancers.get_by_name("rolelab-lb")
    return f"http://{lb.public_net.ipv4.ip}/"


def serve_http_on_the_web_tier(lab, hosts):
    """A plain HTTP server on port 80 of the bench lab's web hosts, which the load balancer's health
    check and the blackbox probe reach (the bench measures Prometheus, not the web tier). The role lab
    runs the web role instead (lab.web_app): nginx needs port 80 there."""
    for host in hosts:
        lab.ssh(host, "systemctl is-active -q lab-web || { mkdir -p /srv/lab-web && echo ok > /srv/lab-web/index.html && "
                      "systemd-run --unit=lab-web -p Restart=always python3 -m http.server 80 --directory /srv/lab-web; }")


class Monitoring:
    def __init__(self, lab, webhook: Webhook, variables: dict, first, second):
        self.lab, self.webhook, self.vars, self.first, self.second = lab, webhook, variables, first, second
        self.address = f"{lab.hosts[MON].private_ip}:9090"

    def api(self, path: str, **params) -> dict:
        """GET Prometheus's API on the monitoring host; the JSON answer."""
        args = " ".join(f"--data-urlencode {shlex.quote(f'{k}={v}')}" for k, v in params.items())
        proc = self.lab.ssh(MON, f"curl -sfG --max-time 20 {args} http://{self.address}{path}")
        return json.loads(proc.stdout)

    def query(self, promql: str) -> list:
        return self.api("/api/v1/query", query=promql)["data"]["result"]

    def targets(self) -> list[dict]:
        return self.api("/api/v1/targets", state="active")["data"]["activeTargets"]

    def alertmanager_alerts(self, alertname: str) -> list[dict]:
        """The alerts Alertmanager holds now under this name (its API v2, on the monitoring host)."""
        query = shlex.quote(f'filter=alertname="{alertname}"')
        proc = self.lab.ssh(MON, f"curl -sfG --max-time 20 --data-urlencode {query} "
                                 f"http://{self.lab.hosts[MON].private_ip}:9093/api/v2/alerts")
        return json.loads(proc.stdout)

    def playbook(self, **kwargs):
        return self.lab.playbook(ROOT / "playbooks" / "monitoring.yml", limit="hcloud:!fresh",
                                 extra_vars=self.vars, **kwargs)


@pytest.fixture(scope="session")
def monitored(lab, hardened, postgres, web_app):
    def converge():
        webhook = lab.once("monitoring-webhook", lambda: Webhook(lab.controller_ip))
        relay = lab.once("api-relay", lambda: ApiRelay(lab.controller_ip, lab.cloud.endpoint))
        variables = monitoring_vars(webhook.url, [load_balancer_url(lab)], relay.endpoint, lab.cloud.readonly_token)
        monitoring = Monitoring(lab, webhook, variables, None, None)
        monitoring.first = monitoring.playbook().assert_ok()
        monitoring.second = monitoring.playbook()
        return monitoring
    return lab.once("monitoring", converge)

