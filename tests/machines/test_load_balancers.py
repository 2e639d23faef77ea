"""Load balancers carry real traffic (HAProxy in a namespace of its own), through the API and Ansible.

Three servers run a web server (python3 -m http.server: / answers the hostname, /healthz "ok").
A load balancer made with autoscale.hetzner.load_balancer (http service, /healthz check every 3 s,
2 retries, label selector role=web) spreads requests over the two web servers; stopping one turns
its target unhealthy in the API within interval x retries and every request goes to the other; the
third server given the label starts receiving requests. A second load balancer (hetzner.hcloud's
modules) in the network with use_private_ip works the same over the private network (spread, health,
label changes), also while a Cloud Firewall closes port 80
on the servers' public IPs (which the public load balancer then meets). A change reloads HAProxy
without dropping an established download; sticky sessions and the PROXY protocol reach the targets.
Root on Linux only.
"""
from __future__ import annotations

import collections
import socket
import subprocess
import threading
import time
import urllib.request

import pytest

from machines_helpers import (  # noqa: F401  (ssh, ssh_key: fixtures)
    API, down, http_get, machines_cloud, playbook, skip_reason, ssh, ssh_key, until)

if skip_reason() is None:
    from localcloud.backends.nspawn.slots import Slot, recorded_slot
    from localcloud.testing import self_signed_certificate

pytestmark = pytest.mark.skipif(skip_reason() is not None, reason=skip_reason() or "")

WEB = ("mkdir -p /srv/www && hostname > /srv/www/index.html && echo ok > /srv/www/healthz "
       "&& head -c 3145728 /dev/zero > /srv/www/big "
       "&& systemd-run --unit web python3 -m http.server 80 --directory /srv/www")
CHECK = {"protocol": "http", "port": 80, "interval": 3, "timeout": 2, "retries": 2,
         "http": {"path": "/healthz", "status_codes": ["2??"]}}


@pytest.fixture(scope="module")
def lc(tmp_path_factory, ssh, ssh_key):
    state = tmp_path_factory.mktemp("lb-state")
    cloud = machines_cloud(state)
    try:
        api = API(cloud)
        key = api("POST", "/ssh_keys", {"name": "lb", "public_key": ssh_key.with_suffix(".pub").read_text()})
        net = api("POST", "/networks", {"name": "lb-net", "ip_range": "10.56.0.0/16", "subnets": [
            {"type": "cloud", "network_zone": "eu-central", "ip_range": "10.56.1.0/24"}]})["network"]
        labels = {"lb-1": "web", "lb-2": "web", "lb-3": "spare"}
        servers = {}
        for name, role in labels.items():
            s = api.server(name, key["ssh_key"]["id"], labels={"role": role}, networks=[net["id"]])
            servers[name] = {"id": s["id"], "ip": s["public_net"]["ipv4"]["ip"], "private": s["private_net"][0]["ip"]}
        for s in servers.values():
            ssh.wait(s["ip"])
            ssh.run(s["ip"], WEB)
        yield cloud, api, servers
    finally:
        cloud.stop()
        result = down(state)
        assert result.returncode == 0, result.stdout + result.stderr


def lb(api, name):
    return api("GET", f"/load_balancers?name={name}")["load_balancers"][0]


def health(api, name) -> dict[int, str]:
    """server id -> health of the port-80 service, as the API reports it."""
    found = {}
    for target in lb(api, name)["targets"]:
        for t in target.get("targets", [target]):
            status = next(h["status"] for h in t["health_status"] if h["listen_port"] == 80)
            found[t["server"]["id"]] = status
    return found


def spread(url: str, n: int = 20) -> collections.Counter:
    return collections.Counter(http_get(url)[1].strip() for _ in range(n))


def test_http_service_spreads_follows_health_and_labels(lc, ssh, tmp_path):
    cloud, api, servers = lc
    playbook(cloud, tmp_path, f"""
    - autoscale.hetzner.load_balancer:
        name: web-lb
        load_balancer_type: lb11
        location: fsn1
        algorithm: round_robin
        services:
          - protocol: http
            listen_port: 80
            destination_port: 80
            health_check: {CHECK}
        targets:
          - type: label_selector
            label_selector: role=web
""")
    ip = lb(api, "web-lb")["public_net"]["ipv4"]["ip"]
    web1, web2, spare = (servers[n]["id"] for n in ("lb-1", "lb-2", "lb-3"))
    until(lambda: health(api, "web-lb") == {web1: "healthy", web2: "healthy"}, 20,
          message=f"both web servers should become healthy: {health(api, 'web-lb')}")
    assert spread(f"http://{ip}/") == {"lb-1": 10, "lb-2": 10}

    ssh.run(servers["lb-2"]["ip"], "systemctl stop web")
    stopped = time.monotonic()
    until(lambda: health(api, "web-lb")[web2] == "unhealthy", 20, interval=0.1)
    took = time.monotonic() - stopped
    print(f"target unhealthy in the API {took:.1f} s after its web server stopped (interval 3 s x retries 2)")
    assert took <= CHECK["interval"] * CHECK["retries"] + 2
    assert health(api, "web-lb")[web1] == "healthy"
    assert spread(f"http://{ip}/") == {"lb-1": 20}

    api("PUT", f"/servers/{spare}", {"labels": {"role": "web"}})
    until(lambda: "lb-3" in spread(f"http://{ip}/", 4), 20, message="the newly labelled server gets no requests")
    ssh.run(servers["lb-2"]["ip"], "systemd-run --unit web-again python3 -m http.server 80 --directory /srv/www")
    until(lambda: set(health(api, "web-lb").values()) == {"healthy"}, 20)
    assert set(spread(f"http://{ip}/", 30)) == {"lb-1", "lb-2", "lb-3"}


def test_private_targets_and_firewalls(lc, ssh, tmp_path):
    cloud, api, servers = lc
    # made with hetzner.hcloud's modules (the public one above with this collection's)
    playbook(cloud, tmp_path, f"""
    - hetzner.hcloud.load_balancer:
        name: private-lb
        load_balancer_type: lb11
        location: fsn1
    - hetzner.hcloud.load_balancer_network:
        load_balancer: private-lb
        network: lb-net
    - hetzner.hcloud.load_balancer_service:
        load_balancer: private-lb
        protocol: http
        listen_port: 80
        destination_port: 80
        health_check: {CHECK}
    - hetzner.hcloud.load_balancer_target:
        load_balancer: private-lb
        type: label_selector
        label_selector: role=web
        use_private_ip: true
""")
    private = lb(api, "private-lb")
    ip, private_ip = private["public_net"]["ipv4"]["ip"], private["private_net"][0]["ip"]
    web1, spare = servers["lb-1"]["id"], servers["lb-3"]["id"]
    until(lambda: set(health(api, "private-lb").values()) == {"healthy"}, 20)
    assert set(spread(f"http://{ip}/")) == {"lb-1", "lb-2", "lb-3"}
    # the load balancer reaches its targets from its private IP, over the network
    log = ssh.run(servers["lb-1"]["ip"], "journalctl -u web --no-pager -o cat").stdout
    assert f"{private_ip} - -" in log, log[-600:]
    # a server in the network reaches the load balancer's private IP
    out = ssh.run(servers["lb-3"]["ip"], f"curl -s -m 5 http://{private_ip}/").stdout.strip()
    assert out in {"lb-1", "lb-2", "lb-3"}

    # health checks over the private network: a stopped web server turns unhealthy in time
    ssh.run(servers["lb-1"]["ip"], "systemctl stop web")
    stopped = time.monotonic()
    until(lambda: health(api, "private-lb")[web1] == "unhealthy", 20, interval=0.1)
    assert time.monotonic() - stopped <= CHECK["interval"] * CHECK["retries"] + 2
    assert set(spread(f"http://{ip}/")) == {"lb-2", "lb-3"}
    ssh.run(servers["lb-1"]["ip"], "systemd-run --unit web-back python3 -m http.server 80 --directory /srv/www")
    until(lambda: set(health(api, "private-lb").values()) == {"healthy"}, 20)
    # the label selector follows a label taken away and given back
    # (the API lists the targets at once, HAProxy follows with its reload, as Hetzner's does)
    api("PUT", f"/servers/{spare}", {"labels": {"role": "spare"}})
    until(lambda: spare not in health(api, "private-lb"), 20, message="the unlabelled server is still a target")
    until(lambda: set(spread(f"http://{ip}/", 6)) == {"lb-1", "lb-2"}, 20,
          message="the unlabelled server still gets requests")
    assert set(spread(f"http://{ip}/")) == {"lb-1", "lb-2"}
    api("PUT", f"/servers/{spare}", {"labels": {"role": "web"}})
    until(lambda: set(health(api, "private-lb").values()) == {"healthy"} and spare in health(api, "private-lb"), 20)
    until(lambda: "lb-3" in spread(f"http://{ip}/", 6), 20, message="the labelled server gets no requests again")

    # Cloud Firewalls do not filter private traffic: only ssh open on the public IPs
    fw = api("POST", "/firewalls", {"name": "ssh-only", "rules": [
        {"direction": "in", "protocol": "tcp", "port": "22", "source_ips": ["0.0.0.0/0"]}],
        "apply_to": [{"type": "label_selector", "label_selector": {"selector": "role=web"}}]})
    api.wait(*fw["actions"])
    until(lambda: set(health(api, "web-lb").values()) == {"unhealthy"}, 20,
          message="the public load balancer meets the firewall on its targets' public IPs")
    assert http_get(f"http://{lb(api, 'web-lb')['public_net']['ipv4']['ip']}/")[0] == 503
    assert set(health(api, "private-lb").values()) == {"healthy"}
    assert set(spread(f"http://{ip}/")) == {"lb-1", "lb-2", "lb-3"}
    api.wait(*api("POST", f"/firewalls/{fw['firewall']['id']}/actions/remove_from_resources",
                  {"remove_from": [{"type": "label_selector", "label_selector": {"selector": "role=web"}}]})["actions"])
    api("DELETE", f"/firewalls/{fw['firewall']['id']}")

    # the safety rules hold in the load balancer's namespace too: no way out of this host
    netns = Slot(recorded_slot(cloud.state)).netns("lb-", private["id"])
    routes = subprocess.run(["ip", "-n", netns, "route"], capture_output=True, text=True).stdout
    assert "default" not in routes and "10.56.0.0/16 via 10.56.0.1" in routes
    out = subprocess.run(["ip", "netns", "exec", netns, "ip", "route", "get", "1.1.1.1"], capture_output=True, text=True)
    assert out.returncode != 0 and "unreachable" in out.stderr


def test_reload_keeps_established_connections(lc, tmp_path):
    cloud, api, servers = lc
    current = lb(api, "private-lb")
    ip = current["public_net"]["ipv4"]["ip"]
    download = subprocess.Popen(["curl", "-s", "--limit-rate", "600k", "-o", "/dev/null", "-w", "%{http_code} %{size_download}",
                                 f"http://{ip}/big"], stdout=subprocess.PIPE, text=True)
    failures, done = [], threading.Event()

    def short_requests():
        while not done.is_set():
            status = http_get(f"http://{ip}/")[0]
            if status != 200:
                failures.append(status)
            time.sleep(0.02)
    poller = threading.Thread(target=short_requests)
    poller.start()
    time.sleep(1)
    api.wait(api("POST", f"/load_balancers/{current['id']}/actions/change_algorithm", {"type": "least_connections"})["action"])
    api.wait(api("POST", f"/load_balancers/{current['id']}/actions/add_service",
                 {"protocol": "tcp", "listen_port": 8080, "destination_port": 80,
                  "health_check": {"protocol": "tcp", "port": 80, "interval": 3, "timeout": 2, "retries": 2}})["action"])
    assert http_get(f"http://{ip}:8080/healthz")[1].strip() == "ok"
    out, _ = download.communicate(timeout=60)
    done.set()
    poller.join()
    assert out == "200 3145728", "the download that ran across two reloads must complete"
    assert failures == []


def test_sticky_sessions_and_proxy_protocol(lc, ssh):
    cloud, api, servers = lc
    current = lb(api, "private-lb")
    ip = current["public_net"]["ipv4"]["ip"]
    api.wait(api("POST", f"/load_balancers/{current['id']}/actions/update_service",
                 {"listen_port": 80, "http": {"sticky_sessions": True, "cookie_name": "HCLBSTICKY"}})["action"])
    status, first, headers = http_get(f"http://{ip}/")
    cookie = headers.get("set-cookie", "")
    assert status == 200 and cookie.startswith("HCLBSTICKY="), headers
    req = lambda: urllib.request.urlopen(urllib.request.Request(f"http://{ip}/", headers={"Cookie": cookie.split(";")[0]}),
                                         timeout=3).read().decode().strip()
    assert {req() for _ in range(10)} == {first.strip()}

    # PROXY protocol: the target reads the header line the load balancer sends first
    echo = ("cat > /srv/echo.py <<'EOF'\n"
            "import socket\n"
            "s = socket.socket()\n"
            "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
            "s.bind(('0.0.0.0', 9000))\n"
            "s.listen(8)\n"
            "while True:\n"
            "    c, _ = s.accept()\n"
            "    c.sendall(c.recv(200).split(b'\\r\\n')[0] + b'\\n')\n"
            "    c.close()\n"
            "EOF\n"
            "systemd-run --unit proxyecho python3 /srv/echo.py")
    for name in ("lb-1", "lb-2", "lb-3"):
        ssh.run(servers[name]["ip"], echo)
    api.wait(api("POST", f"/load_balancers/{current['id']}/actions/add_service",
                 {"protocol": "tcp", "listen_port": 9000, "destination_port": 9000, "proxyprotocol": True,
                  "health_check": {"protocol": "tcp", "port": 9000, "interval": 3, "timeout": 2, "retries": 2}})["action"])
    with socket.create_connection((ip, 9000), timeout=5) as conn:
        line = conn.recv(200).decode()
    controller = Slot(recorded_slot(cloud.state)).host_ip        # this host on the cloud's public bridge
    assert line.startswith(f"PROXY TCP4 {controller} {ip} "), line


def test_https_service_terminates_tls_with_its_certificate(lc):
    import ssl
    cloud, api, servers = lc
    chain, key = self_signed_certificate("shop.example.com")
    cert = api("POST", "/certificates", {"name": "shop", "type": "uploaded", "certificate": chain, "private_key": key})
    made = api("POST", "/load_balancers", {
        "name": "tls-lb", "load_balancer_type": "lb11", "location": "fsn1",
        "services": [{"protocol": "https", "listen_port": 443, "destination_port": 80,
                      "http": {"certificates": [cert["certificate"]["id"]], "redirect_http": True},
                      "health_check": CHECK}],
        "targets": [{"type": "label_selector", "label_selector": {"selector": "role=web"}}]})
    api.wait(made["action"])
    ip = made["load_balancer"]["public_net"]["ipv4"]["ip"]
    context = ssl.create_default_context(cadata=chain)
    context.check_hostname = False          # the test connects by IP; the chain must still verify
    request = urllib.request.Request(f"https://{ip}/", headers={"Host": "shop.example.com"})
    body = until(lambda: urllib.request.urlopen(request, context=context, timeout=3).read().decode().strip(), 20)
    assert body in {"lb-1", "lb-2", "lb-3"}
    with socket.create_connection((ip, 443), timeout=5) as raw, \
            context.wrap_socket(raw, server_hostname="shop.example.com") as tls:
        served = ssl.DER_cert_to_PEM_cert(tls.getpeercert(binary_form=True))
    assert served.split() == chain.split()
    import http.client
    plain = http.client.HTTPConnection(ip, 80, timeout=5)
    plain.request("GET", "/some/path", headers={"Host": "shop.example.com"})
    answer = plain.getresponse()
    assert answer.status == 301 and answer.getheader("location") == "https://shop.example.com/some/path"
