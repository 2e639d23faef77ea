#!/usr/bin/env python
# Copyright (c) 2026, autoscale.hetzner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark: the local cloud's own speed and size on loopback (no rate limit, instant actions).

* requests per second of ``GET /servers?per_page=50`` with 500 servers,
* requests per second of ``POST /ssh_keys`` (distinct ed25519 keys),
* resident memory (VmRSS of the serve process) with 5,000 resources
  (servers, networks, firewalls, SSH keys, volumes).

Requests go over keep-alive connections from a few client threads (``http.client``, so the
client costs little next to the server). Prints a markdown section to stdout (docs/benchmarks.md
collects it).

    .venv/bin/python tests/bench/bench_localcloud.py [--servers 500] [--requests 2000] [--threads 4]
"""
from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "localcloud"))

from localcloud.testing import start_cloud  # noqa: E402


class Connections:
    """One keep-alive HTTP connection per thread to the API."""

    def __init__(self, endpoint: str, token: str):
        parts = urlsplit(endpoint)
        self.host, self.port, self.prefix = parts.hostname, parts.port, parts.path.rstrip("/")
        self.headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        self.local = threading.local()

    def request(self, method: str, path: str, body: dict | None = None, parse: bool = True):
        conn = getattr(self.local, "conn", None)
        if conn is not None:
            try:
                return self._send(conn, method, path, body, parse)
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                pass             # the server closed an idle keep-alive connection: once more on a new one
        self.local.conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
        return self._send(self.local.conn, method, path, body, parse)

    def _send(self, conn, method: str, path: str, body: dict | None, parse: bool):
        headers = dict(self.headers)
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        try:
            conn.request(method, self.prefix + path, body=data, headers=headers)
            response = conn.getresponse()
            content = response.read()
        except (http.client.HTTPException, OSError):
            conn.close()
            self.local.conn = None
            raise
        if not parse:
            return response.status, content
        return response.status, (json.loads(content) if content else None)

    def ok(self, method: str, path: str, body: dict | None = None) -> dict | None:
        status, answer = self.request(method, path, body)
        if status >= 300:
            raise RuntimeError(f"{method} {path} -> {status} {answer}")
        return answer


def run_many(threads: int, calls: list) -> float:
    """Run every zero-argument call on `threads` threads; seconds taken."""
    start = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        for future in [pool.submit(call) for call in calls]:
            future.result()
    return time.perf_counter() - start


def ssh_key(index: int) -> str:
    blob = b"\x00\x00\x00\x0bssh-ed25519\x00\x00\x00\x20" + os.urandom(32)
    return f"ssh-ed25519 {base64.b64encode(blob).decode()} bench-{index}"


def rss_kib(pid: int) -> dict[str, int]:
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0])
    return values


def machine() -> str:
    mem_kib = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal:"))
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.machine())
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (f"{os.cpu_count()} CPUs (`nproc` {len(os.sched_getaffinity(0))}, {cpu}), "
            f"{mem_kib / 1024 / 1024:.1f} GiB RAM, Python {platform.python_version()}, {platform.system()} {platform.release()}; "
            f"load average at start {load}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--servers", type=int, default=500, help="servers present while GET /servers is measured")
    parser.add_argument("--requests", type=int, default=2000, help="GET /servers?per_page=50 requests measured")
    parser.add_argument("--keys", type=int, default=1000, help="POST /ssh_keys requests measured")
    parser.add_argument("--threads", type=int, default=4, help="client threads (keep-alive connection each)")
    parser.add_argument("--total", type=int, default=5000, help="resources present when memory is measured")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-localcloud-") as tmp:
        cloud = start_cloud(Path(tmp), "--action-time", "0", "--rate-limit", "0")
        try:
            api = Connections(cloud.endpoint, cloud.token)
            pid = cloud.process.pid
            rss_empty = rss_kib(pid)

            # -- 500 servers, then GET /servers?per_page=50
            def server(i):
                return lambda: api.ok("POST", "/servers", {"name": f"bench-{i}", "server_type": "cx23",
                                                           "image": "debian-12", "location": "hel1",
                                                           "labels": {"bench": "yes", "n": str(i % 10)}})
            create_servers = run_many(args.threads, [server(i) for i in range(args.servers)])
            pages = max(1, -(-args.servers // 50))
            total = api.ok("GET", "/servers?per_page=50")["meta"]["pagination"]["total_entries"]
            assert total == args.servers, total

            def get_servers(i, check=False):
                def call():
                    # the measured requests leave the JSON unparsed: the client shares the CPUs
                    status, content = api.request("GET", f"/servers?per_page=50&page={i % pages + 1}", parse=check)
                    assert status == 200, (status, content)
                    if check:
                        assert len(content["servers"]) == min(50, args.servers - (i % pages) * 50)
                return call
            run_many(args.threads, [get_servers(i, check=True) for i in range(min(100, args.requests))])  # warm-up
            get_time = run_many(args.threads, [get_servers(i) for i in range(args.requests)])

            # -- POST /ssh_keys
            keys = [ssh_key(i) for i in range(args.keys)]

            def post_key(i):
                return lambda: api.ok("POST", "/ssh_keys", {"name": f"bench-key-{i}", "public_key": keys[i]})
            key_time = run_many(args.threads, [post_key(i) for i in range(args.keys)])

            # -- fill up to `total` resources: servers, networks, firewalls, SSH keys, volumes
            share = args.total // 5
            plan = {"servers": share - args.servers, "ssh_keys": share + (args.total - 5 * share) - args.keys,
                    "networks": share, "firewalls": share, "volumes": share}
            calls = []
            calls += [server(args.servers + i) for i in range(max(0, plan["servers"]))]
            extra = [ssh_key(args.keys + i) for i in range(max(0, plan["ssh_keys"]))]
            calls += [(lambda i=i: api.ok("POST", "/ssh_keys", {"name": f"bench-key-{args.keys + i}",
                                                                "public_key": extra[i]}))
                      for i in range(len(extra))]
            calls += [(lambda i=i: api.ok("POST", "/networks", {"name": f"bench-net-{i}", "ip_range": "10.0.0.0/16",
                                                                "labels": {"bench": "yes"}}))
                      for i in range(plan["networks"])]
            rules = [{"direction": "in", "protocol": "tcp", "port": "22", "source_ips": ["0.0.0.0/0", "::/0"]},
                     {"direction": "in", "protocol": "icmp", "source_ips": ["0.0.0.0/0", "::/0"]}]
            calls += [(lambda i=i: api.ok("POST", "/firewalls", {"name": f"bench-fw-{i}", "rules": rules}))
                      for i in range(plan["firewalls"])]
            calls += [(lambda i=i: api.ok("POST", "/volumes", {"name": f"bench-vol-{i}", "size": 10,
                                                               "location": "hel1"}))
                      for i in range(plan["volumes"])]
            fill_time = run_many(args.threads, calls)
            counts = {kind: api.ok("GET", f"/{kind}?per_page=1")["meta"]["pagination"]["total_entries"]
                      for kind in ("servers", "networks", "firewalls", "ssh_keys", "volumes", "primary_ips")}
            time.sleep(0.5)
            rss_full = rss_kib(pid)
            full_get = run_many(args.threads, [get_servers(i) for i in range(min(500, args.requests))])
        finally:
            cloud.stop()

    explicit = sum(v for k, v in counts.items() if k != "primary_ips")
    try:
        version = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                                 capture_output=True, text=True).stdout.strip()
    except OSError:
        version = "?"
    print("## Local cloud: throughput and memory\n")
    print(f"- date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, commit {version}")
    print(f"- machine: {machine()}")
    print(f"- local cloud: `localcloud serve --action-time 0 --rate-limit 0` on 127.0.0.1 (one uvicorn worker), "
          f"SQLite write-through; client: {args.threads} threads with one keep-alive `http.client` connection each, "
          "on the same machine\n")
    print("| measurement | result |")
    print("|---|---|")
    print(f"| `GET /servers?per_page=50`, {args.servers} servers ({pages} pages), {args.requests} requests "
          f"| **{args.requests / get_time:.0f} req/s** ({get_time * 1000 / args.requests:.1f} ms per request "
          f"of 50 servers) |")
    print(f"| `POST /ssh_keys`, {args.keys} distinct ed25519 keys | **{args.keys / key_time:.0f} req/s** |")
    print(f"| `POST /servers` (instant actions), {args.servers} servers | {args.servers / create_servers:.0f} req/s |")
    print(f"| filling up to {explicit} resources ({len(calls)} POSTs of servers, SSH keys, networks, firewalls, "
          f"volumes) | {len(calls) / fill_time:.0f} req/s |")
    print(f"| `GET /servers?per_page=50` with {counts['servers']} servers and {explicit} resources "
          f"| {min(500, args.requests) / full_get:.0f} req/s |")
    print(f"| memory (VmRSS of the serve process), empty | {rss_empty['VmRSS'] / 1024:.0f} MiB |")
    print(f"| memory with {explicit} resources ({counts['servers']} servers, {counts['networks']} networks, "
          f"{counts['firewalls']} firewalls, {counts['ssh_keys']} SSH keys, {counts['volumes']} volumes; "
          f"plus {counts['primary_ips']} primary IPs and their actions) "
          f"| **{rss_full['VmRSS'] / 1024:.0f} MiB** (peak {rss_full['VmHWM'] / 1024:.0f} MiB) |")
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
