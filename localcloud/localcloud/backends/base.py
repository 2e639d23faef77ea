"""The contract between the model layer and whatever runs the servers.

The model calls these methods from its action effects; HTTP handlers never do. Every slow
operation returns a Future: the action that waits on it succeeds when the future resolves and
turns into ``error`` (with the exception's message) when it raises.
"""
from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class NetworkAttachment:
    network_id: int
    ip: str                 # the server's private IPv4 in this network
    ip_range: str           # the network's whole range, e.g. 10.0.0.0/16
    gateway: str            # the network's first address, e.g. 10.0.0.1
    mac: str | None = None  # of the server's interface in this network (86:00:00:...)


@dataclass(frozen=True)
class ServerSpec:
    server_id: int
    name: str
    image: str                                # image name: debian-12, debian-13, ...
    public_ipv4: str | None                   # from 198.18.0.0/15, None when public IPv4 is disabled
    ssh_keys: tuple[str, ...] = ()            # OpenSSH public key lines
    user_data: str | None = None
    networks: tuple[NetworkAttachment, ...] = ()
    start: bool = True                        # start_after_create
    root_password: str | None = None
    volumes: tuple[int, ...] = ()             # ids of the volumes attached to the server
    automount: bool = False                   # mount those volumes at first boot (create with automount)
    cores: int | None = None                  # of the server type: what the machine may use and sees
    memory_gb: float | None = None
    disk_image: int | None = None             # a snapshot/backup: a new disk starts as its copy


@dataclass(frozen=True)
class VolumeSpec:
    volume_id: int
    size_gb: int
    format: str | None = None                 # ext4 | xfs: the filesystem made when the volume is created


@dataclass(frozen=True)
class LBTarget:
    key: str                                  # "server:<id>" or "ip:<address>": health is reported by it
    ip: str                                   # where the load balancer sends the traffic


@dataclass(frozen=True)
class LBService:
    protocol: str                             # tcp | http | https
    listen_port: int
    destination_port: int
    proxyprotocol: bool = False
    health_check: dict = field(default_factory=dict)   # as in the API: protocol, port, interval, timeout, retries, http
    http: dict | None = None                  # as in the API: sticky_sessions, cookie_*, timeout_idle, redirect_http
    certificates: tuple[tuple[str, str], ...] = ()     # https: (certificate chain PEM, private key PEM)


@dataclass(frozen=True)
class LoadBalancerSpec:
    lb_id: int
    public_ipv4: str | None                   # None while the public interface is disabled
    networks: tuple[NetworkAttachment, ...]   # the load balancer's private IPs
    algorithm: str                            # round_robin | least_connections
    services: tuple[LBService, ...]
    targets: tuple[LBTarget, ...]             # resolved: servers (public or private IP), label selectors, IPs
    max_connections: int = 10000


def resolved(value=None) -> Future:
    future: Future = Future()
    future.set_result(value)
    return future


class MachineBackend:
    """The API-only backend: servers exist in the API, no machine stands behind them."""

    name = "none"

    def open(self, state_dir: Path) -> None:
        pass

    def close(self) -> None:
        pass

    def image_unavailable(self, image_name: str) -> str | None:
        return None

    def public_ipv4_pool(self) -> tuple[str, str]:
        """(range, first address) the model hands out public IPv4s from (servers, floating IPs,
        load balancers): with machines, the slot's range on this host."""
        return "198.18.0.0/15", "198.18.1.1"

    def create_server(self, spec: ServerSpec) -> Future:
        return resolved()

    def restore_server(self, spec: ServerSpec) -> Future:
        """After a restart: the server's machine again, booting from the disk it had if there is one."""
        return self.create_server(spec)

    def power(self, server_id: int, op: str) -> Future:
        return resolved()

    def rebuild(self, spec: ServerSpec) -> Future:
        return resolved()

    def delete_server(self, server_id: int) -> Future:
        return resolved()

    def attach_network(self, server_id: int, attachment: NetworkAttachment) -> Future:
        return resolved()

    def detach_network(self, server_id: int, network_id: int) -> Future:
        return resolved()

    def set_firewall(self, server_id: int, rules: list[dict] | None) -> None:
        pass

    # --- volumes: a block device per volume; data survives detach, server delete and restarts
    def create_volume(self, spec: VolumeSpec) -> Future:
        """Its storage (formatted as spec.format); an existing one (after a restart) is kept."""
        return resolved()

    def resize_volume(self, volume_id: int, size_gb: int) -> Future:
        return resolved()

    def delete_volume(self, volume_id: int) -> Future:
        return resolved()

    def attach_volume(self, server_id: int, volume_id: int, automount: bool = False) -> Future:
        return resolved()

    def detach_volume(self, server_id: int, volume_id: int) -> Future:
        return resolved()

    def machine_status(self, server_id: int) -> str | None:
        return None

    def set_public_ipv4(self, server_id: int, ip: str | None) -> Future:
        """A primary IPv4 assigned to (ip) or unassigned from (None) a server, which is off."""
        return resolved()

    def set_server_type(self, server_id: int, cores: int, memory_gb: float) -> Future:
        """change_type (the server is off): the next boot has the new size."""
        return resolved()

    def route_floating_ip(self, ip: str, server_id: int | None) -> Future:
        """Route a floating IPv4 to a server (its OS must add the address), or nowhere (None)."""
        return resolved()

    # --- load balancers: something that carries the traffic
    def set_load_balancer(self, spec: LoadBalancerSpec) -> Future:
        """Create or change; a change keeps established connections."""
        return resolved()

    def delete_load_balancer(self, lb_id: int) -> Future:
        return resolved()

    def load_balancer_health(self, lb_id: int) -> dict[int, dict[str, str]] | None:
        """listen port -> target key -> healthy | unhealthy | unknown, from real checks;
        None when this backend does not check (the API then reports every target healthy)."""
        return None

    def reset_password(self, server_id: int, password: str) -> Future:
        return resolved()

    def disk_images_unavailable(self) -> str | None:
        """None when snapshots and backups can be made and used (create_image, rebuild or create
        from one); else the reason, which the API answers with. API-only: there is no disk to copy,
        an image stands for its system image plus the server's settings."""
        return None

    def create_image(self, server_id: int, image_id: int) -> Future:
        """Copy the server's disk into the image (create_image, backups)."""
        return resolved()

    def delete_image(self, image_id: int) -> None:
        pass

    def warm_up(self, image_names: tuple[str, ...] = ("debian-12",)) -> Future:
        """Prepare what the first create would otherwise wait for (packages, images), in the background."""
        return resolved()
