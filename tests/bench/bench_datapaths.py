#!/usr/bin/env python
# Copyright (c) 2026, autoscale.hetzner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark: the data paths of the local cloud's machines (load balancers, volumes).

Through the API of `localcloud serve --machines nspawn`: two cx23 servers run nginx (Debian
package, through the apt proxy), a load balancer (HAProxy) has an http service with both as
targets. From this host, wrk (Debian package, installed if missing):

* requests per second, 32 connections for 5 s, directly to one target and through the load
  balancer (same run, same host: client, load balancer and targets share its CPUs);
* latency of one connection's sequential requests, directly and through the load balancer: the
  difference is what the load balancer adds.

In one machine: sequential write (dd, 1 MiB blocks, 1 GiB, fdatasync at the end) to its root disk
(overlayfs on the host's filesystem) and to an ext4 volume (loop device on a sparse file).

Root on Linux only; otherwise it prints why it did not run. Prints a markdown section to stdout.

    .venv/bin/python tests/bench/bench_datapaths.py [--seconds 5] [--rounds 2]
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "localcloud"))

SSH = ["ssh", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
       "-o", "BatchMode=yes", "-o", "ConnectTimeout=5", "-o", "LogLevel=ERROR"]


class Api:
    def __init__(self, cloud):
        self.cloud = cloud

    def __call__(self, method, path, body=None):
        req = urllib.request.Request(self.cloud.endpoint + path, method=method,
                                     data=json.dumps(body).encode() if body is not None else None,
                                     headers={"Authorization": f"Bearer {self.cloud.token}",
                                              "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as resp:
            return json.loads(resp.read() or b"{}")

    def wait(self, *actions):
        for action in actions:
            while action["status"] == "running":
                time.sleep(0.1)
                action = self("GET", f"/actions/{action['id']}")["action"]
            if action["status"] != "success":
                raise RuntimeError(f"action failed: {action}")


def ssh(key: Path, ip: str, command: str, timeout: float = 600) -> str:
    out = subprocess.run([*SSH, "-i", str(key), f"root@{ip}", command], capture_output=True, text=True,
                         timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(f"{command}: {out.stdout[-500:]} {out.stderr[-500:]}")
    return out.stdout + out.stderr


def wait_ssh(key: Path, ip: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while subprocess.run([*SSH, "-i", str(key), f"root@{ip}", "true"], capture_output=True).returncode:
        if time.monotonic() > deadline:
            raise RuntimeError(f"no ssh on {ip}")
        time.sleep(0.3)


def wrk(url: str, connections: int, seconds: int) -> tuple[float, float]:
    """(requests per second, mean latency in ms)."""
    out = subprocess.run(["wrk", "-t", "1" if connections == 1 else "2", "-c", str(connections), "-d", f"{seconds}s",
                          url], capture_output=True, text=True, timeout=seconds + 60).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    value, unit = re.search(r"Latency\s+([\d.]+)(us|ms|s)", out).groups()
    return rate, float(value) * {"us": 0.001, "ms": 1, "s": 1000}[unit]


def dd_mbs(key: Path, ip: str, path: str) -> float:
    out = ssh(key, ip, f"dd if=/dev/zero of={path} bs=1M count=1024 conv=fdatasync 2>&1; rm -f {path}")
    value, unit = re.search(r"([\d.,]+) ([MG])B/s", out).groups()
    return float(value.replace(",", ".")) * (1000 if unit == "G" else 1)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    print("## Machines: load balancer and volume data paths\n")
    if not sys.platform.startswith("linux") or os.geteuid() != 0:
        print("Not run: needs root on Linux (systemd-nspawn, netns, overlayfs, nftables).")
        return 0
    if not shutil.which("wrk"):
        subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], capture_output=True,
                       env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    if not shutil.which("wrk"):
        print("Not run: wrk (Debian package) is not installed and could not be installed.")
        return 0
    from localcloud.testing import start_cloud

    work = Path(tempfile.mkdtemp(prefix="bench-datapaths-"))
    key = work / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    state = work / "state"
    cloud = start_cloud(state, "--machines", "nspawn", "--action-time", "0.1", "--rate-limit", "0")
    try:
        api = Api(cloud)
        key_id = api("POST", "/ssh_keys", {"name": "bench", "public_key": key.with_suffix(".pub").read_text()})["ssh_key"]["id"]
        ips = []
        for name in ("bench-web-1", "bench-web-2"):
            made = api("POST", "/servers", {"name": name, "server_type": "cx23", "image": "debian-12",
                                            "location": "fsn1", "ssh_keys": [key_id], "labels": {"bench": "web"}})
            api.wait(made["action"], *made["next_actions"])
            ips.append(made["server"]["public_net"]["ipv4"]["ip"])
        for ip in ips:
            wait_ssh(key, ip)
            ssh(key, ip, "apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "
                         "nginx-light >/dev/null && echo ok > /var/www/html/index.html && systemctl start nginx")
        lb = api("POST", "/load_balancers", {
            "name": "bench-lb", "load_balancer_type": "lb11", "location": "fsn1",
            "services": [{"protocol": "http", "listen_port": 80, "destination_port": 80,
                          "health_check": {"protocol": "http", "port": 80, "interval": 3, "timeout": 2, "retries": 2,
                                           "http": {"path": "/"}}}],
            "targets": [{"type": "label_selector", "label_selector": {"selector": "bench=web"}}]})
        api.wait(lb["action"])
        lb_ip = lb["load_balancer"]["public_net"]["ipv4"]["ip"]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            targets = api("GET", f"/load_balancers/{lb['load_balancer']['id']}")["load_balancer"]["targets"][0]["targets"]
            if all(t["health_status"][0]["status"] == "healthy" for t in targets) and len(targets) == 2:
                break
            time.sleep(0.5)

        direct_rps, lb_rps, direct_ms, lb_ms = [], [], [], []
        for _ in range(args.rounds):
            direct_rps.append(wrk(f"http://{ips[0]}/", 32, args.seconds)[0])
            lb_rps.append(wrk(f"http://{lb_ip}/", 32, args.seconds)[0])
            direct_ms.append(wrk(f"http://{ips[0]}/", 1, args.seconds)[1])
            lb_ms.append(wrk(f"http://{lb_ip}/", 1, args.seconds)[1])

        vol = api("POST", "/volumes", {"name": "bench-vol", "size": 10, "server": api("GET", "/servers?name=bench-web-1")["servers"][0]["id"],
                                       "format": "ext4", "automount": True})
        api.wait(vol["action"], *vol["next_actions"])
        mnt = f"/mnt/HC_Volume_{vol['volume']['id']}"
        root_mbs, vol_mbs = [], []
        for _ in range(args.rounds):
            root_mbs.append(dd_mbs(key, ips[0], "/root/dd.bin"))
            vol_mbs.append(dd_mbs(key, ips[0], f"{mnt}/dd.bin"))
    finally:
        cloud.stop(signal.SIGTERM)
        subprocess.run([sys.executable, "-m", "localcloud.cli", "down", "--state", str(state)], cwd=ROOT / "localcloud",
                       capture_output=True, timeout=300)
        shutil.rmtree(work, ignore_errors=True)

    def span(values, fmt):
        return fmt.format(min(values)) if len(values) == 1 else f"{fmt.format(min(values))}–{fmt.format(max(values))}"
    added = [b - a for a, b in zip(direct_ms, lb_ms)]
    print(f"{args.rounds} rounds; wrk from this host, nginx-light on two cx23 machines, HAProxy load balancer "
          "(http service, 2 targets, round robin). Client, load balancer and targets share the host's CPUs "
          f"(load average at the end {os.getloadavg()[0]:.1f}).\n")
    print("| measure | directly to a target | through the load balancer |")
    print("|---|---|---|")
    print(f"| requests/s, 32 connections, {args.seconds} s | {span(direct_rps, '{:.0f}')} | {span(lb_rps, '{:.0f}')} |")
    print(f"| mean latency, 1 connection | {span(direct_ms, '{:.3f}')} ms | {span(lb_ms, '{:.3f}')} ms "
          f"(+{statistics.mean(added):.3f} ms) |")
    print()
    print("| sequential write, 1 GiB in 1 MiB blocks + fdatasync | MB/s |")
    print("|---|---|")
    print(f"| machine's root disk (overlayfs) | {span(root_mbs, '{:.0f}')} |")
    print(f"| ext4 volume (loop device on a sparse file) | {span(vol_mbs, '{:.0f}')} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
