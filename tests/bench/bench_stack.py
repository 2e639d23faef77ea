#!/usr/bin/env python
# Copyright (c) 2026, autoscale.hetzner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark: the production scenario with autoscale.hetzner.stack (one task) against the same
topology written as a playbook of hetzner.hcloud modules, on the local cloud with realistic
action times (server create 10 s, network attach 2 s, everything else 0.5 s).

Prints a markdown section to stdout (docs/benchmarks.md collects it). Requests are counted by
the local cloud (GET /_localcloud/stats), action polling included.

    .venv/bin/python tests/bench/bench_stack.py [--action-times create_server=10,attach_to_network=2]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests
import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PUBLIC_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPxVf7L/6fLNm6rfdpaJnp0rD7mA4X61GgFWQSvbD24B bench@autoscale"
ADMIN_SOURCES = ["198.51.100.0/24"]


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LocalCloud:
    def __init__(self, action_times, action_time):
        self.state = Path(tempfile.mkdtemp(prefix="bench-stack-"))
        port = free_port()
        self.log = open(self.state / "serve.log", "wb")  # pylint: disable=consider-using-with
        self.proc = subprocess.Popen(  # pylint: disable=consider-using-with
            [str(BIN / "localcloud"), "serve", "--listen", "127.0.0.1:%d" % port, "--state", str(self.state),
             "--rate-limit", "0", "--action-time", str(action_time), "--action-times", action_times],
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while not (self.state / "env").exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("localcloud did not start:\n" + (self.state / "serve.log").read_text())
            time.sleep(0.1)
        env = dict(line.split("=", 1) for line in (self.state / "env").read_text().split())
        self.endpoint = env["HCLOUD_ENDPOINT"]
        self.admin = self.endpoint.rsplit("/v1", 1)[0]
        # hetzner.hcloud 5.x (bundled with ansible 12) still reads server.datacenter
        requests.put(self.admin + "/_localcloud/config", json={"legacy_datacenters": True}, timeout=10)

    def project(self, name):
        answer = requests.post(self.admin + "/_localcloud/projects", json={"name": name}, timeout=10)
        answer.raise_for_status()
        return answer.json()["token"]

    def requests_total(self):
        return requests.get(self.admin + "/_localcloud/stats", timeout=10).json()["total"]

    def close(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.log.close()


def hcloud_playbook(stack):
    """The production topology as a classic playbook: one hetzner.hcloud task per resource/relation."""
    servers = [dict(server, tier=tier["name"], server_type=tier["server_type"], image=tier["image"],
                    firewalls=tier["firewalls"], placement_group=tier["placement_group"], network=tier["network"],
                    protection=bool(tier.get("delete_protection")))
               for tier in stack["tiers"] for server in tier["servers"]]
    lb = stack["load_balancers"][0]
    service = lb["services"][0]
    labels = {"stack": stack["name"]}
    tasks = [
        {"name": "SSH key", "hetzner.hcloud.ssh_key": {"name": k["name"], "public_key": PUBLIC_KEY, "labels": labels}}
        for k in stack["ssh_keys"]]
    for net in stack["networks"]:
        tasks.append({"name": "Network", "hetzner.hcloud.network": {"name": net["name"], "ip_range": net["ip_range"],
                                                                     "labels": labels}})
        tasks.append({"name": "Subnets", "hetzner.hcloud.subnetwork": {
            "network": net["name"], "ip_range": "{{ item }}", "network_zone": "eu-central", "type": "cloud"},
            "loop": [s["ip_range"] for s in net["subnets"]]})
    tasks.append({"name": "Firewalls", "hetzner.hcloud.firewall": {
        "name": "{{ item.name }}", "rules": "{{ item.rules }}", "labels": labels}, "loop": stack["firewalls"]})
    tasks.append({"name": "Placement groups", "hetzner.hcloud.placement_group": {
        "name": "{{ item.name }}", "type": "spread", "labels": labels}, "loop": stack["placement_groups"]})
    tasks.append({"name": "Servers", "hetzner.hcloud.server": {
        "name": "{{ item.name }}", "server_type": "{{ item.server_type }}", "image": "{{ item.image }}",
        "location": stack["location"], "ssh_keys": [stack["ssh_keys"][0]["name"]], "firewalls": "{{ item.firewalls }}",
        "placement_group": "{{ item.placement_group }}", "labels": {"stack": stack["name"], "tier": "{{ item.tier }}"},
        "delete_protection": "{{ item.protection }}", "rebuild_protection": "{{ item.protection }}",
        "state": "present"}, "loop": servers})
    tasks.append({"name": "Server networks", "hetzner.hcloud.server_network": {
        "network": "{{ item.network }}", "server": "{{ item.name }}", "ip": "{{ item.ip }}", "state": "present"},
        "loop": servers})
    tasks.append({"name": "Volumes", "hetzner.hcloud.volume": {
        "name": "{{ item.name }}", "size": "{{ item.size }}", "server": "{{ item.server }}", "format": "ext4",
        "labels": labels, "state": "present"}, "loop": stack["volumes"]})
    tasks.append({"name": "Load balancer", "hetzner.hcloud.load_balancer": {
        "name": lb["name"], "load_balancer_type": lb["load_balancer_type"], "location": stack["location"],
        "algorithm": lb["algorithm"], "labels": labels, "state": "present"}})
    tasks.append({"name": "Load balancer network", "hetzner.hcloud.load_balancer_network": {
        "load_balancer": lb["name"], "network": lb["network"], "ip": lb["ip"], "state": "present"}})
    tasks.append({"name": "Load balancer service", "hetzner.hcloud.load_balancer_service": {
        "load_balancer": lb["name"], "protocol": service["protocol"], "listen_port": service["listen_port"],
        "destination_port": service["destination_port"], "health_check": service["health_check"],
        "state": "present"}})
    tasks.append({"name": "Load balancer target", "hetzner.hcloud.load_balancer_target": {
        "load_balancer": lb["name"], "type": "label_selector", "label_selector": "stack=%s,tier=web" % stack["name"],
        "use_private_ip": True, "state": "present"}})
    return [{"name": "Production stack, one hetzner.hcloud task per resource", "hosts": "localhost",
             "gather_facts": False, "vars": {"ansible_python_interpreter": "{{ ansible_playbook_python }}"},
             "tasks": tasks}]


def run(cmd, env):
    start = time.monotonic()
    proc = subprocess.run(cmd, env=env, cwd=str(ROOT), capture_output=True, text=True, check=False)
    elapsed = time.monotonic() - start
    if proc.returncode != 0:
        raise SystemExit("failed: %s\n%s\n%s" % (" ".join(cmd[:4]), proc.stdout[-4000:], proc.stderr[-4000:]))
    return elapsed


def measure(cloud, cmd, env):
    before = cloud.requests_total()
    elapsed = run(cmd, env)
    return elapsed, cloud.requests_total() - before


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--action-times", default="create_server=10,attach_to_network=2")
    parser.add_argument("--action-time", type=float, default=0.5)
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT / "tests"))
    from scenarios import scenario  # pylint: disable=import-outside-toplevel
    stack = scenario("production", admin_public_key=PUBLIC_KEY, admin_sources=ADMIN_SOURCES)

    work = Path(tempfile.mkdtemp(prefix="bench-stack-work-"))
    collections = work / "collections"
    (collections / "ansible_collections" / "autoscale").mkdir(parents=True)
    (collections / "ansible_collections" / "autoscale" / "hetzner").symlink_to(ROOT)
    playbook = work / "hcloud-modules.yml"
    playbook.write_text(yaml.safe_dump(hcloud_playbook(stack), sort_keys=False))

    cloud = LocalCloud(args.action_times, args.action_time)
    try:
        env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(collections), HCLOUD_ENDPOINT=cloud.endpoint,
                   PATH="%s%s%s" % (BIN, os.pathsep, os.environ.get("PATH", "")), ANSIBLE_NOCOLOR="1")
        stack_cmd = [str(BIN / "ansible-playbook"), "-i", str(ROOT / "inventories" / "production" / "hosts.ini"),
                     str(ROOT / "playbooks" / "provision.yml"), "-e",
                     json.dumps({"hetzner_stack": stack, "admin_public_key": PUBLIC_KEY})]
        modules_cmd = [str(BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local", str(playbook)]
        results = {}
        for label, cmd in (("autoscale.hetzner.stack", stack_cmd), ("hetzner.hcloud modules", modules_cmd)):
            run_env = dict(env, HCLOUD_TOKEN=cloud.project(label.replace(" ", "-")))
            first = measure(cloud, cmd, run_env)
            rerun = measure(cloud, cmd, run_env)
            results[label] = (first, rerun)
    finally:
        cloud.close()

    (s_first, s_rerun), (m_first, m_rerun) = results["autoscale.hetzner.stack"], results["hetzner.hcloud modules"]
    print("## Provisioning the production scenario: stack module vs hetzner.hcloud modules\n")
    print("Local cloud with action times `%s` (others %.1f s); 6 servers, 3 subnets, 2 firewalls, 3 placement "
          "groups, 2 volumes, 1 load balancer. Requests counted by the local cloud, polling included.\n"
          % (args.action_times, args.action_time))
    print("| | autoscale.hetzner.stack | hetzner.hcloud modules | ratio |")
    print("|---|---:|---:|---:|")
    print("| first run, wall time | %.1f s | %.1f s | %.1f× faster |" % (s_first[0], m_first[0], m_first[0] / s_first[0]))
    print("| first run, API requests | %d | %d | %.1f× fewer |" % (s_first[1], m_first[1], m_first[1] / max(1, s_first[1])))
    print("| no-change rerun, wall time | %.1f s | %.1f s | %.1f× faster |" % (s_rerun[0], m_rerun[0], m_rerun[0] / s_rerun[0]))
    print("| no-change rerun, API requests | %d | %d | %.1f× fewer |" % (s_rerun[1], m_rerun[1], m_rerun[1] / max(1, s_rerun[1])))
    print()
    print("Goals: first run at least 4× faster (%s), rerun under 15 requests (%s)." % (
        "met" if m_first[0] / s_first[0] >= 4 else "NOT met", "met" if s_rerun[1] < 15 else "NOT met"))


if __name__ == "__main__":
    main()
