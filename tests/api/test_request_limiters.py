"""Both request limiters pass the request limiter contract."""

from __future__ import annotations

import uuid

import pytest

from strongroom.api.limits import RateLimiter, RedisRateLimiter, RequestLimiter
from strongroom.testing.limit_contract import RequestLimiterContract
from tests.redis_service import REDIS_URL, needs_redis


class TestInProcessLimiter(RequestLimiterContract):
    @pytest.fixture
    def limiter(self) -> RequestLimiter:
        return RateLimiter(rate=10, burst=3)


@needs_redis
class TestRedisLimiter(RequestLimiterContract):
    @pytest.fixture
    def limiter(self) -> RequestLimiter:
        limiter = RedisRateLimiter(REDIS_URL, rate=10, burst=3)
        limiter._buckets.prefix = f"strongroom:test:{uuid.uuid4().hex}:"
        return limiter
