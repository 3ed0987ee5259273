"""Hybrid retrieval: BM25 and dense candidates, fused by reciprocal rank, over any Store.

The Store applies the Scope (entitlements, as-of, filters) inside both searches, so
fusion only ever sees chunks the principal may read, and a restricted principal still
gets a full top-k.

>>> rrf([["a", "b"], ["b", "c"]])[0]
('b', 0.03252247488101534)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from strongroom.embed import Embedder
from strongroom.errors import QueryError
from strongroom.store.base import Store
from strongroom.types import Hit, Scope

__all__ = ["RRF_K", "rrf", "search"]

RRF_K = 60


def rrf(rankings: Sequence[Sequence[str]], k: int = RRF_K) -> list[tuple[str, float]]:
    """Reciprocal rank fusion: score(id) = sum over rankings of 1 / (k + rank), rank from 1.

    Ties break by id, so the result does not depend on the order of ``rankings``.
    """
    parts: dict[str, list[float]] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            parts.setdefault(item, []).append(1.0 / (k + rank))
    scores = {item: math.fsum(p) for item, p in parts.items()}  # exact: no dependence on order
    return sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))


def search(
    store: Store,
    embedder: Embedder,
    query: str,
    scope: Scope,
    k: int = 10,
    *,
    candidates: int = 50,
) -> list[Hit]:
    """The top ``k`` chunks for ``query`` that ``scope`` admits, best first."""
    if not query.strip():
        raise QueryError("the query is empty; ask something")
    if k < 1:
        raise QueryError("k must be at least 1")
    n = max(candidates, k)
    keyword = store.keyword_search(query, scope, n)
    dense = store.vector_search(embedder.embed([query])[0], scope, n)
    keyword_rank = {cid: i for i, (cid, _) in enumerate(keyword, start=1)}
    dense_rank = {cid: i for i, (cid, _) in enumerate(dense, start=1)}
    fused = rrf([[c for c, _ in keyword], [c for c, _ in dense]])[:k]
    scores = dict(fused)
    return [
        Hit(chunk, version, scores[chunk.id], keyword_rank.get(chunk.id), dense_rank.get(chunk.id))
        for chunk, version in store.fetch([cid for cid, _ in fused])
    ]
