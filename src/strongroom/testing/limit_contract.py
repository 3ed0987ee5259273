"""The contracts of the two rate-limit seams: :class:`~strongroom.llm.limits.BucketStore`
(the gateway's token and request budgets) and :class:`~strongroom.api.limits.RequestLimiter`
(the service's per-principal request rate).

A backend's test subclasses :class:`BucketStoreContract` and supplies ``buckets`` (an empty
store; its keys are the test's own), or :class:`RequestLimiterContract` and supplies
``limiter`` (a new limiter at 10 requests a second with a burst of 3). Waits are checked
against the rate's arithmetic with room only in the direction a slow machine moves them
(time passing refills), so the tests hold under load.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable

from strongroom.api.limits import RequestLimiter
from strongroom.llm.limits import BucketStore, Rate

__all__ = ["BucketStoreContract", "RequestLimiterContract"]

SLOW = Rate(5, per_s=500)  # 0.01 units a second: nothing refills within a test
FAST = Rate(5, per_s=0.5)  # 10 units a second


def _run(store: BucketStore | RequestLimiter, body: Awaitable[None]) -> None:
    """Run ``body``, then close ``store``, on one event loop (a client belongs to its loop)."""

    async def main() -> None:
        try:
            await body
        finally:
            await store.aclose()

    asyncio.run(main())


class BucketStoreContract:
    """What every bucket store must do."""

    def test_a_full_bucket_grants_its_capacity_then_denies_taking_nothing(self, buckets: BucketStore) -> None:
        async def main() -> None:
            assert await buckets.take("k", 3, SLOW) == 0.0
            assert await buckets.take("k", 2, SLOW) == 0.0
            wait = await buckets.take("k", 1, SLOW)
            assert 0 < wait <= 1 / SLOW.refill_per_s
            assert await buckets.take("k", 1, SLOW) > 0  # the denial took nothing, and nothing came back

        _run(buckets, main())

    def test_more_than_the_bucket_holds_never_fits(self, buckets: BucketStore) -> None:
        async def main() -> None:
            assert math.isinf(await buckets.take("k", 6, SLOW))

        _run(buckets, main())

    def test_a_denied_request_leaves_room_for_a_smaller_one(self, buckets: BucketStore) -> None:
        async def main() -> None:
            assert await buckets.take("k", 4, SLOW) == 0.0
            assert await buckets.take("k", 2, SLOW) > 0
            assert await buckets.take("k", 1, SLOW) == 0.0

        _run(buckets, main())

    def test_buckets_refill_with_time(self, buckets: BucketStore) -> None:
        async def main() -> None:
            assert await buckets.take("k", 5, FAST) == 0.0
            wait = await buckets.take("k", 3, FAST)
            assert 0 < wait <= 0.3
            await asyncio.sleep(0.35)
            assert await buckets.take("k", 3, FAST) == 0.0

        _run(buckets, main())

    def test_force_takes_into_debt_and_a_refund_never_overfills(self, buckets: BucketStore) -> None:
        async def main() -> None:
            assert await buckets.take("k", 5, SLOW) == 0.0
            assert await buckets.take("k", 3, SLOW, force=True) == 0.0  # metering what was used: -3
            assert await buckets.take("k", 1, SLOW) >= 3 / SLOW.refill_per_s
            assert await buckets.take("k", -100, SLOW, force=True) == 0.0  # refund, capped at capacity
            assert await buckets.take("k", 5, SLOW) == 0.0
            assert await buckets.take("k", 1, SLOW) > 0

        _run(buckets, main())

    def test_keys_are_separate_buckets(self, buckets: BucketStore) -> None:
        async def main() -> None:
            assert await buckets.take("alice", 5, SLOW) == 0.0
            assert await buckets.take("alice", 1, SLOW) > 0
            assert await buckets.take("bob", 5, SLOW) == 0.0

        _run(buckets, main())


class RequestLimiterContract:
    """What every request limiter must do (10 a second, burst 3, per key)."""

    def test_a_burst_is_granted_then_the_next_waits(self, limiter: RequestLimiter) -> None:
        async def main() -> None:
            assert [await limiter.acquire("ana") for _ in range(3)] == [0.0, 0.0, 0.0]
            assert 0 < await limiter.acquire("ana") <= 0.1
            assert await limiter.acquire("ben") == 0.0  # another principal has its own
            await asyncio.sleep(0.15)
            assert await limiter.acquire("ana") == 0.0

        _run(limiter, main())
