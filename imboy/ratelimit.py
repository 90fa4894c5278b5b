"""Rate limits: fixed windows per (action, key), in this process or in Redis.

Brute force and mail flooding are stopped per account and per IP address
(`check(action, keys)`); the WebSocket frame limit is a per-connection
token bucket (`TokenBucket`), local by nature.  With Redis configured the
windows are shared by every worker and host, so adding workers does not
multiply the allowance; if Redis fails the process falls back to its own
counters rather than letting everything through.
"""
from __future__ import annotations

import logging
import time
from typing import Any, Iterable

from .errors import RateLimited

log = logging.getLogger("imboy.ratelimit")


def parse_rule(text: str) -> tuple[int, float]:
    """`"10/60"` -> 10 hits per 60 seconds; `"0"` disables."""
    count, _, window = str(text).partition("/")
    return int(count), float(window or 60)


class _LocalWindows:
    """Fixed windows in a dict; expired windows are swept as they are met."""

    def __init__(self) -> None:
        self._hits: dict[str, tuple[float, int]] = {}
        self._next_sweep = 0.0

    def hit(self, key: str, window: float) -> int:
        now = time.monotonic()
        if now >= self._next_sweep:
            self._hits = {k: v for k, v in self._hits.items() if v[0] > now}
            self._next_sweep = now + 30.0
        ends, count = self._hits.get(key, (0.0, 0))
        if ends <= now:
            ends, count = now + window, 0
        count += 1
        self._hits[key] = (ends, count)
        return count


class RateLimiter:
    def __init__(self, rules: dict[str, str], redis_client: Any = None) -> None:
        self.rules = {name: parse_rule(rule) for name, rule in rules.items()}
        self._local = _LocalWindows()
        self._redis = redis_client

    def _hit(self, key: str, window: float) -> int:
        if self._redis is not None:
            try:
                pipe = self._redis.pipeline()
                pipe.incr(key)
                pipe.expire(key, max(1, int(window)), nx=True)
                return int(pipe.execute()[0])
            except Exception as exc:  # redis down: count here instead
                log.warning("rate limit counters unavailable in redis: %s", exc)
        return self._local.hit(key, window)

    def check(self, action: str, keys: Iterable[str]) -> None:
        """Count one attempt of `action` for each key; raise RateLimited over a limit.

        Rules are named `<action>_<kind>`, for example `login_ip` and
        `login_account`, with keys given as `"ip:1.2.3.4"`, `"account:x"`.
        """
        for key in keys:
            kind, _, value = key.partition(":")
            rule = self.rules.get(f"{action}_{kind}")
            if rule is None or rule[0] <= 0 or not value:
                continue
            limit, window = rule
            if self._hit(f"imboy:rl:{action}:{kind}:{value}", window) > limit:
                raise RateLimited("Too many attempts, try again later")


class TokenBucket:
    """`rate` tokens per second up to `burst`: a per-connection frame budget."""

    __slots__ = ("rate", "burst", "tokens", "stamp")

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.stamp = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False
