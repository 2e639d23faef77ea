#!/usr/bin/env python
# Copyright (c) 2026, autoscale.hetzner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark: autoscale.hetzner.hcloud against hetzner.hcloud.hcloud (the inventory plugin of the
official collection, as bundled with the `ansible` package) for 1,000 servers in 10 private
networks on the local cloud. Wall time of `ansible-inventory --list` and API requests (counted by
the local cloud). Prints a markdown section to stdout.

    .venv/bin/python tests/bench/bench_inventory.py [--servers 1000] [--networks 10] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
TIERS = ("web", "app", "db")


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_localcloud(state):
    port = free_port()
    log = open(state / "serve.log", "wb")  # pylint: disable=consider-using-with
    proc = subprocess.Popen(  # pylint: disable=consider-using-with
        [str(BIN / "localcloud"), "serve", "--listen", "127.0.0.1:%d" % port, "--state", str(state),
         "--rate-limit", "0", "--action-time", "0.01"], stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while not (state / "env").exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("localcloud did not start:\n" + (state / "serve.log").read_text())
        time.sleep(0.1)
    env = dict(line.split("=", 1) for line in (state / "env").read_text().split())
    return proc, log, env["HCLOUD_ENDPOINT"], env["HCLOUD_TOKEN"]


def populate(endpoint, token, servers, networks):
    session = requests.Session()
    session.headers["Authorization"] = "Bearer " + token

    def post(path, body):
        answer = session.post(endpoint + path, json=body, timeout=60)
        if answer.status_code >= 300:
            raise SystemExit("%s %s: %s" % (path, answer.status_code, answer.text))
        return answer.json()

    network_ids = []
    for n in range(networks):
        data = post("/networks", {"name": "bench-net-%d" % n, "ip_range": "10.%d.0.0/16" % n,
                                  "subnets": [{"type": "cloud", "ip_range": "10.%d.0.0/16" % n,
                                               "network_zone": "eu-central"}]})
        network_ids.append(data["network"]["id"])

    def create(i):
        # plain requests.Session per thread would be cleaner; the server side is the bottleneck anyway
        answer = requests.post(endpoint + "/servers", timeout=60, headers={"Authorization": "Bearer " + token}, json={
            "name": "bench-%04d" % i, "server_type": "cx23", "image": "debian-12", "location": "nbg1",
            "labels": {"tier": TIERS[i % 3], "bench": "inventory"}, "networks": [network_ids[i % networks]]})
        if answer.status_code >= 300:
            raise SystemExit("server %d: %s %s" % (i, answer.status_code, answer.text))

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(create, range(servers)))


def stats(admin):
    return requests.get(admin + "/_localcloud/stats", timeout=10).json()["total"]


def measure(admin, config, env, runs):
    times, counts = [], []
    for _ in range(runs):
        before = stats(admin)
        start = time.monotonic()
        proc = subprocess.run([str(BIN / "ansible-inventory"), "-i", str(config), "--list"], env=env,
                              capture_output=True, text=True, check=False)
        times.append(time.monotonic() - start)
        counts.append(stats(admin) - before)
        if proc.returncode != 0 or '"bench-0999"' not in proc.stdout and "bench-0" not in proc.stdout:
            raise SystemExit("ansible-inventory failed for %s:\n%s" % (config, proc.stderr[-3000:]))
    return statistics.median(times), statistics.median(counts)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--servers", type=int, default=1000)
    parser.add_argument("--networks", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-inventory-"))
    (work / "state").mkdir()
    proc, log, endpoint, token = start_localcloud(work / "state")
    admin = endpoint.rsplit("/v1", 1)[0]
    try:
        # hetzner.hcloud 5.x (bundled with ansible 12) still reads server.datacenter
        requests.put(admin + "/_localcloud/config", json={"legacy_datacenters": True}, timeout=10)
        populate(endpoint, token, args.servers, args.networks)
        collections = work / "collections" / "ansible_collections" / "autoscale"
        collections.mkdir(parents=True)
        (collections / "hetzner").symlink_to(ROOT)
        ours = work / "ours.hcloud.yml"
        ours.write_text("plugin: autoscale.hetzner.hcloud\n")
        theirs = work / "theirs.hcloud.yml"
        theirs.write_text("plugin: hetzner.hcloud.hcloud\n")
        env = dict(os.environ, HCLOUD_ENDPOINT=endpoint, HCLOUD_TOKEN=token,
                   ANSIBLE_COLLECTIONS_PATH=str(work / "collections"),
                   ANSIBLE_INVENTORY_ENABLED="auto,autoscale.hetzner.hcloud,hetzner.hcloud.hcloud")
        results = {"autoscale.hetzner.hcloud": measure(admin, ours, env, args.runs),
                   "hetzner.hcloud.hcloud": measure(admin, theirs, env, args.runs)}
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()

    (o_time, o_req), (t_time, t_req) = results["autoscale.hetzner.hcloud"], results["hetzner.hcloud.hcloud"]
    print("## Dynamic inventory: %d servers in %d private networks\n" % (args.servers, args.networks))
    print("`ansible-inventory --list`, median of %d runs, local cloud, requests counted by the cloud.\n" % args.runs)
    print("| plugin | wall time | API requests |")
    print("|---|---:|---:|")
    print("| autoscale.hetzner.hcloud | %.2f s | %d |" % (o_time, o_req))
    print("| hetzner.hcloud.hcloud | %.2f s | %d |" % (t_time, t_req))
    print("| ratio | %.1f× faster | %.1f× fewer |" % (t_time / o_time, t_req / max(1, o_req)))
    print()
    print("Ours: servers with per_page=50, pages 2..N in parallel once page 1 gave the count, one list of "
          "networks, no token probe. Theirs: GET /locations as token check, servers page by page, then one "
          "GET /networks/{id} per network the servers are in.")


if __name__ == "__main__":
    main()
