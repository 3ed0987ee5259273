"""Query embeddings off the store's thread, batched: concurrent requests share one embed call.

The store runs on one thread; embedding each query there would serialise the model too.
:class:`QueryBatcher` gathers the queries that arrive while the embedder is busy and embeds
them in one call on a thread of its own, and :class:`Precomputed` hands the vector to
``search`` through the ordinary :class:`~strongroom.embed.Embedder` protocol (a wrapper,
not a change to retrieval).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from strongroom.embed import Embedder, Vectors

__all__ = ["Precomputed", "QueryBatcher"]


class Precomputed:
    """An :class:`Embedder` that answers its one query from a vector computed beforehand."""

    def __init__(self, inner: Embedder, text: str, vector: Vectors) -> None:
        self.model_id = inner.model_id
        self.dim = inner.dim
        self._inner = inner
        self._text = text
        self._vector = vector

    def embed(self, texts: Sequence[str]) -> Vectors:
        if list(texts) == [self._text]:
            return np.asarray(self._vector, dtype=np.float32).reshape(1, -1)
        return self._inner.embed(texts)


class QueryBatcher:
    """Embeds queries in batches on a single embedding thread; use from the event loop only."""

    def __init__(self, embedder: Embedder, max_batch: int = 64) -> None:
        self.embedder = embedder
        self.max_batch = max_batch
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="strongroom-embed")
        self._pending: list[tuple[str, asyncio.Future[Vectors]]] = []
        self._draining = False
        self.batches = 0

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    async def embed(self, text: str) -> Vectors:
        future: asyncio.Future[Vectors] = asyncio.get_running_loop().create_future()
        self._pending.append((text, future))
        if not self._draining:
            self._draining = True
            asyncio.get_running_loop().create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._pending:
                batch, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch :]
                texts = [t for t, _ in batch]
                try:
                    vectors = await loop.run_in_executor(self._pool, self.embedder.embed, texts)
                except Exception as exc:
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                self.batches += 1
                for (_, future), vector in zip(batch, vectors, strict=True):
                    if not future.done():
                        future.set_result(vector)
        finally:
            self._draining = False
