"""End to end through the API: `localcloud serve --machines nspawn`, the hcloud CLI, and the official
hetzner.hcloud collection (server module + inventory plugin) reaching a machine over SSH.

3 servers in one network with a firewall that allows only 22 and 80: SSH works with the API's key,
TCP 5432 on the public IP is dropped while the same port over the private network answers, and
taking the firewall off opens it. Then Ansible creates a server and pings it through the
hetzner.hcloud inventory. Root on Linux only (see conftest.py)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from machines_helpers import (  # noqa: F401  (ssh, ssh_key: fixtures)
    ssh, ssh_key, ROOT, SSH_OPTS, skip_reason, tcp_open)

BIN = Path(sys.executable).parent
HCLOUD = "hcloud"

pytestmark = [
    pytest.mark.skipif(skip_reason() is not None, reason=skip_reason() or ""),
    pytest.mark.skipif(not (BIN / "ansible-playbook").exists(), reason="ansible not in the venv"),
]


def _hcloud_available() -> bool:
    from shutil import which
    return which(HCLOUD) is not None


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    if not _hcloud_available():
        subprocess.run(["apt-get", "install", "-y", "-q", "hcloud-cli"], check=False,
                       env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"}, capture_output=True)
    if not _hcloud_available():
        pytest.skip("hcloud CLI (Debian package hcloud-cli) not installable")
    sys.path.insert(0, str(ROOT / "localcloud"))
    from localcloud.testing import start_cloud

    state = tmp_path_factory.mktemp("api-state")
    # start_cloud waits for the host lock: another nspawn local cloud may still be running or closing
    cloud = start_cloud(state, "--machines", "nspawn", "--action-time", "0.2", "--rate-limit", "0")
    try:
        cloud.admin("PUT", "config", {"legacy_datacenters": True})   # hetzner.hcloud 5.x reads datacenter
        yield cloud
    finally:
        cloud.stop()
        subprocess.run([sys.executable, "-m", "localcloud.cli", "down", "--state", str(state)],
                       cwd=ROOT / "localcloud", capture_output=True, timeout=300)


def hcloud(api, *args, check=True, timeout=600):
    env = {**os.environ, **api.env}
    proc = subprocess.run([HCLOUD, *args], capture_output=True, text=True, env=env, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"hcloud {' '.join(args)} -> {proc.returncode}\n{proc.stdout}{proc.stderr}")
    return proc.stdout


def server(api, name):
    return json.loads(hcloud(api, "server", "describe", name, "-o", "json"))


def test_hcloud_cli_three_servers_network_firewall(api, ssh, ssh_key, tmp_path):
    hcloud(api, "ssh-key", "create", "--name", "e2e", "--public-key-from-file", f"{ssh_key}.pub")
    hcloud(api, "network", "create", "--name", "e2e-net", "--ip-range", "10.66.0.0/16")
    hcloud(api, "network", "add-subnet", "e2e-net", "--network-zone", "eu-central", "--type", "cloud",
           "--ip-range", "10.66.1.0/24")
    rules = [{"direction": "in", "protocol": "tcp", "port": p, "source_ips": ["0.0.0.0/0", "::/0"]}
             for p in ("22", "80")]
    (tmp_path / "rules.json").write_text(json.dumps(rules))
    hcloud(api, "firewall", "create", "--name", "e2e-fw", "--rules-file", str(tmp_path / "rules.json"))
    (tmp_path / "user-data.yml").write_text(
        "#cloud-config\nwrite_files:\n  - path: /etc/e2e-marker\n    content: via the API\n")
    names = ["e2e-1", "e2e-2", "e2e-3"]
    t0 = time.monotonic()
    with ThreadPoolExecutor(3) as pool:
        list(pool.map(lambda n: hcloud(api, "server", "create", "--name", n, "--type", "cx23",
                                       "--image", "debian-12", "--location", "fsn1", "--ssh-key", "e2e",
                                       "--network", "e2e-net", "--firewall", "e2e-fw",
                                       "--user-data-from-file", str(tmp_path / "user-data.yml")), names))
    created = time.monotonic() - t0
    servers = {n: server(api, n) for n in names}
    pub = {n: s["public_net"]["ipv4"]["ip"] for n, s in servers.items()}
    priv = {n: s["private_net"][0]["ip"] for n, s in servers.items()}
    for n in names:
        assert servers[n]["status"] == "running"
        ssh.wait(pub[n], timeout=60)
        assert ssh.run(pub[n], "hostname").stdout.strip() == n
    print(f"3 servers created through the API in {created:.1f}s")
    assert ssh.run(pub["e2e-3"], "cat /etc/e2e-marker").stdout.strip() == "via the API"
    ubuntu = subprocess.run([HCLOUD, "server", "create", "--name", "u-1", "--type", "cx23", "--image",
                             "ubuntu-24.04", "--location", "fsn1", "--ssh-key", "e2e"],
                            capture_output=True, text=True, env={**os.environ, **api.env})
    assert ubuntu.returncode != 0 and "not available in the local cloud" in ubuntu.stderr + ubuntu.stdout

    ssh.run(pub["e2e-1"], "systemd-run --unit=pg-standin python3 -m http.server 5432")
    deadline = time.monotonic() + 10
    curl = "curl -s -o /dev/null -w '%{http_code}' -m 3 http://" + priv["e2e-1"] + ":5432/"
    while ssh.run(pub["e2e-2"], curl, check=False).stdout != "200" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert ssh.run(pub["e2e-2"], curl).stdout == "200", "private network must not be filtered"
    assert not tcp_open(pub["e2e-1"], 5432, timeout=1.5), "firewall must drop 5432 on the public IP"
    assert tcp_open(pub["e2e-1"], 22)

    hcloud(api, "firewall", "remove-from-resource", "e2e-fw", "--type", "server", "--server", "e2e-1")
    deadline = time.monotonic() + 10
    while not tcp_open(pub["e2e-1"], 5432, timeout=1) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert tcp_open(pub["e2e-1"], 5432), "no firewall applies any more: everything allowed"

    hcloud(api, "server", "poweroff", "e2e-3")
    assert server(api, "e2e-3")["status"] == "off"
    assert not tcp_open(pub["e2e-3"], 22, timeout=1)
    hcloud(api, "server", "poweron", "e2e-3")
    ssh.wait(pub["e2e-3"], timeout=60)

    from localcloud.backends.nspawn.slots import Slot, recorded_slot
    slot = Slot(recorded_slot(api.state))
    ids = [servers[n]["id"] for n in names]
    for n in names:
        hcloud(api, "server", "delete", n)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        left = [i for i in ids if os.path.exists(f"/run/netns/{slot.netns('', i)}")]
        if not left:
            break
        time.sleep(0.2)
    assert not left, f"machines of deleted servers still there: {left}"


PLAYBOOK = """
- hosts: localhost
  connection: local
  gather_facts: false
  vars:
    ansible_python_interpreter: "{{ ansible_playbook_python }}"
  tasks:
    - hetzner.hcloud.server:
        name: ansible-e2e-1
        server_type: cx23
        image: debian-12
        location: fsn1
        ssh_keys: [e2e]
        labels: {e2e: ansible}
        state: present
"""


def test_hetzner_hcloud_server_and_inventory_over_ssh(api, ssh_key, tmp_path):
    env = {**os.environ, **api.env, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
           "ANSIBLE_HOST_KEY_CHECKING": "False", "ANSIBLE_NOCOLOR": "1",
           "ANSIBLE_LOCAL_TEMP": str(tmp_path / "tmp"), "ANSIBLE_RETRY_FILES_ENABLED": "0"}
    env.pop("ANSIBLE_CONFIG", None)
    (tmp_path / "create.yml").write_text(PLAYBOOK)
    if "e2e" not in hcloud(api, "ssh-key", "list", "-o", "noheader", "-o", "columns=name"):
        hcloud(api, "ssh-key", "create", "--name", "e2e", "--public-key-from-file", f"{ssh_key}.pub")
    out = subprocess.run([BIN / "ansible-playbook", "create.yml"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    (tmp_path / "e2e.hcloud.yml").write_text("plugin: hetzner.hcloud.hcloud\nlabel_selector: e2e=ansible\n")
    common = " ".join(f"-o {o}" for o in SSH_OPTS if o != "-o")
    deadline = time.monotonic() + 90
    while True:
        ping = subprocess.run([BIN / "ansible", "all", "-i", "e2e.hcloud.yml", "-u", "root",
                               "--private-key", str(ssh_key), "-e", f"ansible_ssh_common_args='{common}'",
                               "-m", "ansible.builtin.command", "-a", "cat /etc/hostname"],
                              cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        if ping.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert ping.returncode == 0, ping.stdout[-4000:] + ping.stderr[-2000:]
    assert "ansible-e2e-1" in ping.stdout
    assert "CHANGED" in ping.stdout or "SUCCESS" in ping.stdout
