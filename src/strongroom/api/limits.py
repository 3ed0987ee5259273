"""Per-principal token buckets: ``rate`` requests a second, bursts of ``burst``.

In process by default (:class:`RateLimiter`); with ``STRONGROOM_RATE_LIMIT_REDIS_URL`` set,
in Redis (:class:`RedisRateLimiter`), so a principal has one budget across every replica.

>>> bucket = RateLimiter(rate=1.0, burst=2)
>>> [bucket.take("ana", now=0.0) for _ in range(3)]
[0.0, 0.0, 1.0]
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Protocol

from strongroom.llm.limits import Rate
from strongroom.llm.redis_limits import RedisBuckets

__all__ = ["RateLimiter", "RedisRateLimiter", "RequestLimiter"]


class RequestLimiter(Protocol):
    """One request budget per key (a principal): the API's caller dependency (``api/deps.py``)
    asks before each request and answers 429 with ``Retry-After`` when told to wait.
    :class:`strongroom.testing.limit_contract.RequestLimiterContract` checks a backend::

        wait = await limiter.acquire(principal.name)
        if wait > 0: ...  # refuse, retry after ``wait`` seconds
    """

    async def acquire(self, key: str) -> float:
        """Take a token for ``key``: 0.0 when granted, else the seconds until one is free.

        Raises :class:`strongroom.errors.BudgetUnavailable` when the shared store is down.
        """
        ...

    async def aclose(self) -> None: ...


class RateLimiter:
    """Token buckets keyed by principal; the least recently seen are forgotten past ``max_keys``."""

    def __init__(self, rate: float, burst: int, max_keys: int = 100_000) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, key: str, now: float | None = None) -> float:
        """Take a token: 0.0 when granted, else the seconds to wait before one is available."""
        now = time.monotonic() if now is None else now
        with self._lock:
            tokens, last = self._buckets.pop(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            wait = 0.0
            if tokens >= 1.0:
                tokens -= 1.0
            else:
                wait = (1.0 - tokens) / self.rate
            self._buckets[key] = (tokens, now)
            if len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        return wait

    async def acquire(self, key: str) -> float:
        return self.take(key)

    async def aclose(self) -> None:
        return None


class RedisRateLimiter:
    """The same buckets in Redis (one atomic script per take, on Redis's clock)."""

    def __init__(self, url: str, rate: float, burst: int) -> None:
        self.rate = Rate(rate, per_s=1.0, burst=float(burst))
        self._buckets = RedisBuckets(url, prefix="strongroom:rate:")

    async def acquire(self, key: str) -> float:
        return await self._buckets.take(key, 1.0, self.rate)

    async def aclose(self) -> None:
        await self._buckets.aclose()
