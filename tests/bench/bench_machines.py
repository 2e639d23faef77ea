#!/usr/bin/env python
# Copyright (c) 2026, autoscale.hetzner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark: real machines behind the local cloud (the nspawn backend, driven directly).

* time from create_server() to a working ``ssh root@<ipv4>`` login, for 1 server and for 6 at
  once, with a cached base image (goal: 6 in under 5 s),
* CPU used by one machine's boot (its cgroup's cpu.stat) until sshd answers and until idle,
* base image build time (recorded when the cached image was built; ``--build`` builds a fresh
  one into a temporary cache to measure it now),
* disk (overlay upper layer) and memory (PSS of the machine's processes + its systemd-nspawn)
  per idle machine.

Root on Linux only; otherwise it prints why it did not run. Prints a markdown section to stdout
(docs/benchmarks.md collects it).

    .venv/bin/python tests/bench/bench_machines.py [--build] [--many 6] [--rounds 2]
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "localcloud"))

SSH = ["ssh", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
       "-o", "BatchMode=yes", "-o", "ConnectTimeout=5", "-o", "LogLevel=ERROR"]


def banner(ip: str) -> bool:
    try:
        with socket.create_connection((ip, 22), timeout=0.5) as sock:
            sock.settimeout(0.5)
            return sock.recv(4) == b"SSH-"
    except OSError:
        return False


def login_time(key: Path, ip: str, t0: float, timeout: float = 120) -> float:
    """Like a client that waits for port 22 (Ansible's wait_for) and then logs in: a cheap TCP
    probe every 50 ms, ssh only once sshd answers (an ssh process per try would eat the CPU
    the machines boot with)."""
    while not banner(ip) and time.monotonic() - t0 < timeout:
        time.sleep(0.05)
    while time.monotonic() - t0 < timeout:
        if subprocess.run([*SSH, "-i", str(key), f"root@{ip}", "true"], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL).returncode == 0:
            return time.monotonic() - t0
        time.sleep(0.05)
    raise RuntimeError(f"no ssh login on {ip} within {timeout}s")


def cgroup_cpu(name: str) -> float | None:
    for base in (Path("/sys/fs/cgroup/unified/localcloud"), Path("/sys/fs/cgroup/localcloud")):
        stat = base / name / "cpu.stat"
        if stat.exists():
            for line in stat.read_text().splitlines():
                if line.startswith("usage_usec"):
                    return int(line.split()[1]) / 1e6
    return None


def pss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def machine_memory(machine) -> tuple[float, int]:
    """PSS (MiB) of every process in the machine's pid namespace plus its systemd-nspawn."""
    init = machine.init_pid()
    ns = os.readlink(f"/proc/{init}/ns/pid")
    total, count = pss_kib(machine.pid), 0
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            if os.readlink(p / "ns/pid") == ns:
                total += pss_kib(int(p.name))
                count += 1
        except OSError:
            continue
    return total / 1024, count


def du_mib(path: Path) -> float:
    out = subprocess.run(["du", "-sk", "--one-file-system", str(path)], capture_output=True, text=True)
    return int(out.stdout.split()[0]) / 1024 if out.returncode == 0 else float("nan")


def wait_pool(backend, timeout=120):
    deadline = time.monotonic() + timeout
    while len(backend.hostkeys._ready()) < backend.hostkeys.size and time.monotonic() < deadline:
        time.sleep(0.2)


def create_batch(backend, key: Path, first_id: int, count: int, image: str = "debian-12"):
    from localcloud.backends.base import ServerSpec
    pub = key.with_suffix(".pub").read_text().strip()
    base = backend.slot.public_net.network_address + 512          # x.y.2.0 of the backend's slot
    specs = [ServerSpec(first_id + i, f"bench-{first_id + i}", image, str(base + first_id % 200 + i + 1),
                        (pub,)) for i in range(count)]
    t0 = time.monotonic()
    futures = [backend.create_server(s) for s in specs]
    with ThreadPoolExecutor(count) as pool:
        logins = list(pool.map(lambda s: login_time(key, s.public_ipv4, t0), specs))
    for f in futures:
        f.result()
    return specs, max(logins), time.monotonic() - t0


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--build", action="store_true", help="also time a fresh base image build")
    parser.add_argument("--many", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    print("## Machines (nspawn backend)\n")
    if not sys.platform.startswith("linux") or os.geteuid() != 0:
        print("Not run: needs root on Linux (systemd-nspawn, netns, overlayfs, nftables).")
        return 0
    from localcloud.backends.nspawn import NspawnBackend, images
    from localcloud.testing import MACHINES_LOCK_WAIT

    work = Path(tempfile.mkdtemp(prefix="bench-machines-"))
    key = work / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    rows, notes = [], []
    backend = NspawnBackend(lock_wait=MACHINES_LOCK_WAIT, slot="auto")
    backend.open(work / "state")
    try:
        t0 = time.monotonic()
        backend.warm_up(("debian-12",)).result()
        prep = time.monotonic() - t0
        wait_pool(backend)
        marker = images.image_path("bookworm") / ".localcloud-image"
        recorded = dict(l.split("=", 1) for l in marker.read_text().split()) if marker.exists() else {}

        one, many = [], []
        next_id = 1
        for _ in range(args.rounds):
            specs, login, _ = create_batch(backend, key, next_id, 1)
            one.append(login)
            cpu_banner = cgroup_cpu(backend.machines[specs[0].server_id].name)
            for s in specs:
                backend.delete_server(s.server_id).result()
            next_id += 1
            wait_pool(backend)
            specs, login, _ = create_batch(backend, key, next_id + 100, args.many)
            many.append(login)
            for s in specs:
                backend.delete_server(s.server_id).result()
            next_id += 1
            wait_pool(backend)

        trixie = []
        if images.image_path("trixie").joinpath(".localcloud-image").exists():
            for r in range(args.rounds):
                specs, login, _ = create_batch(backend, key, 800 + r, 1, "debian-13")
                trixie.append(login)
                for s in specs:
                    backend.delete_server(s.server_id).result()
                wait_pool(backend)

        # one idle machine: CPU for the whole boot, disk, memory
        specs, _, _ = create_batch(backend, key, 900, 1)
        m = backend.machines[specs[0].server_id]
        subprocess.run([*SSH, "-i", str(key), f"root@{specs[0].public_ipv4}", "cloud-init status --wait"],
                       capture_output=True, timeout=120)
        time.sleep(3)
        cpu_total = cgroup_cpu(m.name)
        upper = du_mib(m.disk / "upper")
        pss, procs = machine_memory(m)
        base_mib = du_mib(images.image_path("bookworm"))

        rows.append(("create → SSH login, 1 server (cached base)",
                     " / ".join(f"{x:.2f} s" for x in one)))
        rows.append((f"create → SSH login, {args.many} servers at once (cached base)",
                     " / ".join(f"{x:.2f} s" for x in many)))
        if trixie:
            rows.append(("create → SSH login, 1 debian-13 server (cached base)",
                         " / ".join(f"{x:.2f} s" for x in trixie)))
        if cpu_banner is not None:
            rows.append(("CPU of one boot until the first SSH login / until cloud-init is done",
                         f"{cpu_banner:.2f} s / {cpu_total:.2f} s"))
        rows.append(("host setup on first use (packages present, cached image: bridge, guard, proxy)",
                     f"{prep:.2f} s"))
        if recorded:
            rows.append(("base image build (debootstrap + cloud-init, recorded in the cache)",
                         f"{float(recorded.get('build_seconds', 'nan')):.1f} s"))
        rows.append(("base image size (debian-12)", f"{base_mib:.0f} MiB"))
        rows.append(("idle machine: disk (overlay upper layer)", f"{upper:.1f} MiB"))
        rows.append(("idle machine: memory (PSS, incl. systemd-nspawn)", f"{pss:.1f} MiB in {procs} processes"))
    finally:
        backend.close()

    if args.build:
        cache = work / "image-cache"
        os.environ["LOCALCLOUD_IMAGE_CACHE"] = str(cache)
        b = NspawnBackend(lock_wait=MACHINES_LOCK_WAIT, slot="auto")
        b.open(work / "state-build")
        try:
            t0 = time.monotonic()
            b.warm_up(("debian-12",)).result()
            rows.append(("base image build now (debian-12, warm apt-cacher-ng)", f"{time.monotonic() - t0:.1f} s"))
        finally:
            b.close()
            shutil.rmtree(cache, ignore_errors=True)
    shutil.rmtree(work, ignore_errors=True)

    cpus = os.cpu_count()
    load = os.getloadavg()[0]
    print(f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {platform.system()} {platform.release()}, "
          f"{cpus} CPUs, load average before the end {load:.1f}. Machines are debian-12 with cloud-init "
          "(NoCloud seed), SSH host keys from the backend's pre-generated pool.\n")
    print("| measure | result |")
    print("|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")
    for n in notes:
        print(f"\n{n}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
