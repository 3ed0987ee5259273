"""Work off the event loop, batched: concurrent requests share one call on one thread.

:class:`Batcher` is the mechanism; the service uses it for query embeddings and for audit
appends (a group commit: one transaction for the records of concurrent requests).

Query embeddings: the store runs on one thread; embedding each query there would serialise
the model too. :class:`QueryBatcher` embeds the queries that arrive while the embedder is
busy in one call on a thread of its own, and the vector goes to ``retrieve.search``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, TypeVar

from strongroom.embed import Embedder, Vectors

__all__ = ["Batcher", "QueryBatcher"]

T = TypeVar("T")
R = TypeVar("R")


class Batcher(Generic[T, R]):
    """Runs ``fn`` over batches of items on a thread of its own; use from the event loop only.

    Items submitted while ``fn`` is busy wait and go together into its next call (at most
    ``max_batch``), so concurrent requests share one call, and one thread hand-off::

        writer = Batcher(audit_log.append_many, 64, "audit")
        seq = await writer.submit(event)   # returns once the event's batch is committed

    ``fn`` returns one result per item, in order; if it raises, every item of that batch
    gets the exception.
    """

    def __init__(self, fn: Callable[[list[T]], Iterable[R]], max_batch: int, name: str) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self.fn = fn
        self.max_batch = max_batch
        self._pool = ThreadPoolExecutor(1, thread_name_prefix=f"strongroom-{name}")
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._task: asyncio.Task[None] | None = None  # the drain running now, if any
        self.batches = 0

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    async def submit(self, item: T) -> R:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        self._pending.append((item, future))
        if self._task is None:
            self._task = loop.create_task(self._drain())  # held: the loop keeps only weak references
        return await future

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._pending:
                batch, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch :]
                try:
                    results = await loop.run_in_executor(self._pool, self.fn, [item for item, _ in batch])
                except Exception as exc:
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                self.batches += 1
                for (_, future), result in zip(batch, results, strict=True):
                    if not future.done():
                        future.set_result(result)
        finally:
            self._task = None


class QueryBatcher(Batcher[str, Vectors]):
    """Embeds queries in batches on a single embedding thread; use from the event loop only."""

    def __init__(self, embedder: Embedder, max_batch: int = 64) -> None:
        super().__init__(embedder.embed, max_batch, "embed")

    async def embed(self, text: str) -> Vectors:
        return await self.submit(text)
