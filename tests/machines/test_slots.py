"""Two local clouds with machines side by side on one host (slots).

Each `serve --slot auto` takes a free slot: its own bridge, names, nft tables and public /18. Both
clouds build, at the same time, a server in three networks, one of them with the same private range
in both; both servers answer SSH, neither
cloud reaches the other's public range, and `localcloud down` of one leaves the other working,
including the blackhole route of the shared private range, which goes with the last of them.
Root on Linux only.
"""
from __future__ import annotations

import ipaddress
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest

from machines_helpers import (  # noqa: F401  (ssh, ssh_key: fixtures)
    API, down, machines_cloud, skip_reason, ssh, ssh_key)

pytestmark = pytest.mark.skipif(skip_reason() is not None, reason=skip_reason() or "")
RANGE = "10.59.0.0/16"


def blackhole() -> bool:
    return "blackhole" in subprocess.run(["ip", "route", "show", RANGE], capture_output=True, text=True).stdout


def test_two_local_clouds_side_by_side(tmp_path, ssh, ssh_key):
    from localcloud.backends.nspawn.slots import Slot, recorded_slot
    states = [tmp_path / "a", tmp_path / "b"]
    clouds = []
    try:
        for state in states:
            clouds.append(machines_cloud(state))
        slots = [Slot(recorded_slot(state)) for state in states]
        assert slots[0] != slots[1]

        def build(cloud, slot):
            """A server in a network with the shared range, plus two more networks: both clouds at
            once, so bridges, gateways and blackhole routes of two slots are made at the same time."""
            api = API(cloud)
            key = api("POST", "/ssh_keys", {"name": "k", "public_key": ssh_key.with_suffix(".pub").read_text()})
            nets = [api("POST", "/networks", {"name": f"n{i}", "ip_range": r, "subnets": [
                {"type": "cloud", "network_zone": "eu-central", "ip_range": r.replace(".0.0/16", ".1.0/24")}]})["network"]
                for i, r in enumerate((RANGE, "10.60.0.0/16", "10.61.0.0/16"))]
            server = api.server("twin", key["ssh_key"]["id"], networks=[n["id"] for n in nets])
            ip = server["public_net"]["ipv4"]["ip"]
            assert ipaddress.ip_address(ip) in slot.public_net
            return ip
        with ThreadPoolExecutor(2) as pool:
            servers = list(pool.map(build, clouds, slots))
        for ip in servers:
            ssh.wait(ip)
            assert ssh.run(ip, "hostname; ping -c1 -W2 10.59.0.1 >/dev/null && echo gateway").stdout.split() == \
                ["twin", "gateway"]
        # a slot reaches nothing of another slot
        out = ssh.run(servers[0], f"ip route get {servers[1]} 2>&1; ping -c1 -W1 {servers[1]} >/dev/null || echo no",
                      check=False).stdout
        assert "unreachable" in out and out.strip().endswith("no")

        clouds[0].stop()
        result = down(states[0])
        assert result.returncode == 0, result.stdout + result.stderr
        assert not (states[0] / "machines").exists()
        assert ssh.run(servers[1], "ping -c1 -W2 10.59.0.1 >/dev/null && echo gateway").stdout.strip() == "gateway"
        assert blackhole(), "the other slot's network still needs its blackhole route"
        links = [name for name in subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout.split()
                 if name.rstrip(":").startswith(slots[1].public_bridge)]
        assert links, "the other slot's bridge must stay"
    finally:
        for cloud, state in zip(clouds, states):
            cloud.stop()
            down(state)
