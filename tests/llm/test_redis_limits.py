"""Budgets in a real Redis (127.0.0.1:6379), shared by two gateways. Skipped without Redis."""

from __future__ import annotations

import asyncio
import math
import socket
import uuid

import pytest

from strongroom.errors import BudgetExceeded, BudgetUnavailable
from strongroom.llm.limits import Budget, Limits, Rate
from tests.llm.helpers import ask, function, gateway
from tests.redis_service import REDIS, redis_up

pytestmark = pytest.mark.integration

if not redis_up():
    pytest.skip(
        f"no Redis answering PING at {REDIS[0]}:{REDIS[1]}; start redis-server to run these", allow_module_level=True
    )

from strongroom.llm.redis_limits import RedisBuckets  # noqa: E402


@pytest.fixture
def prefix() -> str:
    return f"strongroom:test:{uuid.uuid4().hex}:"


def test_take_deny_refill_and_refund(prefix: str) -> None:
    async def main() -> None:
        store = RedisBuckets(prefix=prefix)
        try:
            rate = Rate(5, per_s=0.5)  # 10 units a second
            assert await store.take("k", 5, rate) == 0
            wait = await store.take("k", 3, rate)
            assert 0.2 < wait <= 0.3
            assert math.isinf(await store.take("k", 6, rate))
            await asyncio.sleep(0.35)
            assert await store.take("k", 3, rate) == 0
            await store.take("k", -100, rate, force=True)
            assert await store.take("k", 5, rate) == 0
            ttl = await store._redis.pttl(prefix + "k")
            assert 0 < ttl <= 2000  # an idle bucket expires once it would be full again
        finally:
            await store._redis.delete(prefix + "k")
            await store.aclose()

    asyncio.run(main())


def test_two_gateways_share_one_budget(prefix: str) -> None:
    limits = Limits(default_principal_budget=Budget(requests=Rate(3, per_s=3600)))

    async def main() -> None:
        stores = [RedisBuckets(prefix=prefix), RedisBuckets(prefix=prefix)]
        gws = [gateway([("a", 1)], [function("a", "ok")], limits=limits, buckets=s) for s in stores]
        try:
            for gw in (gws[0], gws[1], gws[0]):
                await gw.chat(ask(user="alice"))
            with pytest.raises(BudgetExceeded) as info:
                await gws[1].chat(ask(user="alice"))
            assert info.value.retry_after > 1000
            await gws[1].chat(ask(user="bob"))
        finally:
            keys = [k async for k in stores[0]._redis.scan_iter(match=prefix + "*")]
            if keys:
                await stores[0]._redis.delete(*keys)
            for s in stores:
                await s.aclose()

    asyncio.run(main())


def test_an_unreachable_redis_refuses_calls_with_a_clear_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    limits = Limits(default_principal_budget=Budget(requests=Rate(10)))

    async def main() -> None:
        store = RedisBuckets(f"redis://user:hunter2@127.0.0.1:{port}/0")
        gw = gateway([("a", 1)], [function("a", "ok")], limits=limits, buckets=store)
        try:
            with pytest.raises(BudgetUnavailable, match="cannot read budgets from Redis") as info:
                await gw.chat(ask(user="alice"))
            assert "hunter2" not in str(info.value)
        finally:
            await store.aclose()

    asyncio.run(main())
