"""What a server sees of its addresses and size, as on Hetzner, through the API and Ansible.

- Private network: the server's IP as a /32 on enp7s0 (MAC 86:00:00:..., MTU 1450) with the gateway
  on-link and the network's range via the gateway; members reach each other through the gateway
  (their neighbour table holds only the gateway), an alias IP the OS adds is reachable.
- Floating IP (hetzner.hcloud.floating_ip, then autoscale.hetzner.floating_ip to move it), added to
  the interface of both candidates as Hetzner recommends: it answers on the server it is assigned
  to, from this host and from another machine, and moving it takes effect within 2 s.
- Primary IP: unassigned and a new one assigned while the server is off, the machine comes back
  with the new public address.
- Size: Ansible facts of a cx23 show 2 vCPUs (as far as the host has them) and 4 GiB; a cpx12
  shows 1 vCPU and 2 GiB, and a change to cx23 (hetzner.hcloud.server) gives it 2 vCPUs and 4 GiB after its next boot.
Root on Linux only.
"""
from __future__ import annotations

import json
import os
import subprocess

import pytest

from machines_helpers import (  # noqa: F401  (ssh, ssh_key: fixtures)
    API, BIN, SSH_OPTS, down, http_get, machines_cloud, playbook, skip_reason, ssh, ssh_key, tcp_open, until)

pytestmark = pytest.mark.skipif(skip_reason() is not None, reason=skip_reason() or "")
HOST_CPUS = len(os.sched_getaffinity(0))


@pytest.fixture(scope="module")
def lc(tmp_path_factory, ssh, ssh_key):
    state = tmp_path_factory.mktemp("addr-state")
    cloud = machines_cloud(state)
    try:
        api = API(cloud)
        key = api("POST", "/ssh_keys", {"name": "addr", "public_key": ssh_key.with_suffix(".pub").read_text()})
        net = api("POST", "/networks", {"name": "addr-net", "ip_range": "10.57.0.0/16", "subnets": [
            {"type": "cloud", "network_zone": "eu-central", "ip_range": "10.57.1.0/24"}]})["network"]
        servers = {}
        for name, server_type in (("ad-a", "cx23"), ("ad-b", "cx23"), ("ad-c", "cpx12")):
            s = api.server(name, key["ssh_key"]["id"], server_type=server_type, networks=[net["id"]])
            servers[name] = {"id": s["id"], "ip": s["public_net"]["ipv4"]["ip"], "private": s["private_net"][0]["ip"],
                             "mac": s["private_net"][0]["mac_address"]}
        for s in servers.values():
            ssh.wait(s["ip"])
        yield cloud, api, servers, net
    finally:
        cloud.stop()
        result = down(state)
        assert result.returncode == 0, result.stdout + result.stderr


def test_private_interface_as_on_hetzner(lc, ssh):
    cloud, api, servers, net = lc
    a, b = servers["ad-a"], servers["ad-b"]
    link = ssh.run(a["ip"], "ip -4 -o addr show enp7s0; ip -o link show enp7s0; ip -4 route").stdout
    assert f"inet {a['private']}/32 " in link
    assert f"link/ether {a['mac']} " in link and "mtu 1450" in link
    assert "10.57.0.1 dev enp7s0 scope link" in link and "10.57.0.0/16 via 10.57.0.1 dev enp7s0" in link
    assert "default via" not in ssh.run(a["ip"], "ip -4 route").stdout
    ssh.run(a["ip"], f"ping -c 2 -W 2 {b['private']}")
    # layer 3 through the gateway, as on Hetzner: the only neighbour on enp7s0 is the gateway
    neighbours = ssh.run(a["ip"], "ip -4 neigh show dev enp7s0").stdout.split()
    assert neighbours[0] == "10.57.0.1" and b["private"] not in neighbours
    # an alias IP: routed to the server by the API, added to the interface by its OS
    api.wait(api("POST", f"/servers/{b['id']}/actions/change_alias_ips",
                 {"network": net["id"], "alias_ips": ["10.57.1.200"]})["action"])
    ssh.run(b["ip"], "ip addr add 10.57.1.200/32 dev enp7s0")
    ssh.run(a["ip"], "ping -c 1 -W 2 10.57.1.200")
    assert "Network is unreachable" in ssh.run(a["ip"], "ip route get 1.1.1.1 2>&1", check=False).stdout


def test_floating_ip_answers_where_it_is_assigned(lc, ssh, tmp_path):
    cloud, api, servers, net = lc
    a, b, c = servers["ad-a"], servers["ad-b"], servers["ad-c"]
    playbook(cloud, tmp_path, """
    - hetzner.hcloud.floating_ip:
        name: fip
        type: ipv4
        server: ad-a
""")
    fip = api("GET", "/floating_ips?name=fip")["floating_ips"][0]["ip"]
    for name in ("ad-a", "ad-b"):          # the persistent configuration on every candidate
        ssh.run(servers[name]["ip"], f"ip addr add {fip}/32 dev eth0 && mkdir -p /srv/fip && hostname > /srv/fip/index.html "
                                     "&& systemd-run --unit fipweb python3 -m http.server 8080 --directory /srv/fip")
    url, from_c = f"http://{fip}:8080/", f"curl -s -m 3 http://{fip}:8080/"
    until(lambda: http_get(url)[1].strip() == "ad-a", 10)
    assert ssh.run(c["ip"], from_c).stdout.strip() == "ad-a"

    playbook(cloud, tmp_path, """
    - autoscale.hetzner.floating_ip:
        name: fip
        type: ipv4
        server: ad-b
""")
    until(lambda: http_get(url, timeout=1)[1].strip() == "ad-b", 2, interval=0.05,
          message="the floating IP must answer on its new server within 2 s")
    assert ssh.run(c["ip"], from_c).stdout.strip() == "ad-b"
    assert {http_get(url)[1].strip() for _ in range(10)} == {"ad-b"}


def test_primary_ip_change_moves_the_public_address(lc, ssh):
    cloud, api, servers, net = lc
    c = servers["ad-c"]
    server = api("GET", f"/servers/{c['id']}")["server"]
    api.wait(api("POST", f"/servers/{c['id']}/actions/poweroff")["action"])
    old = server["public_net"]["ipv4"]
    api.wait(api("POST", f"/primary_ips/{old['id']}/actions/unassign")["action"])
    new = api("POST", "/primary_ips", {"name": "ad-c-v4", "type": "ipv4", "assignee_type": "server",
                                       "assignee_id": c["id"], "auto_delete": True})
    api.wait(new["action"])
    new_ip = new["primary_ip"]["ip"]
    assert new_ip != old["ip"]
    api.wait(api("POST", f"/servers/{c['id']}/actions/poweron")["action"])
    ssh.wait(new_ip, timeout=60)
    assert f"inet {new_ip}/18 " in ssh.run(new_ip, "ip -4 -o addr show eth0").stdout
    assert not tcp_open(old["ip"], 22, timeout=1)
    c["ip"] = new_ip


def facts(ip: str, key) -> dict:
    common = " ".join(o for o in SSH_OPTS)
    out = subprocess.run([BIN / "ansible", "all", "-i", f"{ip},", "-u", "root", "--private-key", str(key),
                          "-e", f"ansible_ssh_common_args='{common}'", "-m", "ansible.builtin.setup",
                          "-a", "gather_subset=hardware", "-o"],
                         capture_output=True, text=True, timeout=300,
                         env={**os.environ, "ANSIBLE_HOST_KEY_CHECKING": "False", "ANSIBLE_NOCOLOR": "1"})
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    return json.loads(out.stdout.split(" => ", 1)[1])["ansible_facts"]


def test_sizes_as_the_server_type_says(lc, ssh, ssh_key, tmp_path):
    cloud, api, servers, net = lc
    a, c = servers["ad-a"], servers["ad-c"]
    cx23 = facts(a["ip"], ssh_key)
    assert cx23["ansible_processor_vcpus"] == min(2, HOST_CPUS)
    assert 3900 <= cx23["ansible_memtotal_mb"] <= 4096, cx23["ansible_memtotal_mb"]
    cpx12 = facts(c["ip"], ssh_key)
    assert cpx12["ansible_processor_vcpus"] == 1
    assert 1900 <= cpx12["ansible_memtotal_mb"] <= 2048
    assert ssh.run(c["ip"], "nproc").stdout.strip() == "1"

    # hetzner.hcloud.server powers the server off (force), changes its type and starts it again
    playbook(cloud, tmp_path, """
    - hetzner.hcloud.server:
        name: ad-c
        server_type: cx23
        upgrade_disk: false
        force: true
        state: started
""")
    assert api("GET", f"/servers/{c['id']}")["server"]["server_type"]["name"] == "cx23"
    ssh.wait(c["ip"], timeout=60)
    assert ssh.run(c["ip"], "nproc").stdout.strip() == str(min(2, HOST_CPUS))
    assert int(ssh.run(c["ip"], "awk '/MemTotal/ {print $2}' /proc/meminfo").stdout) == 4 * 1024 * 1024
