"""Fault injection for tests: rates or scripted sequences of error answers, slow answers, failing actions.

Configured at start (``--faults FILE``) and at run time (``PUT /_localcloud/faults``) with:

    {"seed": 7,
     "rates": {"429": 0.1, "502": 0.1, "409": 0.05, "503": 0, "504": 0},   # per request, /v1 only
     "methods": ["POST", "PUT", "DELETE"],        # optional: which methods rates apply to (default all)
     "phase": "before" | "after" | "mixed",       # before = request not applied; after = applied, answer lost
     "slow": {"rate": 0.1, "seconds": 2.0},
     "script": [{"status": 502, "method": "POST", "path": "^/v1/servers$", "phase": "after", "count": 1},
                {"delay": 3, "path": "^/v1/networks"}],
     "fail_actions": {"rate": 0.0, "commands": {"create_server": 1}}}
"""
from __future__ import annotations

import random
import re
import threading
from dataclasses import dataclass

from .errors import APIError, invalid_input

CODES = {429: "rate_limit_exceeded", 409: "conflict", 500: "server_error", 502: "bad_gateway",
         503: "unavailable", 504: "timeout"}
MESSAGES = {429: "rate limit exceeded (fault injected by the local cloud)",
            409: "conflict: the resource changed during the request, retry (fault injected)",
            500: "internal server error (fault injected)", 502: "bad gateway, retry (fault injected)",
            503: "service unavailable (fault injected)", 504: "gateway timeout, retry (fault injected)"}


@dataclass
class Fault:
    status: int | None = None
    delay: float = 0.0
    phase: str = "before"

    def error(self) -> APIError:
        return APIError(self.status, CODES[self.status], MESSAGES[self.status])


class Faults:
    def __init__(self, config: dict | None = None):
        self._lock = threading.Lock()
        self.configure(config or {})

    def configure(self, config: dict) -> None:
        if not isinstance(config, dict):
            raise invalid_input("faults", "must be an object")
        rates = {}
        for code, rate in (config.get("rates") or {}).items():
            try:
                status = int(code)
            except ValueError:
                raise invalid_input(f"rates.{code}", f"must be one of {sorted(CODES)}") from None
            if status not in CODES:
                raise invalid_input(f"rates.{code}", f"must be one of {sorted(CODES)}")
            if not isinstance(rate, (int, float)) or not 0 <= rate <= 1:
                raise invalid_input(f"rates.{code}", "must be a probability between 0 and 1")
            rates[status] = float(rate)
        if sum(rates.values()) > 1:
            raise invalid_input("rates", "the rates add up to more than 1")
        phase = config.get("phase", "before")
        if phase not in ("before", "after", "mixed"):
            raise invalid_input("phase", "must be before, after or mixed")
        script = []
        for index, entry in enumerate(config.get("script") or []):
            if not isinstance(entry, dict) or (entry.get("status") not in CODES and not entry.get("delay")):
                raise invalid_input(f"script[{index}]", f"needs a status ({sorted(CODES)}) or a delay in seconds")
            try:
                path = re.compile(entry.get("path", ""))
            except re.error as err:
                raise invalid_input(f"script[{index}].path", f"is not a valid regular expression: {err}") from None
            script.append({**entry, "_path": path, "count": int(entry.get("count", 1))})
        fail = config.get("fail_actions") or {}
        with self._lock:
            self.config = {k: v for k, v in config.items()}
            self.random = random.Random(config.get("seed"))
            self.rates = rates
            self.methods = set(config.get("methods") or ["GET", "POST", "PUT", "DELETE"])
            self.phase = phase
            self.slow = config.get("slow") or {}
            self.script = script
            self.fail_rate = float(fail.get("rate", 0))
            self.fail_commands = {k: int(v) for k, v in (fail.get("commands") or {}).items()}
            self.injected = {"requests": 0, "actions": 0}

    def decide(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for entry in self.script:
                if entry["count"] > 0 and entry.get("method", method) == method and entry["_path"].search(path):
                    entry["count"] -= 1
                    self.injected["requests"] += 1
                    return Fault(entry.get("status"), float(entry.get("delay", 0)), entry.get("phase", "before"))
            if self.slow.get("rate") and self.random.random() < self.slow["rate"]:
                self.injected["requests"] += 1
                return Fault(None, float(self.slow.get("seconds", 1.0)))
            if self.rates and method in self.methods:
                roll, total = self.random.random(), 0.0
                for status, rate in sorted(self.rates.items()):
                    total += rate
                    if roll < total:
                        self.injected["requests"] += 1
                        phase = self.phase
                        if phase == "mixed":
                            phase = "after" if self.random.random() < 0.5 and method != "GET" else "before"
                        if status in (429, 409):
                            phase = "before"       # the API rejects these before doing anything
                        return Fault(status, 0.0, phase)
        return None

    def should_fail_action(self, command: str) -> bool:
        with self._lock:
            if self.fail_commands.get(command, 0) > 0:
                self.fail_commands[command] -= 1
                self.injected["actions"] += 1
                return True
            if self.fail_rate and self.random.random() < self.fail_rate:
                self.injected["actions"] += 1
                return True
        return False

    def describe(self) -> dict:
        with self._lock:
            return {"config": self.config, "remaining_script": [
                {k: v for k, v in e.items() if not k.startswith("_")} for e in self.script if e["count"] > 0],
                "fail_commands_left": dict(self.fail_commands), "injected": dict(self.injected)}
