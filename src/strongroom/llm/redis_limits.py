"""Token buckets in Redis, shared by every gateway process that points at the same server.

Each take is one Lua script run atomically inside Redis on Redis's own clock, so
processes on different machines agree on a budget without agreeing on time.
"""

from __future__ import annotations

import math
from typing import Any

from strongroom.errors import BudgetUnavailable, ConfigError
from strongroom.llm.limits import Rate

__all__ = ["RedisBuckets"]

# KEYS[1] bucket; ARGV: cost, capacity, refill per second, force ("1"/"0").
# Returns the wait in seconds as a string ("0" when taken, "inf" when it can never fit).
_TAKE = """
local cost = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
local refill = tonumber(ARGV[3])
local force = ARGV[4] == "1"
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local data = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(data[1])
local ts = tonumber(data[2])
if tokens == nil or ts == nil then
  tokens = capacity
  ts = now
end
tokens = math.min(capacity, tokens + math.max(0, now - ts) * refill)
local wait = "0"
if force or cost <= tokens then
  tokens = math.min(capacity, tokens - cost)
elseif cost > capacity then
  wait = "inf"
else
  wait = tostring((cost - tokens) / refill)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
local full_in = (capacity - tokens) / refill
redis.call('PEXPIRE', KEYS[1], math.ceil((full_in + 1) * 1000))
return wait
"""


class RedisBuckets:
    """A :class:`~strongroom.llm.limits.BucketStore` in Redis (``redis.asyncio``).

        store = RedisBuckets("redis://127.0.0.1:6379/0", prefix="strongroom:budget:")
        gateway = Gateway(..., budgets=Budgets(limits, store))

    A bucket untouched long enough to be full again expires by itself. When Redis cannot
    be reached, calls fail with :class:`BudgetUnavailable`: the gateway does not guess a
    budget it cannot read.
    """

    def __init__(self, url: str = "redis://127.0.0.1:6379/0", *, prefix: str = "strongroom:budget:") -> None:
        try:
            import redis.asyncio as aioredis
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise ConfigError(
                "Redis budgets need the 'redis' package: pip install 'redis>=5'; or use in-process budgets"
            ) from exc
        from redis.exceptions import RedisError

        self.prefix = prefix
        self._where = url.split("@")[-1]  # never the password of redis://user:pw@host
        self._errors: tuple[type[Exception], ...] = (RedisError, OSError)
        self._redis: Any = aioredis.Redis.from_url(url, decode_responses=True, socket_timeout=5)
        self._script: Any = self._redis.register_script(_TAKE)

    async def take(self, key: str, cost: float, rate: Rate, *, force: bool = False) -> float:
        args = [repr(float(cost)), repr(float(rate.capacity)), repr(rate.refill_per_s), "1" if force else "0"]
        try:
            result = await self._script(keys=[self.prefix + key], args=args)
        except self._errors as exc:
            raise BudgetUnavailable(
                f"cannot read budgets from Redis at {self._where} ({type(exc).__name__}); "
                "check that Redis is up, or configure in-process budgets"
            ) from exc
        wait = float(result)
        return math.inf if math.isinf(wait) else wait

    async def aclose(self) -> None:
        await self._redis.aclose()
