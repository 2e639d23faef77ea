"""Host networking for the machines: the public bridge, per-network bridges, the forward guard,
blackhole routes for emulated private ranges, veths into each machine's netns, and apt-cacher-ng.

Safety rule: a machine can reach nothing outside this host except Debian's archive through
apt-cacher-ng (which the host runs, so the proxy's own client is the only thing that talks out).
- machines have no default route;
- table inet localcloud_guard drops anything forwarded from an lc* interface to a non-lc*
  interface (and the reverse), anything from the public bridge addressed outside 198.18.0.0/15,
  and any IPv6 that is not link-local;
- each emulated private range gets a blackhole route on the host;
- the network bridges have no address on the host.
"""
from __future__ import annotations

import hashlib
import ipaddress
import os
import shutil
import socket
import threading
import time
from pathlib import Path

from .host import BackendError, StateFile, log, pid_matches, run, write_file

PUB_BRIDGE = "lc-pub"
PUB_HOST_IP = "198.18.0.1"
PUB_NET = ipaddress.ip_network("198.18.0.0/15")
GUARD_TABLE = "localcloud_guard"
FW_TABLE = "localcloud_fw"
PROXY_PORTS = (3142, 3143, 3144, 3145)
ACNG_BIN = "/usr/sbin/apt-cacher-ng"
ACNG_CACHE = Path(os.environ.get("LOCALCLOUD_APT_CACHE", "/var/cache/localcloud/apt-cacher-ng"))
ACNG_RUN = Path("/run/localcloud/acng")
DEBIAN_MIRROR = "http://deb.debian.org/debian"
ACNG_CONF = """\
# written by localcloud (backends/nspawn/network.py)
SupportDir: /usr/lib/apt-cacher-ng
Remap-debrep: file:deb_mirror*.gz /debian ; file:backends_debian
Remap-secdeb: security.debian.org security.debian.org/debian-security deb.debian.org/debian-security /debian-security cdn-fastly.deb.debian.org/debian-security ; deb.debian.org/debian-security
ForceManaged: 1
PassThroughPattern: ^localcloud-allows-no-tunnels$
ExThreshold: 4
"""


def ifname(prefix: str, key: str, suffix: str = "") -> str:
    """An interface name (<= 15 chars) starting with lc, hashed when the ids are long."""
    name = f"{prefix}{key}{suffix}"
    if len(name) <= 15:
        return name
    digest = hashlib.sha1(key.encode()).hexdigest()[: 15 - len(prefix) - len(suffix)]
    return f"{prefix}{digest}{suffix}"


def network_bridge(network_id: int) -> str:
    return ifname("lcn", str(network_id))


def _link_exists(name: str) -> bool:
    return os.path.exists(f"/sys/class/net/{name}")


class HostNetwork:
    def __init__(self, state: StateFile, run_dir: Path):
        self.state = state
        self.run_dir = run_dir
        self.lock = threading.RLock()
        self.ready = False
        self.proxy_port: int | None = None
        self.range_refs: dict[str, int] = {}

    # ---------------------------------------------------------------- public bridge + guard
    def ensure(self) -> None:
        with self.lock:
            if self.ready:
                return
            self._public_bridge()
            self._guard()
            self._start_proxy()
            self.ready = True

    def _public_bridge(self) -> None:
        if not os.path.exists("/proc/sys/net/bridge"):
            run(["modprobe", "br_netfilter"], check=False)
        if not _link_exists(PUB_BRIDGE):
            self.state.add("bridges", PUB_BRIDGE)
            run(["ip", "link", "add", PUB_BRIDGE, "type", "bridge"])
        self.state.add("bridges", PUB_BRIDGE)
        # the Cloud Firewall table needs conntrack on bridged IPv4 traffic (br_netfilter):
        # switch it on for this bridge only, the host-wide sysctl is left alone.
        run(["ip", "link", "set", PUB_BRIDGE, "type", "bridge", "nf_call_iptables", "1"],
            check=False)
        addrs = run(["ip", "-4", "-o", "addr", "show", "dev", PUB_BRIDGE])
        if f"{PUB_HOST_IP}/" not in addrs:
            run(["ip", "addr", "add", f"{PUB_HOST_IP}/{PUB_NET.prefixlen}", "dev", PUB_BRIDGE])
        run(["ip", "link", "set", PUB_BRIDGE, "up"])

    def _guard(self) -> None:
        self.state.add("nft_tables", f"inet {GUARD_TABLE}")
        ruleset = f"""
table inet {GUARD_TABLE}
delete table inet {GUARD_TABLE}
table inet {GUARD_TABLE} {{
  chain guard_forward {{
    type filter hook forward priority -10; policy accept;
    iifname "lc*" oifname != "lc*" counter drop comment "never from a machine out of this host"
    oifname "lc*" iifname != "lc*" counter drop comment "never from outside into a machine"
    iifname "{PUB_BRIDGE}" meta nfproto ipv4 ip daddr != {PUB_NET} counter drop
    iifname "lc*" meta nfproto ipv6 ip6 daddr != {{ fe80::/10, ff02::/16 }} counter drop
  }}
}}
"""
        run(["nft", "-f", "-"], input=ruleset)

    # ---------------------------------------------------------------- apt-cacher-ng
    def check_proxy(self) -> None:
        """Start apt-cacher-ng again if it died (same port: the machines' apt config points there)."""
        with self.lock:
            pid = self.state.data.get("acng_pid")
            if not (pid and pid_matches(pid, "apt-cacher-ng")):
                log.warning("apt-cacher-ng is gone: starting it again")
                self._start_proxy(prefer=self.proxy_port)

    def _start_proxy(self, prefer: int | None = None) -> None:
        pid = self.state.data.get("acng_pid")
        if pid and pid_matches(pid, "apt-cacher-ng"):
            return
        # not under the state dir: apt-cacher-ng runs as its own user and must be able to reach
        # its config (a pytest tmp dir, for one, is 0700 root)
        acng = ACNG_RUN
        if acng.exists():
            shutil.rmtree(acng)
        with self.state.lock:
            self.state.data["acng_dir"] = str(acng)
            self.state.save()
        for d in (ACNG_CACHE / "cache", ACNG_CACHE / "log", acng / "run"):
            d.mkdir(parents=True, exist_ok=True)
            shutil.chown(d, "apt-cacher-ng", "apt-cacher-ng")
        # private config copy: the packaged Debian backend is ftp.debian.org, which may not
        # resolve ("503 Host not found"); pin it to deb.debian.org.
        run(["cp", "-rL", "--preserve=mode,ownership", "/etc/apt-cacher-ng", acng / "conf"])
        write_file(acng / "conf" / "backends_debian", DEBIAN_MIRROR + "/\n")
        # Debian's archive only: no other remapped distributions, no arbitrary URLs
        # (ForceManaged), no CONNECT tunnels, no report/maintenance page
        write_file(acng / "conf" / "acng.conf", ACNG_CONF)
        shutil.chown(acng / "conf" / "acng.conf", "apt-cacher-ng", "apt-cacher-ng")
        errors = []
        for port in ([prefer] if prefer else []) + [p for p in PROXY_PORTS if p != prefer]:
            if not self._port_free(port):
                errors.append(f"port {port} busy")
                continue
            pidfile = acng / "run" / "pid"
            out = run(["start-stop-daemon", "--start", "--chuid", "apt-cacher-ng",
                       "--group", "apt-cacher-ng", "--pidfile", pidfile, "--exec", ACNG_BIN,
                       "--", "-c", acng / "conf", f"BindAddress={PUB_HOST_IP}", f"Port={port}",
                       f"CacheDir={ACNG_CACHE / 'cache'}", f"LogDir={ACNG_CACHE / 'log'}",
                       f"pidfile={pidfile}", f"SocketPath={acng / 'run' / 'socket'}",
                       "foreground=0"], check=False)
            for _ in range(100):
                if pidfile.exists() and pidfile.read_text().strip() and self._port_open(port):
                    break
                time.sleep(0.05)
            if pidfile.exists() and pidfile.read_text().strip() and self._port_open(port):
                pid = int(pidfile.read_text().strip())
                with self.state.lock:
                    self.state.data["acng_pid"] = pid
                    self.state.data["proxy_port"] = port
                    self.state.save()
                self.proxy_port = port
                log.info("apt-cacher-ng pid %s on %s:%s", pid, PUB_HOST_IP, port)
                return
            errors.append(f"port {port}: {out.strip()[-300:]}")
        raise BackendError("could not start apt-cacher-ng on the local cloud bridge: "
                           + "; ".join(errors))

    @staticmethod
    def _port_free(port: int) -> bool:
        s = socket.socket()
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((PUB_HOST_IP, port))
            return True
        except OSError:
            return False
        finally:
            s.close()

    @staticmethod
    def _port_open(port: int) -> bool:
        try:
            with socket.create_connection((PUB_HOST_IP, port), timeout=0.5):
                return True
        except OSError:
            return False

    @property
    def proxy_url(self) -> str:
        return f"http://{PUB_HOST_IP}:{self.proxy_port}"

    # ---------------------------------------------------------------- private networks
    def ensure_network(self, network_id: int, ip_range: str) -> str:
        """The address-less bridge of one emulated network, and a blackhole route for its range."""
        with self.lock:
            br = network_bridge(network_id)
            if not _link_exists(br):
                self.state.add("bridges", br)
                run(["ip", "link", "add", br, "type", "bridge"])
                run(["ip", "link", "set", br, "up"])
            self.state.add("bridges", br)
            self._blackhole(ip_range)
            return br

    def _blackhole(self, ip_range: str) -> None:
        net = ipaddress.ip_network(ip_range, strict=False)
        if net.overlaps(PUB_NET):
            raise BackendError(f"network range {net} overlaps the local cloud's public range "
                               f"{PUB_NET}")
        # never cut this host off its own network: refuse ranges that hold a host address or gateway
        for line in run(["ip", "-4", "-o", "addr", "show"]).splitlines():
            parts = line.split()
            if len(parts) > 3 and not parts[1].startswith("lc"):
                addr = ipaddress.ip_interface(parts[3])
                if addr.ip in net and not addr.ip.is_loopback:
                    raise BackendError(f"network range {net} holds this host's own address "
                                       f"{addr} ({parts[1]}); use another range in the local cloud")
        existing = run(["ip", "-4", "route", "show", "type", "blackhole", str(net)]).strip()
        route = str(net)
        if not existing:
            run(["ip", "route", "add", "blackhole", route])
        self.state.add("routes", route)

    def drop_network_if_unused(self, network_id: int) -> None:
        br = network_bridge(network_id)
        with self.lock:
            if _link_exists(br) and not os.listdir(f"/sys/class/net/{br}/brif"):
                run(["ip", "link", "del", br], check=False)
                self.state.remove("bridges", br)

    # ---------------------------------------------------------------- machines' links
    @staticmethod
    def add_veth(netns: str, host_if: str, inner_if: str, bridge: str, address: str) -> None:
        if _link_exists(host_if):
            run(["ip", "link", "del", host_if], check=False)
        run(["ip", "link", "add", host_if, "type", "veth", "peer", "name", inner_if,
             "netns", netns])
        run(["ip", "link", "set", host_if, "master", bridge, "up"])
        run(["ip", "-n", netns, "addr", "add", address, "dev", inner_if])
        run(["ip", "-n", netns, "link", "set", inner_if, "up"])

    @staticmethod
    def del_link(host_if: str) -> None:
        if _link_exists(host_if):
            run(["ip", "link", "del", host_if], check=False)


def teardown_host(data: dict) -> None:
    """Remove the bridges, routes, tables and proxy recorded in a state file."""
    pid = data.get("acng_pid")
    if pid and pid_matches(pid, "apt-cacher-ng"):
        os.kill(pid, 15)
        for _ in range(100):
            if not pid_matches(pid, "apt-cacher-ng"):
                break
            time.sleep(0.05)
        else:
            os.kill(pid, 9)
    if data.get("acng_dir"):
        shutil.rmtree(data["acng_dir"], ignore_errors=True)
    for table in data.get("nft_tables", []):
        run(["nft", "delete", "table", *table.split()], check=False)
    for route in data.get("routes", []):
        run(["ip", "route", "del", "blackhole", route], check=False)
    for br in data.get("bridges", []):
        if _link_exists(br):
            run(["ip", "link", "del", br], check=False)
    for parent in ("/sys/fs/cgroup/systemd/localcloud", "/sys/fs/cgroup/unified/localcloud",
                   "/sys/fs/cgroup/localcloud"):
        try:
            os.rmdir(parent)                      # only when no machine cgroup is left in it
        except OSError:
            pass
