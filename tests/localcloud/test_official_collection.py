"""The official hetzner.hcloud collection against the local cloud, in both toolchains: 5.x
(ansible 12, the project venv .venv) and 6.x (ansible 14 on Python 3.12, .venv-ansible14).

One local cloud of its own (short action times). ``playbooks/create.yml`` builds a network with
three subnets and a route, two firewalls (one applied per server, one through a label selector),
an SSH key, a placement group, three servers (one with an alias IP), a volume, a floating IP, a
spare primary IP, a reverse DNS entry and a load balancer (network, service, server and
label-selector targets); a second run must report changed=0; ``playbooks/info.yml`` checks the
``*_info`` modules; ``ansible-inventory`` with the ``hetzner.hcloud.hcloud`` inventory plugin
lists the servers; ``playbooks/delete.yml`` removes everything and every list is empty again.

hetzner.hcloud 5.x still reads ``server.datacenter`` (server, server_info, network_info, the
inventory plugin) and ``primary_ip.datacenter``, and its primary_ip module looks its datacenter
up with GET /datacenters; the API removed all of these in 2026, so its run turns on the opt-in
``legacy_datacenters`` setting. hetzner.hcloud 6.x runs against the API as it is today.

Playbook choices forced by hetzner.hcloud 5.x itself (the real API would behave the same):
servers that get a firewall through a label selector leave the server module's ``firewalls``
out (it would try to remove the selector's firewall: ``firewall_managed_by_label_selector``);
the load balancer service has no ``http``/``health_check`` options (the module reports changed
whenever they are given); the floating IP is deleted after the servers (the module only warns
about an assigned one, and the API refuses to delete it while assigned).

It is a single test on purpose: the steps depend on each other, and so they stay together
under pytest-xdist.
"""
from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

_REPO = Path(__file__).resolve().parents[2]
if str(_REPO / "localcloud") not in sys.path:
    sys.path.insert(0, str(_REPO / "localcloud"))

from localcloud.testing import start_cloud  # noqa: E402

PLAYBOOKS = Path(__file__).resolve().parent / "playbooks"
BIN = Path(sys.executable).parent
# hetzner.hcloud 6.x needs ansible-core >= 2.20, i.e. Python >= 3.12: its own venv (scripts/bootstrap.sh)
BIN14 = _REPO / ".venv-ansible14" / "bin"
TOOLCHAINS = {"hetzner.hcloud-5": (BIN, True), "hetzner.hcloud-6": (BIN14, False)}
RESOURCE_LISTS = ("servers", "networks", "firewalls", "ssh_keys", "volumes", "load_balancers",
                  "placement_groups", "primary_ips", "floating_ips")
SERVERS = {"oc-web-1", "oc-web-2", "oc-db-1"}



def toolchain(name: str) -> Path:
    """The bin directory of a toolchain; missing: skipped, but a failure in CI (make venv builds both)."""
    bin_dir, _legacy = TOOLCHAINS[name]
    if not (bin_dir / "ansible-playbook").exists():
        message = f"{bin_dir}/ansible-playbook is missing: run `make venv` (needs Python >= 3.12 for 6.x)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message)
        pytest.skip(message)
    return bin_dir


def _ssh_key() -> str:
    blob = b"\x00\x00\x00\x0bssh-ed25519\x00\x00\x00\x20" + os.urandom(32)
    return f"ssh-ed25519 {base64.b64encode(blob).decode()} official-collection-test"


def _recap(output: str) -> dict[str, int]:
    match = re.search(r"^localhost\s*:\s*(.*)$", output.split("PLAY RECAP", 1)[-1], re.MULTILINE)
    assert match, f"no PLAY RECAP in:\n{output[-3000:]}"
    return {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", match.group(1))}


def official_env(cloud, bin_dir: Path, tmp_path: Path) -> dict:
    env = {
        **os.environ,
        **cloud.env,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "TEST_SSH_PUBLIC_KEY": _ssh_key(),
        "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-local"),
        "ANSIBLE_REMOTE_TEMP": str(tmp_path / "ansible-remote"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "0",
        "ANSIBLE_LOCALHOST_WARNING": "0",
    }
    env.pop("ANSIBLE_CONFIG", None)
    env.pop("VIRTUAL_ENV", None)
    return env


def _run(args: list[str], env: dict, cwd: Path, timeout: float = 600) -> str:
    proc = subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{' '.join(args)} exited {proc.returncode}:\n{output[-6000:]}"
    return output


def _playbook(name: str, env: dict, cwd: Path, *extra: str) -> dict[str, int]:
    bin_dir = Path(env["PATH"].split(os.pathsep)[0])
    output = _run([str(bin_dir / "ansible-playbook"), str(PLAYBOOKS / name), *extra], env, cwd)
    recap = _recap(output)
    assert recap["failed"] == 0 and recap["unreachable"] == 0, output[-6000:]
    return recap


def _plain(value):
    """ansible-inventory --list (ansible-core 2.19) wraps strings from plugins as {"__ansible_unsafe": ...}."""
    if isinstance(value, dict):
        if set(value) == {"__ansible_unsafe"}:
            return value["__ansible_unsafe"]
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


def _get(cloud, path: str) -> dict:
    request = urllib.request.Request(cloud.endpoint + path, headers={"Authorization": f"Bearer {cloud.token}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


@pytest.mark.long
@pytest.mark.parametrize("collection", sorted(TOOLCHAINS))
def test_official_collection_create_idempotent_info_inventory_delete(tmp_path, collection):
    bin_dir = toolchain(collection)
    cloud = start_cloud(tmp_path / "cloud", "--action-time", "0.05", "--rate-limit", "0")
    try:
        cloud.admin("PUT", "config", {"legacy_datacenters": TOOLCHAINS[collection][1]})
        work = tmp_path / "work"
        work.mkdir()
        env = official_env(cloud, bin_dir, tmp_path)

        # 1. create the stack
        first = _playbook("create.yml", env, work)
        assert first["changed"] > 0, first

        servers = {s["name"]: s for s in _get(cloud, "/servers")["servers"]}
        assert set(servers) == SERVERS
        assert all(s["status"] == "running" for s in servers.values())
        network = _get(cloud, "/networks?name=oc-net")["networks"][0]
        assert sorted(s["ip_range"] for s in network["subnets"]) == ["10.0.1.0/24", "10.0.2.0/24", "10.0.3.0/24"]
        assert sorted(network["servers"]) == sorted(s["id"] for s in servers.values())
        assert all(s["private_net"] and s["private_net"][0]["network"] == network["id"] for s in servers.values())
        firewalls = {f["name"]: f for f in _get(cloud, "/firewalls")["firewalls"]}
        assert set(firewalls) == {"oc-ssh", "oc-db"}
        db = servers["oc-db-1"]
        assert {f["id"] for f in db["public_net"]["firewalls"]} == {firewalls["oc-ssh"]["id"], firewalls["oc-db"]["id"]}
        assert {f["id"] for f in servers["oc-web-1"]["public_net"]["firewalls"]} == {firewalls["oc-ssh"]["id"]}
        selector = [t for t in firewalls["oc-db"]["applied_to"] if t["type"] == "label_selector"]
        assert selector and selector[0]["label_selector"]["selector"] == "stack=oc,role=db"
        assert [r["server"]["id"] for r in selector[0]["applied_to_resources"]] == [db["id"]]
        volume = _get(cloud, "/volumes?name=oc-data")["volumes"][0]
        assert volume["server"] == db["id"] and db["volumes"] == [volume["id"]]
        group = _get(cloud, "/placement_groups?name=oc-spread")["placement_groups"][0]
        assert sorted(group["servers"]) == sorted(s["id"] for s in servers.values())
        lb = _get(cloud, "/load_balancers?name=oc-lb")["load_balancers"][0]
        assert [(s["protocol"], s["listen_port"], s["destination_port"]) for s in lb["services"]] == [("http", 80, 8080)]
        assert lb["private_net"][0]["network"] == network["id"] and lb["private_net"][0]["ip"] == "10.0.1.100"
        targets = {t["type"]: t for t in lb["targets"] if t["type"] == "label_selector"}
        assert targets["label_selector"]["label_selector"]["selector"] == "role=db"
        assert sorted(t["server"]["id"] for t in lb["targets"] if t["type"] == "server") == sorted(
            servers[name]["id"] for name in ("oc-web-1", "oc-web-2"))
        assert lb["id"] in servers["oc-web-1"]["load_balancers"]
        assert network["routes"] == [{"destination": "10.100.1.0/24", "gateway": "10.0.1.1"}]
        assert [n["alias_ips"] for n in db["private_net"]] == [["10.0.3.10"]]
        fip = _get(cloud, "/floating_ips?name=oc-fip")["floating_ips"][0]
        assert fip["server"] == servers["oc-web-1"]["id"] and servers["oc-web-1"]["public_net"]["floating_ips"] == [fip["id"]]
        web1_v4 = servers["oc-web-1"]["public_net"]["ipv4"]
        assert web1_v4["dns_ptr"] == "web1.example.com"

        # 2. the same playbook again changes nothing
        second = _playbook("create.yml", env, work)
        assert second["changed"] == 0, second

        # 3. the *_info modules see the stack
        _playbook("info.yml", env, work, "-e", f"legacy_datacenters={TOOLCHAINS[collection][1]}")

        # 4. the inventory plugin lists the servers
        inventory = work / "stack.hcloud.yml"
        inventory.write_text(
            "plugin: hetzner.hcloud.hcloud\n"
            "label_selector: stack=oc\n"
            "network: oc-net\n"
            "keyed_groups:\n"
            "  - key: hcloud_labels.role\n"
            "    prefix: role\n"
        )
        output = _run([str(bin_dir / "ansible-inventory"), "-i", str(inventory), "--list"], env, work)
        listing = _plain(json.JSONDecoder().raw_decode(output[output.index("{"):])[0])  # warnings may follow
        hostvars = listing["_meta"]["hostvars"]
        assert set(hostvars) == SERVERS, output[-3000:]
        assert set(listing["role_web"]["hosts"]) == {"oc-web-1", "oc-web-2"}
        assert set(listing["role_db"]["hosts"]) == {"oc-db-1"}
        for name, host in hostvars.items():
            assert host["hcloud_id"] == servers[name]["id"]
            assert host["hcloud_status"] == "running"
            assert host["hcloud_location"] == "hel1"
            assert host["hcloud_server_type"] == "cx23"
            assert host["hcloud_labels"] == servers[name]["labels"]
            assert host["hcloud_ipv4"] == servers[name]["public_net"]["ipv4"]["ip"]
            assert host["hcloud_private_ipv4"] == servers[name]["private_net"][0]["ip"]
            assert host["hcloud_private_networks"] == [
                {"id": network["id"], "name": "oc-net", "ip": servers[name]["private_net"][0]["ip"]}]
            assert host["ansible_host"] == servers[name]["public_net"]["ipv4"]["ip"]

        # 5. delete everything
        deleted = _playbook("delete.yml", env, work)
        assert deleted["changed"] > 0, deleted
        leftovers = {name: _get(cloud, f"/{name}")[name] for name in RESOURCE_LISTS}
        assert not {name: items for name, items in leftovers.items() if items}
    finally:
        cloud.stop()


def _certificate_files(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for lc6.example and its key, as PEM files."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "lc6.example")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now)
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("lc6.example")]), critical=False)
            .sign(key, hashes.SHA256()))
    pem, key_file = directory / "cert.pem", directory / "cert.key"
    pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return pem, key_file


LIFECYCLE_LISTS = ("servers", "primary_ips", "floating_ips", "certificates", "zones", "load_balancers")


@pytest.mark.long
def test_hcloud6_modules_create_rerun_update_delete(tmp_path):
    """server, primary_ip, floating_ip, image_info, server_type_info, load_balancer_service,
    certificate, certificate_info, zone and zone_rrset of hetzner.hcloud 6.x: create, rerun
    (changed=0), update, rerun (changed=0), delete, all against the API as it is today.

    load_balancer_service reports changed whenever its ``http`` option is given (the module does
    not compare it), so the https service with certificates is only (re)applied by the playbook
    when its certificates differ; the plain http service proves the module's idempotence."""
    bin_dir = toolchain("hetzner.hcloud-6")
    cloud = start_cloud(tmp_path / "cloud", "--action-time", "0.05", "--rate-limit", "0")
    try:
        work = tmp_path / "work"
        work.mkdir()
        pem, key = _certificate_files(tmp_path)
        env = {**official_env(cloud, bin_dir, tmp_path), "TEST_CERT_PEM": str(pem), "TEST_CERT_KEY": str(key)}

        def phase(name: str) -> dict[str, int]:
            return _playbook("lifecycle6.yml", env, work, "-e", f"phase={name}")

        assert phase("create")["changed"] > 0
        server = _get(cloud, "/servers?name=lc6-web")["servers"][0]
        zone = _get(cloud, "/zones?name=lc6.example")["zones"][0]
        www = _get(cloud, f"/zones/{zone['id']}/rrsets/www/A")["rrset"]
        assert [r["value"] for r in www["records"]] == [server["public_net"]["ipv4"]["ip"]] and www["ttl"] == 300
        primary = _get(cloud, "/primary_ips?name=lc6-ip")["primary_ips"][0]
        assert primary["assignee_id"] == server["id"] and server["public_net"]["ipv6"] is None
        fip = _get(cloud, "/floating_ips?name=lc6-fip")["floating_ips"][0]
        assert fip["server"] == server["id"] and fip["description"] == "web"
        certs = {c["name"]: c for c in _get(cloud, "/certificates")["certificates"]}
        assert certs["lc6-managed"]["status"]["issuance"] == "completed"
        lb = _get(cloud, "/load_balancers?name=lc6-lb")["load_balancers"][0]
        assert [(s["protocol"], s["listen_port"], s["destination_port"], s["http"]["certificates"])
                for s in lb["services"]] == [("http", 80, 8080, []), ("https", 443, 8080, [certs["lc6-uploaded"]["id"]])]
        assert lb["services"][0]["http"]["timeout_idle"] == 50
        assert phase("create")["changed"] == 0

        assert phase("update")["changed"] > 0
        www = _get(cloud, f"/zones/{zone['id']}/rrsets/www/A")["rrset"]
        assert www["ttl"] == 600 and www["records"][0]["comment"] == "lc6-web (updated)"
        assert _get(cloud, f"/zones/{zone['id']}")["zone"]["ttl"] == 7200
        assert _get(cloud, f"/floating_ips/{fip['id']}")["floating_ip"]["description"] == "web (updated)"
        assert _get(cloud, f"/servers/{server['id']}")["server"]["labels"]["rev"] == "2"
        assert _get(cloud, f"/primary_ips/{primary['id']}")["primary_ip"]["labels"]["rev"] == "2"
        http, https = _get(cloud, f"/load_balancers/{lb['id']}")["load_balancer"]["services"]
        assert http["destination_port"] == 8081
        assert sorted(https["http"]["certificates"]) == sorted(c["id"] for c in certs.values())
        assert phase("update")["changed"] == 0

        assert phase("delete")["changed"] > 0
        leftovers = {name: _get(cloud, f"/{name}")[name] for name in LIFECYCLE_LISTS}
        leftovers["snapshots"] = _get(cloud, "/images?type=snapshot")["images"]
        assert not {name: items for name, items in leftovers.items() if items}
    finally:
        cloud.stop()
