"""Hetzner Load Balancers as HAProxy (Debian package) in a network namespace of their own.

Each load balancer: netns lc-lb-<id> with its public IPv4 on eth0 (bridge lc-pub) and one interface
per network (its private IP as a /32, the range via the network's gateway, as servers have it), no
default route; HAProxy runs there in master-worker mode from <state>/machines/lb-<id>/haproxy.cfg,
rendered from the API: one frontend + backend per service, checks exactly as declared. A change is
a reload (SIGUSR2 to the master): the new worker takes the listening sockets over from the old one
(stats socket with expose-fd listeners), and the old worker finishes its established connections.
The API reads each target's health from the stats socket.
"""
from __future__ import annotations

import os
import re
import signal
import socket
import threading
import time
from pathlib import Path

from ..base import LoadBalancerSpec, LBService
from .host import BackendError, CommandError, log, pid_alive, pid_matches, run, safe_rmtree, write_file
from .network import PRIVATE_MTU, HostNetwork

HAPROXY = "haproxy"
# TCP services have no idle timeout in the API; long, so that idle pooled database connections stay
TCP_IDLE_TIMEOUT = 3600
CONNECT_TIMEOUT = 5


def _status_regex(codes: list[str]) -> str:
    """Hetzner's status code patterns ("2??", "301") as one HAProxy regex."""
    alternatives = [re.escape(str(c)).replace(r"\?", "?").replace("?", "[0-9]") for c in codes or ["2??", "3??"]]
    return "^(" + "|".join(alternatives) + ")$"


def _quote(text: str) -> str:
    """A word for haproxy.cfg: backslash-escaped spaces, quotes and '#'."""
    return re.sub(r"([\s\"'\\#])", r"\\\1", text)


def render(spec: LoadBalancerSpec, run_dir: Path, certificates: dict[int, Path]) -> str:
    """haproxy.cfg for one load balancer. ``certificates``: listen port -> directory of PEM files
    (certificate chain + key) for its https service."""
    user = "    user haproxy\n    group haproxy\n" if _haproxy_user() else ""
    lines = [
        f"# load balancer {spec.lb_id}: written by the local cloud from the API; do not edit",
        "global",
        f"    maxconn {max_connections(spec.max_connections)}",
        "    nbthread 1",
        f"    stats socket {run_dir / 'admin.sock'} mode 600 level admin expose-fd listeners",
        "    hard-stop-after 15m",
        # the health of every target is carried over a reload (saved just before it)
        f"    server-state-file {run_dir / 'server-state'}",
        user.rstrip("\n"),
        "defaults",
        "    load-server-state-from-file global",
        f"    timeout connect {CONNECT_TIMEOUT}s",
        "    timeout client 60s",
        "    timeout server 60s",
        "",
    ]
    addresses = ([spec.public_ipv4] if spec.public_ipv4 else []) + [n.ip for n in spec.networks]
    algorithm = {"round_robin": "roundrobin", "least_connections": "leastconn"}[spec.algorithm]
    ports = {s.listen_port for s in spec.services}
    for service in spec.services:
        name = f"svc_{service.listen_port}"
        http = service.protocol in ("http", "https")
        options = service.http or {}
        idle = options.get("timeout_idle", 60) if http else TCP_IDLE_TIMEOUT
        if service.protocol == "https" and service.listen_port not in certificates:
            log.warning("load balancer %s: https service on %s has no certificate it can serve: left out",
                        spec.lb_id, service.listen_port)
            continue
        tls = f" ssl crt {certificates[service.listen_port]}" if service.protocol == "https" else ""
        lines += [f"frontend {name}", f"    mode {'http' if http else 'tcp'}",
                  f"    timeout client {idle}s"]
        lines += [f"    bind {ip}:{service.listen_port}{tls}" for ip in addresses]
        if http:
            proto = "https" if service.protocol == "https" else "http"
            lines += ["    option forwardfor",
                      f"    http-request set-header X-Forwarded-Proto {proto}",
                      f"    http-request set-header X-Forwarded-Port {service.listen_port}"]
        lines += [f"    default_backend {name}", ""]
        if service.protocol == "https" and options.get("redirect_http") and 80 not in ports:
            lines += [f"frontend redirect_{service.listen_port}", "    mode http"]
            lines += [f"    bind {ip}:80" for ip in addresses]
            lines += ["    http-request redirect scheme https code 301", ""]
        lines += _backend(spec, service, name, algorithm, idle)
    return "\n".join(line for line in lines if line is not None) + "\n"


def _backend(spec: LoadBalancerSpec, service: LBService, name: str, algorithm: str, idle: int) -> list[str]:
    http = service.protocol in ("http", "https")
    options = service.http or {}
    hc = service.health_check
    lines = [f"backend {name}", f"    mode {'http' if http else 'tcp'}", f"    balance {algorithm}",
             f"    timeout server {idle}s", f"    timeout check {hc['timeout']}s"]
    check_tls = hc["protocol"] == "https" or bool((hc.get("http") or {}).get("tls"))
    if hc["protocol"] in ("http", "https"):
        check = hc.get("http") or {}
        send = f"    http-check send meth GET uri {_quote(check.get('path') or '/')}"
        if check.get("domain"):
            send += f" ver HTTP/1.1 hdr Host {_quote(check['domain'])}"
        else:
            send += " ver HTTP/1.0"               # no domain: a request without a Host header
        lines += ["    option httpchk", send, f"    http-check expect rstatus {_status_regex(check.get('status_codes'))}"]
        if check.get("response"):
            lines.append(f"    http-check expect rstring {_quote(re.escape(check['response']))}")
    sticky = http and options.get("sticky_sessions")
    if sticky:
        lines.append(f"    cookie {_quote(options.get('cookie_name') or 'HCLBSTICKY')} insert indirect nocache "
                     f"maxlife {options.get('cookie_lifetime', 300)}s")
    # retries: failed checks until unhealthy, and as many good ones to be healthy again
    rounds = max(1, hc.get("retries", 3))
    server = (f"check inter {hc['interval']}s fall {rounds} rise {rounds} port {hc['port']}"
              + (" check-ssl verify none" if check_tls else "")
              + (f" check-sni {_quote(hc['http']['domain'])}" if check_tls and (hc.get("http") or {}).get("domain") else "")
              + (" send-proxy" if service.proxyprotocol else "")
              + (" check-send-proxy" if service.proxyprotocol and hc["port"] == service.destination_port else ""))
    for target in spec.targets:
        cookie = f" cookie {target.key}" if sticky else ""
        lines.append(f"    server {target.key} {target.ip}:{service.destination_port} {server}{cookie}")
    lines.append("")
    return lines


def max_connections(wanted: int) -> int:
    """The type's connection limit, as far as this host's open-files limit lets HAProxy go (it needs
    two descriptors per proxied connection)."""
    import resource
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard == resource.RLIM_INFINITY:
        return wanted
    return max(100, min(wanted, (hard - 200) // 2))


def _haproxy_user() -> bool:
    try:
        import pwd
        pwd.getpwnam("haproxy")
        return True
    except KeyError:
        return False


def stats_command(sock: Path, command: str, timeout: float = 2.0) -> str:
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(timeout)
        s.connect(str(sock))
        s.sendall(command.encode() + b"\n")
        chunks = []
        while True:
            data = s.recv(65536)
            if not data:
                break
            chunks.append(data)
    return b"".join(chunks).decode(errors="replace")


def health_from_stats(csv: str) -> dict[int, dict[str, str]]:
    """listen port -> target key -> healthy | unhealthy | unknown, from `show stat`."""
    lines = [line for line in csv.splitlines() if line.strip()]
    if not lines or not lines[0].startswith("# "):
        return {}
    header = lines[0][2:].split(",")
    result: dict[int, dict[str, str]] = {}
    for line in lines[1:]:
        row = dict(zip(header, line.split(",")))
        proxy, server = row.get("pxname", ""), row.get("svname", "")
        if not proxy.startswith("svc_") or server in ("FRONTEND", "BACKEND"):
            continue
        status, check = row.get("status", ""), row.get("check_status", "")
        if check.startswith("INI") or not check and status.startswith("UP"):
            health = "unknown"                  # no check has completed yet
        elif status.startswith("UP") or status == "no check":
            health = "healthy"
        else:
            health = "unhealthy"
        result.setdefault(int(proxy[4:]), {})[server] = health
    return result


class LoadBalancer:
    def __init__(self, backend, lb_id: int):
        self.backend = backend
        self.lb_id = lb_id
        self.netns = backend.slot.netns("lb-", lb_id)
        self.dir = backend.machines_dir / f"lb-{lb_id}"
        self.cfg = self.dir / "haproxy.cfg"
        self.pidfile = self.dir / "haproxy.pid"
        self.admin = self.dir / "admin.sock"
        self.pub_if = backend.slot.link("b", str(lb_id), "p")
        self.lock = threading.RLock()
        self.spec: LoadBalancerSpec | None = None
        self.public: str | None = None
        self.networks: dict[int, tuple[object, str, str]] = {}     # network id -> (attachment, host_if, inner)
        self.pid: int | None = None

    def record(self) -> None:
        self.backend.state.set_item("load_balancers", str(self.lb_id), {
            "netns": self.netns, "dir": str(self.dir), "cfg": str(self.cfg), "haproxy_pid": self.pid,
            "links": [self.pub_if] + [h for _, h, _ in self.networks.values()]})

    # ------------------------------------------------------------------ network
    def _network(self, spec: LoadBalancerSpec) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        if not os.path.exists(f"/run/netns/{self.netns}"):
            self.record()
            run(["ip", "netns", "add", self.netns])
            run(["ip", "-n", self.netns, "link", "set", "lo", "up"])
        if spec.public_ipv4 != self.public:
            HostNetwork.del_link(self.pub_if)
            if spec.public_ipv4:
                net = self.backend.net
                HostNetwork.add_veth(self.netns, self.pub_if, "eth0", net.bridge,
                                     f"{spec.public_ipv4}/{net.public_net.prefixlen}")
            self.public = spec.public_ipv4
        wanted = {att.network_id: att for att in spec.networks}
        for network_id in [n for n in self.networks if n not in wanted or self.networks[n][0] != wanted[n]]:
            _, host_if, _ = self.networks.pop(network_id)
            HostNetwork.del_link(host_if)
            self.backend.net.drop_network_if_unused(network_id)
        for network_id, att in wanted.items():
            if network_id in self.networks:
                continue
            bridge = self.backend.net.ensure_network(network_id, att.ip_range, att.gateway)
            used = {inner for _, _, inner in self.networks.values()}
            k = next(i for i in range(1, 100) if f"enp{6 + i}s0" not in used)
            host_if, inner = self.backend.slot.link("b", str(self.lb_id), f"n{k}"), f"enp{6 + k}s0"
            self.networks[network_id] = (att, host_if, inner)
            self.record()
            HostNetwork.add_veth(self.netns, host_if, inner, bridge, f"{att.ip}/32", mtu=PRIVATE_MTU)
            HostNetwork.add_private_routes(self.netns, inner, att.ip_range, att.gateway)
        self.record()

    # ------------------------------------------------------------------ haproxy
    def apply(self, spec: LoadBalancerSpec, certificates: dict[int, list[tuple[str, str]]]) -> None:
        with self.lock:
            self._network(spec)
            cert_dirs = self._certificates(certificates)
            text = render(spec, self.dir, cert_dirs)
            self.spec = spec
            if self.running() and self.cfg.exists() and self.cfg.read_text() == text:
                return
            new = self.cfg.with_suffix(".new")
            write_file(new, text, 0o600)
            try:
                run([HAPROXY, "-c", "-q", "-f", new])
            except CommandError as exc:
                raise BackendError(f"load balancer {self.lb_id}: HAProxy refuses the configuration: "
                                   f"{exc.output.strip()[-800:]}") from None
            os.replace(new, self.cfg)
            if self.running():
                self._reload()
            else:
                self._start()

    def _certificates(self, certificates: dict[int, list[tuple[str, str]]]) -> dict[int, Path]:
        dirs = {}
        for port, pairs in certificates.items():
            d = self.dir / "certs" / str(port)
            safe_rmtree(d)
            for index, (chain, key) in enumerate(pairs):
                write_file(d / f"{index}.pem", chain.rstrip("\n") + "\n" + key.rstrip("\n") + "\n", 0o600)
            if pairs:
                dirs[port] = d
        return dirs

    def running(self) -> bool:
        return bool(self.pid) and pid_matches(self.pid, HAPROXY, str(self.cfg))

    def _start(self) -> None:
        self.pidfile.unlink(missing_ok=True)
        run(["ip", "netns", "exec", self.netns, HAPROXY, "-W", "-D", "-p", self.pidfile, "-f", self.cfg])
        for _ in range(100):
            text = self.pidfile.read_text().strip() if self.pidfile.exists() else ""
            if text.isdigit() and self.admin.exists():
                self.pid = int(text)
                self.record()
                return
            time.sleep(0.05)
        raise BackendError(f"load balancer {self.lb_id}: HAProxy did not start")

    def _worker_pid(self) -> str | None:
        try:
            info = stats_command(self.admin, "show info")
        except OSError:
            return None
        return next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("Pid:")), None)

    def _reload(self) -> None:
        """SIGUSR2 to the master: a new worker with the new configuration takes the listeners over;
        the old one ends when its established connections have."""
        before = self._worker_pid()
        try:
            write_file(self.dir / "server-state", stats_command(self.admin, "show servers state"), 0o600)
        except OSError as exc:
            log.warning("load balancer %s: target health not saved for the reload: %s", self.lb_id, exc)
        os.kill(self.pid, signal.SIGUSR2)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            now = self._worker_pid()
            if now and now != before:
                return
            time.sleep(0.05)
        raise BackendError(f"load balancer {self.lb_id}: HAProxy did not take the new configuration "
                           "within 15 s")

    def health(self) -> dict[int, dict[str, str]]:
        if not self.running():
            return {}
        try:
            return health_from_stats(stats_command(self.admin, "show stat"))
        except OSError:
            return {}

    def destroy(self) -> None:
        with self.lock:
            stop_haproxy(self.pid, str(self.cfg))
            self.pid = None
            if os.path.exists(f"/run/netns/{self.netns}"):
                run(["ip", "netns", "del", self.netns], check=False)
            HostNetwork.del_link(self.pub_if)
            nets = list(self.networks)
            for _, host_if, _ in self.networks.values():
                HostNetwork.del_link(host_if)
            self.networks.clear()
            for network_id in nets:
                self.backend.net.drop_network_if_unused(network_id)
            safe_rmtree(self.dir)
            self.backend.state.set_item("load_balancers", str(self.lb_id), None)


def stop_haproxy(pid: int | None, cfg: str) -> None:
    """End an HAProxy master (and so its workers), only if pid is still that HAProxy."""
    if not (pid and pid_matches(pid, HAPROXY, cfg)):
        return
    os.kill(pid, signal.SIGTERM)
    for _ in range(100):
        if not pid_alive(pid):
            return
        time.sleep(0.05)
    if pid_matches(pid, HAPROXY, cfg):
        os.kill(pid, signal.SIGKILL)


def teardown_load_balancers(records: dict) -> None:
    """Remove the load balancers a (killed) run recorded: HAProxy, netns, links."""
    for info in (records or {}).values():
        stop_haproxy(info.get("haproxy_pid"), info.get("cfg", ""))
        netns = info.get("netns")
        if netns and os.path.exists(f"/run/netns/{netns}"):
            run(["ip", "netns", "del", netns], check=False)
        for link in info.get("links", []):
            HostNetwork.del_link(link)
        if info.get("dir"):
            safe_rmtree(info["dir"])
