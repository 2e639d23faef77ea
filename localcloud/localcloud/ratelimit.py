"""Per-project token bucket: RateLimit-* headers on every answer, 429 when the budget is spent."""
from __future__ import annotations

import math
import time


class RateLimiter:
    def __init__(self, settings):
        self.settings = settings
        self.buckets: dict[int, tuple[float, float]] = {}    # project -> (tokens, last refill time)

    def take(self, project: int) -> tuple[bool, dict[str, str]]:
        limit = self.settings.rate_limit
        if limit <= 0:
            return True, {}
        now = time.time()
        tokens, last = self.buckets.get(project, (float(limit), now))
        refill_per_second = limit / 3600.0
        tokens = min(float(limit), tokens + (now - last) * refill_per_second)
        allowed = tokens >= 1
        if allowed:
            tokens -= 1
        self.buckets[project] = (tokens, now)
        reset = int(now + math.ceil((limit - tokens) / refill_per_second))
        return allowed, {"RateLimit-Limit": str(limit), "RateLimit-Remaining": str(int(tokens)),
                         "RateLimit-Reset": str(reset)}
