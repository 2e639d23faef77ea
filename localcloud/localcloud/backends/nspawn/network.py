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

Private networks are routed as on Hetzner: a member has its IP as a /32 on enp7s0 and reaches the
network's range through the gateway (the range's first address), and ARPs for nothing else. The
gateway is a namespace of its own per network (lc-gw-<id>) with that one interface on the network's
bridge and forwarding on: it sends traffic back out to the member that holds the destination
address (a server's IP, an alias IP the OS added, a load balancer's IP).
"""
from __future__ import annotations

import ipaddress
import os
import shutil
import socket
import threading
import time
from pathlib import Path

from .host import BackendError, CommandError, StateFile, log, pid_alive, pid_matches, run, write_file
from .slots import ALL_PUBLIC, SLOTS, Slot

PROXY_PORTS = (3142, 3143, 3144, 3145)
PRIVATE_MTU = 1450                       # Hetzner's private networks
ACNG_BIN = "/usr/sbin/apt-cacher-ng"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
ACNG_CONF = """\
# written by localcloud (backends/nspawn/network.py)
SupportDir: /usr/lib/apt-cacher-ng
Remap-debrep: file:deb_mirror*.gz /debian ; file:backends_debian
Remap-secdeb: security.debian.org security.debian.org/debian-security deb.debian.org/debian-security /debian-security cdn-fastly.deb.debian.org/debian-security ; deb.debian.org/debian-security
ForceManaged: 1
PassThroughPattern: ^localcloud-allows-no-tunnels$
ExThreshold: 4
# Index files (InRelease) count as fresh for an hour, not 27 s: every refresh moves the old file aside,
# and with many machines asking at once that move has failed ("Failure to move file ... out of the
# way") while a client's apt hung behind it. A lab or a demo lives for minutes to an hour.
FreshIndexMaxAge: 3600
"""


def apt_client_conf(proxy_url: str) -> str:
    """The apt configuration of every local-cloud machine: the proxy, and a stalled proxy connection
    given up after 30 s instead of apt's 120 s (apt then asks again, up to its 3 retries). apt sits on
    a connection the proxy half-closed until that timeout, once per file: behind a proxy in trouble
    an install of a hundred packages took half an hour, and CI's 30-minute playbook limit."""
    return (f'// written by localcloud (backends/nspawn/network.py); the proxy\'s port may change between runs\n'
            f'Acquire::http::Proxy "{proxy_url}";\n'
            'Acquire::http::Timeout "30";\n')


def host_addresses() -> list[tuple[str, ipaddress.IPv4Interface]]:
    """(interface, address) of every IPv4 address on this host, from `ip -j` (links of other local
    clouds come and go meanwhile: the dump is read again until it parses)."""
    import json
    for attempt in range(5):
        try:
            links = json.loads(run(["ip", "-j", "-4", "addr", "show"], stderr=False) or "[]")
            return [(link.get("ifname", ""), ipaddress.ip_interface(f"{a['local']}/{a['prefixlen']}"))
                    for link in links for a in link.get("addr_info", []) if a.get("family") == "inet"]
        except (ValueError, KeyError, CommandError):
            if attempt == 4:
                raise
            time.sleep(0.1)
    return []


def _link_exists(name: str) -> bool:
    return os.path.exists(f"/sys/class/net/{name}")


class HostNetwork:
    def __init__(self, state: StateFile, run_dir: Path, slot: Slot = Slot(0)):
        self.state = state
        self.run_dir = run_dir
        self.slot = slot
        self.bridge = slot.public_bridge
        self.host_ip = slot.host_ip
        self.public_net = slot.public_net
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
        if not _link_exists(self.bridge):
            self.state.add("bridges", self.bridge)
            run(["ip", "link", "add", self.bridge, "type", "bridge"])
        self.state.add("bridges", self.bridge)
        # the Cloud Firewall table needs conntrack on bridged IPv4 traffic (br_netfilter):
        # switch it on for this bridge only, the host-wide sysctl is left alone.
        run(["ip", "link", "set", self.bridge, "type", "bridge", "nf_call_iptables", "1"],
            check=False)
        mine = ipaddress.ip_interface(f"{self.host_ip}/{self.public_net.prefixlen}")
        addresses = host_addresses()
        for name, addr in addresses:
            if name == self.bridge and addr != mine:     # e.g. the 198.18.0.1/15 of a run before slots
                run(["ip", "addr", "del", str(addr), "dev", self.bridge], check=False)
            elif name.startswith("lc") and addr != mine and addr.network.overlaps(self.public_net):
                log.warning("%s has %s, which overlaps this slot's %s (a local cloud from before slots?); "
                            "this slot's guard keeps the two apart", name, addr, self.public_net)
        if (self.bridge, mine) not in addresses:
            run(["ip", "addr", "add", str(mine), "dev", self.bridge])
        run(["ip", "link", "set", self.bridge, "up"])

    def _guard(self) -> None:
        table = self.slot.table("guard")
        self.state.add("nft_tables", f"inet {table}")
        ruleset = f"""
table inet {table}
delete table inet {table}
table inet {table} {{
  chain guard_forward {{
    type filter hook forward priority -10; policy accept;
    iifname "lc*" oifname != "lc*" counter drop comment "never from a machine out of this host"
    oifname "lc*" iifname != "lc*" counter drop comment "never from outside into a machine"
    iifname "{self.bridge}" meta nfproto ipv4 ip daddr != {self.public_net} counter drop comment "nor to another slot"
    oifname "{self.bridge}" meta nfproto ipv4 ip saddr != {self.public_net} counter drop
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
        acng = self.slot.run_dir("acng")
        cache = self.slot.apt_cache
        if acng.exists():
            shutil.rmtree(acng)
        with self.state.lock:
            self.state.data["acng_dir"] = str(acng)
            self.state.save()
        for d in (cache / "cache", cache / "log", acng / "run"):
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
                       "--", "-c", acng / "conf", f"BindAddress={self.host_ip}", f"Port={port}",
                       f"CacheDir={cache / 'cache'}", f"LogDir={cache / 'log'}",
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
                log.info("apt-cacher-ng pid %s on %s:%s", pid, self.host_ip, port)
                return
            errors.append(f"port {port}: {out.strip()[-300:]}")
        raise BackendError("could not start apt-cacher-ng on the local cloud bridge: "
                           + "; ".join(errors))

    def _port_free(self, port: int) -> bool:
        s = socket.socket()
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((self.host_ip, port))
            return True
        except OSError:
            return False
        finally:
            s.close()

    def _port_open(self, port: int) -> bool:
        try:
            with socket.create_connection((self.host_ip, port), timeout=0.5):
                return True
        except OSError:
            return False

    @property
    def proxy_url(self) -> str:
        return f"http://{self.host_ip}:{self.proxy_port}"

    # ---------------------------------------------------------------- private networks
    def ensure_network(self, network_id: int, ip_range: str, gateway: str) -> str:
        """The address-less bridge of one emulated network, its gateway, and a blackhole route for
        its range."""
        with self.lock:
            self._blackhole(ip_range)
            br = self.slot.link("n", str(network_id))
            if not _link_exists(br):
                self.state.add("bridges", br)
                run(["ip", "link", "add", br, "type", "bridge"])
                run(["ip", "link", "set", br, "up"])
            self.state.add("bridges", br)
            self._gateway(network_id, br, ip_range, gateway)
            return br

    def _gateway(self, network_id: int, bridge: str, ip_range: str, gateway: str) -> None:
        netns, link = self.slot.netns("gw-", network_id), self.slot.link("g", str(network_id))
        if _link_exists(link):
            return
        self.state.add("netns", netns)
        self.state.add("links", link)
        if not os.path.exists(f"/run/netns/{netns}"):
            run(["ip", "netns", "add", netns])
        run(["ip", "netns", "exec", netns, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1",
             "net.ipv4.conf.all.send_redirects=0", "net.ipv4.conf.default.send_redirects=0",
             "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0"])
        prefix = ipaddress.ip_network(ip_range, strict=False).prefixlen
        self.add_veth(netns, link, "eth0", bridge, f"{gateway}/{prefix}", mtu=PRIVATE_MTU)

    def _blackhole(self, ip_range: str) -> None:
        net = ipaddress.ip_network(ip_range, strict=False)
        if net.overlaps(ALL_PUBLIC):
            raise BackendError(f"network range {net} overlaps the local cloud's public range "
                               f"{ALL_PUBLIC}")
        # never cut this host off its own network: refuse ranges that hold a host address or gateway
        for name, addr in host_addresses():
            if not name.startswith("lc") and addr.ip in net and not addr.ip.is_loopback:
                raise BackendError(f"network range {net} holds this host's own address "
                                   f"{addr} ({name}); use another range in the local cloud")
        route = str(net)
        if not self._has_blackhole(route):
            try:
                run(["ip", "route", "add", "blackhole", route])
            except CommandError:
                if not self._has_blackhole(route):      # another slot may have added it just now
                    raise
        self.state.add("routes", route)

    @staticmethod
    def _has_blackhole(route: str) -> bool:
        return bool(run(["ip", "-4", "route", "show", "type", "blackhole", route], stderr=False).strip())

    def drop_network_if_unused(self, network_id: int) -> None:
        br = self.slot.link("n", str(network_id))
        netns, link = self.slot.netns("gw-", network_id), self.slot.link("g", str(network_id))
        with self.lock:
            if _link_exists(br) and not set(os.listdir(f"/sys/class/net/{br}/brif")) - {link}:
                if os.path.exists(f"/run/netns/{netns}"):
                    run(["ip", "netns", "del", netns], check=False)
                self.del_link(link)
                run(["ip", "link", "del", br], check=False)
                self.state.remove("bridges", br)
                self.state.remove("links", link)
                self.state.remove("netns", netns)

    # ---------------------------------------------------------------- machines' links
    @staticmethod
    def add_veth(netns: str, host_if: str, inner_if: str, bridge: str, address: str | None,
                 mtu: int | None = None, mac: str | None = None) -> None:
        if _link_exists(host_if):
            run(["ip", "link", "del", host_if], check=False)
        peer = ["name", inner_if, "netns", netns] + (["address", mac] if mac else [])
        run(["ip", "link", "add", host_if, *(["mtu", str(mtu)] if mtu else []), "type", "veth", "peer", *peer,
             *(["mtu", str(mtu)] if mtu else [])])
        run(["ip", "link", "set", host_if, "master", bridge, "up"])
        if address:
            run(["ip", "-n", netns, "addr", "add", address, "dev", inner_if])
        run(["ip", "-n", netns, "link", "set", inner_if, "up"])

    @staticmethod
    def add_private_routes(netns: str, inner_if: str, ip_range: str, gateway: str) -> None:
        """What Hetzner's DHCP gives a private interface besides the /32: the gateway on-link and
        the network's range through it."""
        run(["ip", "-n", netns, "route", "replace", gateway, "dev", inner_if, "scope", "link"])
        run(["ip", "-n", netns, "route", "replace", ip_range, "via", gateway, "dev", inner_if])

    @staticmethod
    def del_link(host_if: str) -> None:
        if _link_exists(host_if):
            run(["ip", "link", "del", host_if], check=False)


def render_floating_ips(routes: dict[str, tuple[str, str] | None], table: str = Slot(0).table("fip")) -> str:
    """nft (bridge family) for {floating IP: (server public IP, its host-side link) or None}: on the
    public bridge only that link answers ARP for the IP and gets frames to it."""
    lines = [f"table bridge {table}", f"delete table bridge {table}", f"table bridge {table} {{",
             "  chain forward {", "    type filter hook forward priority 0; policy accept;"]
    for ip, via in sorted(routes.items()):
        other = f'iifname != "{via[1]}" ' if via else ""
        lines.append(f"    arp operation reply arp saddr ip {ip} {other}drop")
        other = f'oifname != "{via[1]}" ' if via else ""
        lines.append(f"    ip daddr {ip} {other}drop")
    lines += ["  }", "}"]
    return "\n".join(lines) + "\n"


def routes_of_other_slots(mine: int) -> set[str]:
    """Blackhole routes that the live local clouds of the other slots recorded."""
    from .host import StateFile
    found = set()
    for number in range(SLOTS):
        if number == mine:
            continue
        try:
            holder = Slot(number).lock_path.read_text()
        except OSError:
            continue
        parts = holder.split(" state ", 1)
        if len(parts) != 2 or not parts[0].startswith("pid ") or not pid_alive(int(parts[0][4:] or 0)):
            continue
        data = StateFile.load(Path(parts[1]) / "machines" / "state.json") or {}
        found.update(data.get("routes", []))
    return found


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
    for netns in data.get("netns", []):
        if os.path.exists(f"/run/netns/{netns}"):
            run(["ip", "netns", "del", netns], check=False)
    for link in data.get("links", []):
        if _link_exists(link):
            run(["ip", "link", "del", link], check=False)
    shared = routes_of_other_slots(data.get("slot", 0))
    for route in data.get("routes", []):
        if route not in shared:          # another live local cloud has a network in the same range
            run(["ip", "route", "del", "blackhole", route], check=False)
    for ip in data.get("routes_via", []):
        run(["ip", "route", "del", f"{ip}/32"], check=False)
    for br in data.get("bridges", []):
        if _link_exists(br):
            run(["ip", "link", "del", br], check=False)
    for parent in ("/sys/fs/cgroup/systemd/localcloud", "/sys/fs/cgroup/unified/localcloud",
                   "/sys/fs/cgroup/localcloud", *data.get("cgroup_parents", [])):
        try:
            os.rmdir(parent)                      # only when no machine cgroup is left in it
        except OSError:
            pass
