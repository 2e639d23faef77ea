"""Run-time settings of the local cloud: action times, rate limit (changeable while it runs)."""
from __future__ import annotations

from dataclasses import dataclass, field

from .errors import invalid_input


@dataclass
class Settings:
    action_time: float = 0.5                                   # seconds, any command
    action_times: dict[str, float] = field(default_factory=dict)  # per command, e.g. create_server=10
    rate_limit: int = 3600                                     # requests per hour per project; 0 = unlimited
    # Servers and primary IPs also carry the ``datacenter`` object the API removed on 2026-07-01,
    # for clients that still read it (hetzner.hcloud 5.x: server, server_info, inventory, ...).
    legacy_datacenters: bool = False
    # GET /pricing answers this instead of the catalogue's prices when set (PUT /_localcloud/pricing,
    # serve --pricing FILE): to rehearse a price change. Server and load balancer type objects keep theirs.
    pricing: dict | None = None

    def duration(self, command: str) -> float:
        return self.action_times.get(command, self.action_time)

    def update(self, data: dict) -> None:
        if "action_time" in data:
            self.action_time = _seconds(data["action_time"], "action_time")
        if "action_times" in data:
            if not isinstance(data["action_times"], dict):
                raise invalid_input("action_times", "must be an object of command: seconds")
            self.action_times = {
                str(k): _seconds(v, f"action_times.{k}") for k, v in data["action_times"].items()
            }
        if "rate_limit" in data:
            value = data["rate_limit"]
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise invalid_input("rate_limit", "must be a whole number of requests per hour, 0 for unlimited")
            self.rate_limit = value
        if "legacy_datacenters" in data:
            if not isinstance(data["legacy_datacenters"], bool):
                raise invalid_input("legacy_datacenters", "must be true or false")
            self.legacy_datacenters = data["legacy_datacenters"]

    def as_dict(self) -> dict:
        return {"action_time": self.action_time, "action_times": dict(self.action_times), "rate_limit": self.rate_limit,
                "legacy_datacenters": self.legacy_datacenters, "pricing_overridden": self.pricing is not None}


def _seconds(value, field_name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise invalid_input(field_name, "must be a number of seconds, 0 or more")
    return float(value)


def parse_action_times(text: str) -> dict[str, float]:
    """``create_server=10,attach_to_network=2`` -> {"create_server": 10.0, ...}"""
    result = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        command, sep, seconds = item.partition("=")
        if not sep:
            raise ValueError(f"'{item}' is not COMMAND=SECONDS")
        result[command.strip()] = float(seconds)
    return result


PRICING_KEYS = ("currency", "vat_rate", "image", "volume", "server_backup", "floating_ips", "primary_ips",
                "server_types", "load_balancer_types")


def check_pricing(data) -> dict:
    """A whole ``pricing`` object as GET /pricing returns it (``{"pricing": {...}}`` or the inner object):
    every key of the API's, every price a ``{"net", "gross"}`` pair of decimal strings. Returns the inner object."""
    from decimal import Decimal, InvalidOperation

    if isinstance(data, dict) and set(data) == {"pricing"}:
        data = data["pricing"]
    if not isinstance(data, dict):
        raise invalid_input("pricing", "must be the object GET /pricing returns")
    missing = [key for key in PRICING_KEYS if key not in data]
    if missing:
        raise invalid_input("pricing", "missing %s; start from GET /v1/pricing and change what you need"
                            % ", ".join(missing))

    def walk(value, path):
        if isinstance(value, dict):
            if "net" in value or "gross" in value:
                for key in ("net", "gross"):
                    amount = value.get(key)
                    try:
                        if not isinstance(amount, str):
                            raise InvalidOperation
                        Decimal(amount)
                    except InvalidOperation:
                        raise invalid_input(f"{path}.{key}", "must be a decimal string like \"4.9900\"") from None
                return
            for key, item in value.items():
                walk(item, f"{path}.{key}")
        elif isinstance(value, list):
            for index, item in enumerate(value):
                walk(item, f"{path}[{index}]")

    walk(data, "pricing")
    return data
