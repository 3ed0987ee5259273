"""Concurrent queries are embedded together, each getting its own vector."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from strongroom.service.batching import Batcher, QueryBatcher
from strongroom.testing import HashEmbedder


def test_concurrent_queries_share_batches_and_get_their_own_vectors() -> None:
    embedder = HashEmbedder(32)
    batcher = QueryBatcher(embedder)
    texts = [f"revenue of company {i}" for i in range(40)]

    async def run() -> list[np.ndarray]:
        return list(await asyncio.gather(*(batcher.embed(t) for t in texts)))

    try:
        vectors = asyncio.run(run())
    finally:
        batcher.close()
    assert np.allclose(np.stack(vectors), embedder.embed(texts))
    assert batcher.batches < len(texts)


def test_a_batcher_shares_calls_keeps_order_and_hands_a_failure_to_its_whole_batch() -> None:
    calls: list[list[int]] = []

    def double(items: list[int]) -> list[int]:
        calls.append(items)
        if 13 in items:
            raise ValueError("unlucky batch")
        return [2 * i for i in items]

    batcher: Batcher[int, int] = Batcher(double, 8, "test")

    async def run() -> list[int | BaseException]:
        return list(await asyncio.gather(*(batcher.submit(i) for i in range(30)), return_exceptions=True))

    try:
        results = asyncio.run(run())
    finally:
        batcher.close()
    failed = next(batch for batch in calls if 13 in batch)
    for i, result in enumerate(results):
        if i in failed:
            assert isinstance(result, ValueError)
        else:
            assert result == 2 * i
    assert [i for batch in calls for i in batch] == list(range(30))
    assert max(len(batch) for batch in calls) <= 8 and len(calls) < 30
    with pytest.raises(ValueError, match="at least 1"):
        Batcher(double, 0, "test")
