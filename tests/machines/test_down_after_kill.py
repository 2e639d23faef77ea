"""`localcloud down --state DIR` after `kill -9` of `serve --machines nspawn` removes every machine,
mount, loop device, netns (machines, network gateways, load balancers), bridge, route, nft table and
process (systemd-nspawn, HAProxy, lxcfs, apt-cacher-ng) that serve made (from
<state>/machines/state.json), and keeps the disks and volumes for a later serve."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from machines_helpers import (  # noqa: F401  (ssh, ssh_key: fixtures)
    ssh, ssh_key, ROOT, skip_reason)

pytestmark = pytest.mark.skipif(skip_reason() is not None, reason=skip_reason() or "")


def api(cloud, method, path, body=None):
    req = urllib.request.Request(cloud.endpoint + path, method=method,
                                 data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Authorization": f"Bearer {cloud.token}",
                                          "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read() or b"{}")


def traces(recorded: dict | None = None, host_wide: bool = True) -> list[str]:
    """What is left on the host of a local cloud with machines.

    With `recorded` (the state.json that serve wrote) only what that run made is looked for, so
    another local cloud that starts on this host as soon as ours is gone (a developer's, another
    test run waiting for the host lock) does not count. The public bridge and the nft tables have
    host-wide names: `host_wide=False` leaves them out (for when another local cloud holds them)."""
    mine = None
    if recorded is not None:
        machines = recorded.get("machines", {}).values()
        lbs = recorded.get("load_balancers", {}).values()
        mine = {*(l for m in machines for l in m.get("links", [])), *(l for b in lbs for l in b.get("links", [])),
                *(m.get("netns") for m in machines), *(b.get("netns") for b in lbs),
                *(str(m.get("nspawn_pid")) for m in machines), *(str(b.get("haproxy_pid")) for b in lbs)}
        if recorded.get("lxcfs"):
            mine.add(str(recorded["lxcfs"]["pid"]))
        if host_wide:          # bridges and network gateways are named by network, not by this run
            mine |= {*recorded.get("bridges", []), *recorded.get("links", []), *recorded.get("netns", [])}
    left = [f"link {l}" for l in os.listdir("/sys/class/net")
            if l.startswith("lc") and (mine is None or l in mine)]
    if Path("/run/netns").exists():
        left += [f"netns {n.name}" for n in Path("/run/netns").glob("lc*") if mine is None or n.name in mine]
    tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
    if recorded is None:
        left += [f"nft {t}" for t in tables.splitlines() if "localcloud" in t]
    elif host_wide:
        left += [f"nft {t}" for t in tables.splitlines() if t.split(None, 1)[-1] in recorded.get("nft_tables", [])]
    left += [f"mount {l.split()[1]}" for l in Path("/proc/mounts").read_text().splitlines()
             if "/machines/" in l.split()[1] and l.startswith("overlay")
             and (recorded is None or l.split()[1].startswith(str(recorded["_state"])))]
    loops = subprocess.run(["losetup", "-n", "-O", "NAME,BACK-FILE"], capture_output=True, text=True).stdout
    left += [f"loop {line}" for line in loops.splitlines()
             if "/volumes/HC_Volume_" in line and (recorded is None or str(recorded["_state"]) in line)]
    ps = subprocess.run(["ps", "-ww", "-eo", "pid=,stat=,args="], capture_output=True, text=True).stdout
    for line in ps.splitlines():
        pid, stat, args = line.split(None, 2)
        if stat.startswith("Z") or not ("systemd-nspawn" in args and " -M lc" in args
                                        or "apt-cacher-ng -c /run/localcloud" in args
                                        or "haproxy" in args and "/machines/lb-" in args
                                        or "lxcfs" in args and "/run/localcloud/lxcfs" in args):
            continue
        if recorded is None or pid in mine or pid == str(recorded.get("acng_pid")):
            left.append(f"process {args}")
    return left


def wait(cloud, *actions):
    for action in actions:
        deadline = time.monotonic() + 300
        while action["status"] == "running" and time.monotonic() < deadline:
            time.sleep(0.2)
            action = api(cloud, "GET", f"/actions/{action['id']}")["action"]
        assert action["status"] == "success", action


def test_down_cleans_up_after_kill_9(tmp_path, ssh, ssh_key):
    sys.path.insert(0, str(ROOT / "localcloud"))
    from localcloud.testing import start_cloud

    state = tmp_path / "state"
    cloud = start_cloud(state, "--machines", "nspawn", "--action-time", "0.2", "--rate-limit", "0")
    try:
        key = api(cloud, "POST", "/ssh_keys", {"name": "k", "public_key": Path(f"{ssh_key}.pub").read_text()})
        net = api(cloud, "POST", "/networks", {"name": "n", "ip_range": "10.58.0.0/16", "subnets": [
            {"type": "cloud", "network_zone": "eu-central", "ip_range": "10.58.1.0/24"}]})["network"]
        created = api(cloud, "POST", "/servers", {"name": "victim-1", "server_type": "cx23", "image": "debian-12",
                                                  "location": "fsn1", "ssh_keys": [key["ssh_key"]["id"]],
                                                  "networks": [net["id"]], "start_after_create": True})
        wait(cloud, created["action"])
        sid, ip = created["server"]["id"], created["server"]["public_net"]["ipv4"]["ip"]
        vol = api(cloud, "POST", "/volumes", {"name": "v", "size": 10, "server": sid, "format": "xfs", "automount": True})
        wait(cloud, vol["action"], *vol["next_actions"])
        lb = api(cloud, "POST", "/load_balancers", {
            "name": "lb", "load_balancer_type": "lb11", "location": "fsn1", "network": net["id"],
            "services": [{"protocol": "tcp", "listen_port": 22, "destination_port": 22}],
            "targets": [{"type": "server", "server": {"id": sid}, "use_private_ip": True}]})
        wait(cloud, lb["action"])
        fip = api(cloud, "POST", "/floating_ips", {"type": "ipv4", "server": sid})
        wait(cloud, fip["action"])
        ssh.wait(ip, timeout=60)
        ssh.wait(lb["load_balancer"]["public_net"]["ipv4"]["ip"], timeout=30)     # ssh through the load balancer
        os.kill(cloud.process.pid, signal.SIGKILL)
        cloud.process.wait(timeout=10)
        recorded = {**json.loads((state / "machines" / "state.json").read_text()), "_state": state.resolve()}
        left = traces(recorded)
        for what in ("systemd-nspawn", "haproxy", "lxcfs", "loop ", "-lb-9"):
            assert any(what in t for t in left), f"{what} should outlive kill -9 of serve: {left}"
    finally:
        if cloud.process.poll() is None:
            cloud.process.kill()
        down = subprocess.run([sys.executable, "-m", "localcloud.cli", "down", "--state", str(state)],
                              cwd=ROOT / "localcloud", capture_output=True, text=True, timeout=300)
    assert down.returncode == 0, down.stdout + down.stderr
    # The slot's host-wide names (its public bridge, nft tables, gateways) are checked only while no
    # other local cloud holds the slot: one waiting for it starts the moment ours is gone.
    from localcloud.backends.nspawn.host import BackendError, HostLock
    from localcloud.backends.nspawn.slots import Slot
    probe = HostLock(Slot(recorded.get("slot", 0)).lock_path)
    try:
        probe.acquire(tmp_path, wait=0)
        host_wide = True
    except BackendError:
        host_wide = False
    try:
        deadline = time.monotonic() + 10
        while traces(recorded, host_wide) and time.monotonic() < deadline:   # zombies reaped, links settling
            time.sleep(0.2)
        assert traces(recorded, host_wide) == []
    finally:
        probe.release()
    assert not (state / "machines").exists()
    # what a later serve on this state dir boots from: the disks and the volumes' data
    assert (state / "disks" / str(sid) / "upper").is_dir()
    assert any((state / "volumes").glob("HC_Volume_*.img"))
