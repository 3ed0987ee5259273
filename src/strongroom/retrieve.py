"""Hybrid retrieval over any Store: dense and BM25 rankings fused by weighted reciprocal rank,
then spread across documents.

Three rankings are fused: dense similarity of whole chunks, BM25 over each chunk's table
rows and headings (a chunk ranks by its best line) and BM25 over whole chunks. The Store
applies the Scope (entitlements, as-of, filters) inside every one of them, so fusion only
ever sees chunks the principal may read, and a restricted principal still gets a full top-k.
Finally each further chunk from an already-chosen document counts a little less, so a
question spanning several filings is not answered from one of them five times over.

The weights were chosen on the sec10q evaluation set (see BENCHMARKS.md); they are
settings of :func:`search`, not constants of the algorithm.

>>> rrf([["a", "b"], ["b", "c"]])[0]
('b', 0.03252247488101534)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from strongroom.embed import Embedder
from strongroom.errors import QueryError
from strongroom.store.base import Store
from strongroom.types import Hit, Scope

__all__ = ["RRF_K", "Fusion", "diversify", "rrf", "search"]

RRF_K = 60


def rrf(
    rankings: Sequence[Sequence[str]], k: int = RRF_K, weights: Sequence[float] | None = None
) -> list[tuple[str, float]]:
    """Weighted reciprocal rank fusion: score(id) = sum of weight / (k + rank), rank from 1.

    Ties break by id, and sums are exact, so the result does not depend on the order of
    ``rankings`` (with their weights).
    """
    weights = weights if weights is not None else [1.0] * len(rankings)
    if len(weights) != len(rankings):
        raise ValueError("one weight per ranking")
    parts: dict[str, list[float]] = {}
    for ranking, weight in zip(rankings, weights, strict=True):
        for rank, item in enumerate(ranking, start=1):
            parts.setdefault(item, []).append(weight / (k + rank))
    scores = {item: math.fsum(p) for item, p in parts.items()}
    return sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))


def diversify(
    ranked: Sequence[tuple[str, float]], group_of: Mapping[str, str], k: int, penalty: float
) -> list[tuple[str, float]]:
    """Greedy top-``k``: each item's score is multiplied by ``penalty`` per item of its group
    already chosen (``penalty`` 1.0 keeps the ranking as it is)."""
    pool = list(ranked)
    chosen: list[tuple[str, float]] = []
    counts: dict[str, int] = {}
    while pool and len(chosen) < k:
        best = max(
            range(len(pool)),
            key=lambda i: (pool[i][1] * penalty ** counts.get(group_of.get(pool[i][0], ""), 0), -i),
        )
        item = pool.pop(best)
        chosen.append(item)
        group = group_of.get(item[0], "")
        counts[group] = counts.get(group, 0) + 1
    return chosen


@dataclass(frozen=True)
class Fusion:
    """How rankings are weighed. ``candidates``: how deep each ranking is read."""

    dense: float = 1.0
    lines: float = 0.5
    chunks: float = 0.1
    per_document: float = 0.5
    candidates: int = 100


def search(
    store: Store,
    embedder: Embedder,
    query: str,
    scope: Scope,
    k: int = 10,
    *,
    fusion: Fusion = Fusion(),
) -> list[Hit]:
    """The top ``k`` chunks for ``query`` that ``scope`` admits, best first."""
    if not query.strip():
        raise QueryError("the query is empty; ask something")
    if k < 1:
        raise QueryError("k must be at least 1")
    n = max(fusion.candidates, k)
    dense = store.vector_search(embedder.embed([query])[0], scope, n)
    lines = store.keyword_search(query, scope, n, unit="line")
    chunks = store.keyword_search(query, scope, n)
    ranks = {
        name: {cid: i for i, (cid, _) in enumerate(found, start=1)}
        for name, found in (("dense", dense), ("lines", lines), ("chunks", chunks))
    }
    fused = rrf(
        [[c for c, _ in dense], [c for c, _ in lines], [c for c, _ in chunks]],
        weights=[fusion.dense, fusion.lines, fusion.chunks],
    )[: max(3 * k, 30)]
    candidates = {chunk.id: (chunk, version) for chunk, version in store.fetch([c for c, _ in fused])}
    fused = [(c, s) for c, s in fused if c in candidates]
    group_of = {cid: version.document_id for cid, (_, version) in candidates.items()}
    top = diversify(fused, group_of, k, fusion.per_document)
    keyword_rank = {**ranks["chunks"], **ranks["lines"]}
    return [
        Hit(candidates[cid][0], candidates[cid][1], score, keyword_rank.get(cid), ranks["dense"].get(cid))
        for cid, score in top
    ]
