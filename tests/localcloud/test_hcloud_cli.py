"""The Debian hcloud CLI (hcloud-go underneath) runs the original plan's commands against the local cloud.

hcloud-cli 1.30 has no HCLOUD_POLL_INTERVAL variable; the global ``--poll-interval`` flag does the same.
Note: ``server list -o json`` re-encodes servers through hcloud-go's ``SchemaFromServer``, which
in this version does not copy ``public_net.firewalls``, ``floating_ips``, ``alias_ips`` nor the
primary IP ids (they print as null / 0); ``server describe -o json`` prints the API's own JSON, so
the firewall is checked there (``firewall list -o json`` likewise prints source IPs as "ip+net").
"""
from __future__ import annotations

import ipaddress
import json
import os
import shutil
import subprocess
import time

import pytest

pytestmark = pytest.mark.skipif(shutil.which("hcloud") is None, reason="hcloud CLI not installed")

ADMIN_IP = "203.0.113.7"        # TEST-NET-3: the admin's address, instead of `curl ifconfig.me`


@pytest.fixture
def hcloud(project, tmp_path):
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "HCLOUD_CONFIG": str(tmp_path / "cli.toml"),
           **project.env}

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run(["hcloud", "--poll-interval", "100ms", *args], env=env, capture_output=True,
                              text=True, timeout=60)
        if check:
            assert done.returncode == 0, f"hcloud {' '.join(args)}: rc={done.returncode}\n{done.stdout}\n{done.stderr}"
        return done

    def json_of(*args: str):
        return json.loads(run(*args, "-o", "json").stdout)
    run.json = json_of
    return run


@pytest.fixture
def ssh_pub(tmp_path):
    key = tmp_path / "hetzner_autoscale"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "autoscale-ai-2025", "-f", str(key)],
                   check=True)
    return key.with_suffix(".pub")


def test_original_plan(hcloud, ssh_pub, project):
    # 1.1 SSH key
    hcloud("ssh-key", "create", "--name", "autoscale-main-key", "--public-key-from-file", str(ssh_pub))
    # 1.2 firewall
    hcloud("firewall", "create", "--name", "web-firewall")
    hcloud("firewall", "add-rule", "web-firewall", "--direction", "in", "--port", "80", "--protocol", "tcp",
           "--source-ips", "0.0.0.0/0")
    hcloud("firewall", "add-rule", "web-firewall", "--direction", "in", "--port", "443", "--protocol", "tcp",
           "--source-ips", "0.0.0.0/0")
    hcloud("firewall", "add-rule", "web-firewall", "--direction", "in", "--port", "22", "--protocol", "tcp",
           "--source-ips", f"{ADMIN_IP}/32")
    # 2.1 network
    hcloud("network", "create", "--name", "autoscale-network", "--ip-range", "10.0.0.0/16")
    for n in (1, 2, 3):
        hcloud("network", "add-subnet", "autoscale-network", "--network-zone", "eu-central", "--type", "cloud",
               "--ip-range", f"10.0.{n}.0/24")
    # 1.3 server (with today's type and image)
    created = hcloud("server", "create", "--name", "test-server", "--type", "cx23", "--image", "debian-12",
                     "--location", "nbg1", "--ssh-key", "autoscale-main-key", "--firewall", "web-firewall",
                     "--network", "autoscale-network")
    assert "Server" in created.stdout and "created" in created.stdout

    keys = hcloud.json("ssh-key", "list")
    assert [k["name"] for k in keys] == ["autoscale-main-key"]
    assert keys[0]["public_key"].strip() == ssh_pub.read_text().strip().rsplit(" ", 1)[0] or \
        keys[0]["public_key"].strip() == ssh_pub.read_text().strip()

    firewalls = hcloud.json("firewall", "list")
    assert [f["name"] for f in firewalls] == ["web-firewall"]
    # `firewall list -o json` prints source IPs as "ip+net" (hcloud-cli 1.30 encodes net.IPNet); describe
    # prints the API's JSON
    described_fw = hcloud.json("firewall", "describe", "web-firewall")
    rules = {(r["direction"], r["protocol"], r["port"], tuple(r["source_ips"])) for r in described_fw["rules"]}
    assert rules == {("in", "tcp", "80", ("0.0.0.0/0",)), ("in", "tcp", "443", ("0.0.0.0/0",)),
                     ("in", "tcp", "22", (f"{ADMIN_IP}/32",))}

    networks = hcloud.json("network", "list")
    assert [n["name"] for n in networks] == ["autoscale-network"]
    assert networks[0]["ip_range"] == "10.0.0.0/16"
    assert [s["ip_range"] for s in networks[0]["subnets"]] == ["10.0.1.0/24", "10.0.2.0/24", "10.0.3.0/24"]
    assert {s["network_zone"] for s in networks[0]["subnets"]} == {"eu-central"}

    servers = hcloud.json("server", "list")
    assert [s["name"] for s in servers] == ["test-server"]
    server = servers[0]
    assert server["status"] == "running"
    assert server["server_type"]["name"] == "cx23"
    assert server["image"]["name"] == "debian-12"
    assert len(server["private_net"]) == 1
    assert server["private_net"][0]["network"] == networks[0]["id"]
    assert ipaddress.ip_address(server["private_net"][0]["ip"]) in ipaddress.ip_network("10.0.1.0/24")
    assert server["public_net"]["ipv4"]["ip"]

    described = hcloud.json("server", "describe", "test-server")
    assert described["public_net"]["firewalls"] == [{"id": firewalls[0]["id"], "status": "applied"}]
    assert described["public_net"]["floating_ips"] == []
    assert described["public_net"]["ipv4"]["id"] > 0
    assert described["private_net"][0]["alias_ips"] == []
    # the API view agrees (applied_to on the firewall)
    fw = project.ok("GET", f"/firewalls/{firewalls[0]['id']}")["firewall"]
    assert fw["applied_to"] == [{"type": "server", "server": {"id": server["id"]}}]

    # teardown in the plan's reverse order
    deleted = hcloud("server", "delete", "test-server")
    assert "deleted" in deleted.stdout
    # hcloud-cli 1.30 does not wait for delete_server: the server shows "deleting" until the action ends
    deadline = time.time() + 10
    while (servers := hcloud.json("server", "list")) and time.time() < deadline:
        assert [s["status"] for s in servers] == ["deleting"]
        time.sleep(0.05)
    hcloud("firewall", "delete", "web-firewall")
    hcloud("network", "delete", "autoscale-network")
    hcloud("ssh-key", "delete", "autoscale-main-key")
    for kind in ("server", "firewall", "network", "ssh-key", "primary-ip"):
        assert hcloud.json(kind, "list") in ([], None), kind


def test_deprecated_server_type_fails(hcloud, ssh_pub):
    hcloud("ssh-key", "create", "--name", "autoscale-main-key", "--public-key-from-file", str(ssh_pub))
    done = hcloud("server", "create", "--name", "test-server", "--type", "cx22", "--image", "debian-12",
                  "--location", "nbg1", "--ssh-key", "autoscale-main-key", check=False)
    assert done.returncode != 0
    assert "invalid_input" in done.stderr
    assert "server_type" in done.stderr and "cx23" in done.stderr
    assert hcloud.json("server", "list") in ([], None)


def test_unknown_image_fails(hcloud):
    done = hcloud("server", "create", "--name", "x", "--type", "cx23", "--image", "no-such-image",
                  "--location", "nbg1", check=False)
    assert done.returncode != 0
    assert "image" in done.stderr


def test_bad_token(project, tmp_path):
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "HCLOUD_CONFIG": str(tmp_path / "cli.toml"),
           "HCLOUD_ENDPOINT": project.endpoint, "HCLOUD_TOKEN": "x" * 64}
    done = subprocess.run(["hcloud", "server", "list"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "unauthorized" in done.stderr


def test_snapshot_certificate_and_iso_with_the_cli(hcloud, tmp_path):
    """What the official collection's own integration tests do with the CLI (create-image), plus
    certificates and ISOs, through hcloud-go."""
    hcloud("server", "create", "--name", "cli-img", "--type", "cx23", "--image", "debian-12", "--location", "nbg1")
    made = hcloud("server", "create-image", "--type", "snapshot", "--description", "cli snapshot", "cli-img")
    image_id = int(made.stdout.split()[1])          # "Image <id> created from Server <id>"
    images = hcloud.json("image", "list", "--type", "snapshot")
    assert [(i["id"], i["description"], i["status"]) for i in images] == [(image_id, "cli snapshot", "available")]
    hcloud("server", "rebuild", "--image", str(image_id), "cli-img")
    assert hcloud.json("server", "describe", "cli-img")["image"]["id"] == image_id
    hcloud("image", "delete", str(image_id))
    assert not hcloud.json("image", "list", "--type", "snapshot")        # the CLI prints null for none

    key, cert = tmp_path / "tls.key", tmp_path / "tls.crt"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-keyout", str(key), "-out", str(cert), "-days", "30", "-subj", "/CN=cli.example",
                    "-addext", "subjectAltName=DNS:cli.example,DNS:www.cli.example"], check=True, capture_output=True)
    hcloud("certificate", "create", "--name", "cli-cert", "--cert-file", str(cert), "--key-file", str(key))
    listed = hcloud.json("certificate", "list")
    assert [(c["name"], c["domain_names"]) for c in listed] == [("cli-cert", ["cli.example", "www.cli.example"])]
    fingerprint = subprocess.run(["openssl", "x509", "-in", str(cert), "-noout", "-fingerprint", "-sha256"],
                                 check=True, capture_output=True, text=True).stdout.strip().split("=", 1)[1]
    assert listed[0]["fingerprint"] == fingerprint.lower()
    hcloud("certificate", "delete", "cli-cert")

    assert "virtio-win-0.1.266.iso" in hcloud("iso", "list").stdout
    hcloud("server", "attach-iso", "cli-img", "virtio-win-0.1.266.iso")
    assert hcloud.json("server", "describe", "cli-img")["iso"]["name"] == "virtio-win-0.1.266.iso"
