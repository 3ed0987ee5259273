"""Budgets (requests and tokens, per principal and per route), size limits, concurrency caps."""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from collections.abc import Callable

import pytest

from strongroom.errors import BudgetExceeded, PromptTooLarge
from strongroom.llm.limits import Budget, InProcessBuckets, Limits, Rate
from strongroom.llm.types import ChatResult
from strongroom.testing.openai_server import FakeOpenAIServer, Reply
from tests.llm.conftest import FakeClock
from tests.llm.helpers import ask, function, gateway, http


def test_bucket_takes_refills_and_says_how_long_to_wait(clock: FakeClock) -> None:
    async def main() -> None:
        store = InProcessBuckets(clock=clock)
        rate = Rate(10, per_s=10)  # 1 unit a second, bursts of 10
        assert await store.take("k", 10, rate) == 0
        assert await store.take("k", 2, rate) == pytest.approx(2.0)  # denied: nothing taken
        clock.advance(1)
        assert await store.take("k", 2, rate) == pytest.approx(1.0)
        clock.advance(1)
        assert await store.take("k", 2, rate) == 0
        assert math.isinf(await store.take("k", 11, rate))  # never fits
        assert await store.take("k", 5, rate, force=True) == 0  # forced: goes negative
        assert await store.take("k", 1, rate) == pytest.approx(6.0)
        await store.take("k", -100, rate, force=True)  # refunds stop at capacity
        assert await store.take("k", 10, rate) == 0

    asyncio.run(main())


def test_request_budget_per_principal(clock: FakeClock) -> None:
    limits = Limits(default_principal_budget=Budget(requests=Rate(2, per_s=60)))
    gw = gateway([("a", 1)], [function("a", "ok")], limits=limits, buckets=InProcessBuckets(clock=clock))

    async def main() -> None:
        await gw.chat(ask(user="alice"))
        await gw.chat(ask(user="alice"))
        with pytest.raises(BudgetExceeded, match="principal 'alice' has used its requests budget") as info:
            await gw.chat(ask(user="alice"))
        assert info.value.retry_after == pytest.approx(30.0)
        await gw.chat(ask(user="bob"))  # bob has his own budget
        clock.advance(30)
        await gw.chat(ask(user="alice"))  # refilled

    asyncio.run(main())


def test_route_budget_is_shared_by_everyone(clock: FakeClock) -> None:
    limits = Limits(route_budgets={"chat": Budget(requests=Rate(3, per_s=60))})
    gw = gateway([("a", 1)], [function("a", "ok")], limits=limits, buckets=InProcessBuckets(clock=clock))

    async def main() -> None:
        for user in ("alice", "bob", "carol"):
            await gw.chat(ask(user=user))
        with pytest.raises(BudgetExceeded, match="route 'chat'"):
            await gw.chat(ask(user="dave"))

    asyncio.run(main())


def test_token_budget_reserves_then_settles_to_real_usage(clock: FakeClock) -> None:
    # each call: prompt ~5 tokens (1 + 4 overhead), answer 40 chars ~10 tokens; it reserves
    # prompt + max_tokens = 25 and settles to 15 used
    limits = Limits(max_tokens=20, principal_budgets={"alice": Budget(tokens=Rate(60, per_s=3600))})
    gw = gateway([("a", 1)], [function("a", "x" * 40)], limits=limits, buckets=InProcessBuckets(clock=clock))

    async def main() -> list[ChatResult]:
        done = [await gw.chat(ask("hi", user="alice")) for _ in range(3)]  # 60 -> 45 -> 30 -> 15
        with pytest.raises(BudgetExceeded, match="tokens budget"):
            await gw.chat(ask("hi", user="alice"))  # 15 < 25 reserved
        return done

    results = asyncio.run(main())
    assert all(r.usage.total_tokens == 15 and r.usage.estimated for r in results)


def test_a_call_bigger_than_the_budget_says_so() -> None:
    limits = Limits(principal_budgets={"alice": Budget(tokens=Rate(100))})
    gw = gateway([("a", 1)], [function("a", "ok")], limits=limits)
    with pytest.raises(BudgetExceeded, match="can never fit") as info:
        asyncio.run(gw.chat(ask("hi", user="alice", max_tokens=500)))
    assert math.isinf(info.value.retry_after)


def test_usage_from_the_backend_is_used_when_reported(server: FakeOpenAIServer) -> None:
    async def main() -> ChatResult:
        gw = gateway([("a", 1)], [http("a", server)])
        try:
            return await gw.chat(ask("x" * 400))
        finally:
            await gw.aclose()

    result = asyncio.run(main())
    assert not result.usage.estimated
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (100, 6)  # the server's count


def test_prompt_and_max_tokens_limits(server: FakeOpenAIServer) -> None:
    limits = Limits(max_prompt_tokens=50, max_tokens=64)

    async def main() -> None:
        gw = gateway([("a", 1)], [http("a", server)], limits=limits)
        try:
            with pytest.raises(PromptTooLarge, match="over the limit of 50"):
                await gw.chat(ask("word " * 100))
            with pytest.raises(PromptTooLarge, match="at most 64"):
                await gw.chat(ask(max_tokens=65))
            await gw.chat(ask())
        finally:
            await gw.aclose()

    asyncio.run(main())
    assert len(server.requests) == 1  # rejected calls never reach a backend
    assert server.requests[0]["max_tokens"] == 64  # the limit is sent when the caller names none


def test_concurrency_cap_queues_calls(make_server: Callable[..., FakeOpenAIServer]) -> None:
    slow = make_server(Reply(tokens=("a", "b", "c"), token_delay=0.03))

    async def main() -> list[ChatResult]:
        gw = gateway([("a", 1)], [http("a", slow, max_concurrency=2, queue_timeout_s=30)])
        try:
            return list(await asyncio.gather(*(gw.chat(ask()) for _ in range(6))))
        finally:
            await gw.aclose()

    results = asyncio.run(main())
    assert all(r.deployment == "a" for r in results)
    assert slow.max_in_flight == 2 and len(slow.requests) == 6


def test_a_full_deployment_overflows_to_the_next(make_server: Callable[..., FakeOpenAIServer]) -> None:
    slow = make_server(Reply(tokens=("a", "b", "c"), token_delay=0.05))

    async def main() -> list[ChatResult]:
        gw = gateway([("a", 1), ("b", 0)], [http("a", slow, max_concurrency=2), function("b", "overflow")])
        try:
            return list(await asyncio.gather(*(gw.chat(ask()) for _ in range(5))))
        finally:
            await gw.aclose()

    results = asyncio.run(main())
    assert Counter(r.deployment for r in results) == {"a": 2, "b": 3}
    assert slow.max_in_flight == 2
    overflowed = [r for r in results if r.deployment == "b"]
    assert all("concurrent slots busy" in r.failovers[0].message for r in overflowed)


def test_leaving_a_stream_early_frees_its_slot(make_server: Callable[..., FakeOpenAIServer]) -> None:
    slow = make_server(Reply(tokens=tuple("abcdefgh"), token_delay=0.05))

    async def main() -> ChatResult:
        gw = gateway([("a", 1)], [http("a", slow, max_concurrency=1)])
        try:
            async with gw.stream(ask()) as s:
                async for _ in s:
                    break  # the caller loses interest after one delta
            with pytest.raises(RuntimeError, match="not finished"):
                _ = s.result
            return await gw.chat(ask())  # the slot is free again at once
        finally:
            await gw.aclose()

    assert asyncio.run(main()).text == "abcdefgh"


def test_a_cancelled_call_gives_back_its_slot_and_budget(make_server: Callable[..., FakeOpenAIServer]) -> None:
    slow = make_server(Reply(tokens=tuple("abcdefgh"), token_delay=0.2))
    limits = Limits(max_tokens=10, principal_budgets={"alice": Budget(tokens=Rate(25, per_s=3600))})

    async def main() -> ChatResult:
        gw = gateway([("a", 1)], [http("a", slow, max_concurrency=1)], limits=limits)
        try:
            task = asyncio.create_task(gw.chat(ask("hi", user="alice")))
            await asyncio.sleep(0.3)  # streaming by now
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            slow.default = Reply.stream("done")
            # the slot is free, and the budget was settled to what was used (else 25 - 15 < 15)
            return await gw.chat(ask("hi", user="alice"))
        finally:
            await gw.aclose()

    assert asyncio.run(main()).text == "done"
