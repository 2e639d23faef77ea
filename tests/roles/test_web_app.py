# Copyright (c) 2026, autoscale.hetzner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""web and app on the lab, proven from outside: a request to a web server's public IP reaches the
app server over the private network; the app's port answers the web tier only (its own opening
through the host firewall's contract); a second run and a check run change nothing; check mode on
fresh hosts completes and changes nothing.

The app runs without a database here (app_database: false: the demo app keeps its visits in
memory); PostgreSQL behind it is the postgresql role's business.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from lab import fresh, hardened, http_get, lab, skip_reason, web_app  # noqa: F401  (fixtures)
from lab import WEB_APP_HOSTS, WEB_APP_PLAYBOOK as PLAYBOOK, WEB_APP_VARS as VARS

pytestmark = pytest.mark.skipif(skip_reason() is not None, reason=skip_reason() or "")
(WEB, APP), DB = WEB_APP_HOSTS, "rolelab-db-1"
# Not the host firewall's tier port 8080: the app role opens its own port to the web tier, and
# test_host_firewall's stand-in service may still listen on 8080.
APP_PORT = VARS["app_port"]


@pytest.fixture(scope="module")
def converged(web_app):
    return web_app


def test_a_request_to_a_web_server_reaches_the_app_over_the_private_network(lab, converged):
    status, headers, body = http_get(f"http://{lab.ip(WEB)}/api/visit")
    assert status == 200, (status, body[:300])
    visit = json.loads(body)
    assert (visit["web"], visit["app"], visit["database"]) == (WEB, APP, None), visit
    assert headers.get("X-Frame-Options") == "DENY" and "nosniff" in headers.get("X-Content-Type-Options", ""), headers
    status, _, _ = http_get(f"http://{lab.ip(WEB)}/healthz")
    assert status == 200
    # The app answers the web tier; the db tier and the outside are refused on the same listener.
    app_ip = lab.hosts[APP].private_ip
    assert lab.tcp(WEB, app_ip, APP_PORT) == "open"
    assert lab.tcp(DB, app_ip, APP_PORT) == "refused"
    assert lab.tcp(None, lab.ip(APP), APP_PORT) != "open"


def test_a_second_run_and_a_check_run_change_nothing(lab, converged):
    lab.playbook(PLAYBOOK, limit=f"{WEB},{APP}", extra_vars=VARS).assert_unchanged()
    lab.playbook(PLAYBOOK, limit=f"{WEB},{APP}", extra_vars=VARS, check=True).assert_unchanged()


def test_check_mode_on_fresh_hosts_completes_and_changes_nothing(lab, fresh, converged):
    web, app = fresh[0].name, fresh[1].name
    run = lab.playbook(PLAYBOOK, limit=f"{web},{app}", check=True,
                       extra_vars={**VARS, "lab_web_hosts": web, "lab_app_hosts": app})
    run.assert_ok()
    for name in (web, app):
        assert run.recap[name]["changed"] > 0, f"{name}: a check run on a fresh host reports no change"
    assert lab.ssh(web, "command -v nginx || echo none").stdout.strip() == "none"
    assert lab.ssh(app, "test -e /etc/systemd/system/autoscale-demo.service || echo none").stdout.strip() == "none"



def test_the_exporter_comes_back_after_systemd_gave_up_on_it(lab, converged):
    # Debian's package starts the exporter before the role configures it: it exits at once, and after
    # five quick failures systemd refuses every start for StartLimitIntervalSec (10 s). A fast host runs
    # the role's start within that window (CI did). A longer window here makes the case certain.
    unit = "prometheus-nginx-exporter"
    dropin = f"/etc/systemd/system/{unit}.service.d/test-start-limit.conf"
    lab.ssh(WEB, f"mkdir -p {Path(dropin).parent} && printf '[Unit]\\nStartLimitIntervalSec=600\\n' > {dropin} && "
                 f"systemctl daemon-reload && echo 'ARGS=\"--nginx.scrape-uri=http://127.0.0.1:1/stub_status\"' "
                 f"> /etc/default/{unit} && systemctl restart {unit}; sleep 5")
    try:
        assert lab.ssh(WEB, f"systemctl is-failed {unit}", check=False).stdout.strip() == "failed"
        # The role restores its configuration, restarts the exporter and asks it for nginx_up 1.
        lab.playbook(PLAYBOOK, limit=f"{WEB},{APP}", extra_vars=VARS).assert_ok()
        assert lab.ssh(WEB, f"systemctl is-active {unit}", check=False).stdout.strip() == "active"
    finally:
        lab.ssh(WEB, f"rm -f {dropin} && systemctl daemon-reload", check=False)


def test_haproxy_as_the_database_router_is_refused_without_patroni_before_anything_changes(lab, converged):
    # app_database_router: haproxy follows Patroni's leader; this lab's database servers run no Patroni (and
    # the playbook runs no postgresql role, so there is no postgresql_info): the preflight says so and stops.
    run = lab.playbook(PLAYBOOK, limit=APP, extra_vars={**VARS, "app_database": True, "app_database_password": "Lab-Passw0rd-1",
                                                         "app_database_router": "haproxy"})
    assert run.rc != 0 and "app_database_router: haproxy asks Patroni's REST API" in run.output, run.tail()
    assert run.recap[APP]["changed"] == 0
    assert lab.ssh(APP, "command -v haproxy || echo none").stdout.strip() == "none"
