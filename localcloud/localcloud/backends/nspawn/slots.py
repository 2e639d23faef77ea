"""Slots: several local clouds with machines side by side on one host.

Everything host-wide a local cloud makes is named for its slot, and each slot has its own public
range, a /18 of 198.18.0.0/15 with the host's address on its own bridge:

| slot | public range     | host (gateway, apt proxy) | names                                             |
|------|------------------|---------------------------|---------------------------------------------------|
| 0    | 198.18.0.0/18    | 198.18.0.1                | lc-pub, lc<id>p, lcn<net>, lc-<id>, localcloud_fw |
| N    | 198.18.0.0/18+N  | x.x.x.1 of that /18       | lcsN-pub, lcsN<id>p, lcsNn<net>, lcsN-<id>, localcloud_fw_sN |

Slot 0 keeps the names the local cloud always had. A slot is held with a lock file
(/run/localcloud/nspawn.lock for slot 0, nspawn-N.lock for N > 0); `auto` takes the first free one,
and a state directory keeps the slot it was made in (<state>/machines.slot), because its machines'
public addresses are in that slot's range.
"""
from __future__ import annotations

import hashlib
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

SLOTS = 8                                                   # 8 x /18 = 198.18.0.0/15
ALL_PUBLIC = ipaddress.ip_network("198.18.0.0/15")
LOCK_DIR = Path("/run/localcloud")
APT_CACHE = Path(os.environ.get("LOCALCLOUD_APT_CACHE", "/var/cache/localcloud/apt-cacher-ng"))


@dataclass(frozen=True)
class Slot:
    number: int = 0

    # ------------------------------------------------------------------ names
    @property
    def prefix(self) -> str:
        return "lc" if self.number == 0 else f"lcs{self.number}"

    def link(self, kind: str, key: str, suffix: str = "") -> str:
        """An interface name (<= 15 chars): prefix + kind + key + suffix, hashed when too long.
        kind: "" (machine), "n" (network bridge), "g" (gateway), "b" (load balancer)."""
        head = self.prefix + kind
        name = f"{head}{key}{suffix}"
        if len(name) <= 15:
            return name
        digest = hashlib.sha1(key.encode()).hexdigest()[: 15 - len(head) - len(suffix)]
        return f"{head}{digest}{suffix}"

    def netns(self, kind: str, key) -> str:
        """lc-<id> (machine), lc-gw-<network id>, lc-lb-<id>; lcsN-... in slot N."""
        return f"{self.prefix}-{kind}{key}" if kind else f"{self.prefix}-{key}"

    @property
    def public_bridge(self) -> str:
        return f"{self.prefix}-pub"

    def table(self, name: str) -> str:
        return f"localcloud_{name}" if self.number == 0 else f"localcloud_{name}_s{self.number}"

    # ------------------------------------------------------------------ addresses
    @property
    def public_net(self) -> ipaddress.IPv4Network:
        return list(ALL_PUBLIC.subnets(new_prefix=18))[self.number]

    @property
    def host_ip(self) -> str:
        return str(self.public_net.network_address + 1)

    @property
    def first_ip(self) -> str:
        """Servers, floating IPs and load balancers get addresses from x.y.(z+1).1 up."""
        return str(self.public_net.network_address + 257)

    # ------------------------------------------------------------------ host paths
    @property
    def lock_path(self) -> Path:
        return LOCK_DIR / ("nspawn.lock" if self.number == 0 else f"nspawn-{self.number}.lock")

    def run_dir(self, name: str) -> Path:
        return LOCK_DIR / (name if self.number == 0 else f"{name}-{self.number}")

    @property
    def apt_cache(self) -> Path:
        """apt-cacher-ng is not made for two daemons on one cache directory: slot N > 0 has its own
        (kept across runs, so it is cold only the first time that slot is used on a host)."""
        return APT_CACHE if self.number == 0 else APT_CACHE.with_name(f"{APT_CACHE.name}-slot{self.number}")


def recorded_slot(state_dir: Path) -> int | None:
    try:
        return int((Path(state_dir) / "machines.slot").read_text().strip())
    except (OSError, ValueError):
        return None


def record_slot(state_dir: Path, number: int) -> None:
    (Path(state_dir) / "machines.slot").write_text(f"{number}\n")
