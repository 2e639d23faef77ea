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

    def create_server(self, spec: ServerSpec) -> Future:
        return resolved()

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

    def machine_status(self, server_id: int) -> str | None:
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
