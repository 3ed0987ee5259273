"""Concurrent queries are embedded together, each getting its own vector."""

from __future__ import annotations

import asyncio

import numpy as np

from strongroom.api.batching import Precomputed, QueryBatcher
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


def test_precomputed_answers_its_query_and_delegates_the_rest() -> None:
    embedder = HashEmbedder(32)
    vector = embedder.embed(["net sales"])[0]
    wrapped = Precomputed(embedder, "net sales", vector)
    calls = embedder.calls
    assert np.allclose(wrapped.embed(["net sales"]), vector[None, :]) and embedder.calls == calls
    assert np.allclose(wrapped.embed(["other"]), embedder.embed(["other"]))
    assert (wrapped.model_id, wrapped.dim) == (embedder.model_id, embedder.dim)
