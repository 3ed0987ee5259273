"""Hybrid retrieval over any Store: dense and BM25 rankings, steered towards the documents a
question names, fused by weighted reciprocal rank, then spread across documents.

Three rankings are read: dense similarity of whole chunks, BM25 over each chunk's table
rows and headings (a chunk ranks by its best line) and BM25 over whole chunks. The Store
applies the Scope (entitlements, as-of, filters) inside every one of them, so fusion only
ever sees chunks the principal may read, and a restricted principal still gets a full top-k.

Questions name their document ("NVIDIA's R&D in Q1 2023") far more often than a chunk
repeats that name, so before fusion each ranking's scores are raised by how well the
chunk's document title matches the query (:func:`title_prior`). Finally each further chunk
from an already-chosen document counts a little less, so a question spanning several
filings is not answered from one of them five times over; the document the question names
is spared that discount, since the whole answer usually lies in it.

Then the best candidates are re-ranked by what their page is: a question about a line item
prefers the statement that reports it (:mod:`strongroom.finance`), and both keyword searches
also look for the line item's other names from the curated synonym table.

The weights were chosen on the sec10q evaluation set (see BENCHMARKS.md); they are
settings of :func:`search`, not constants of the algorithm.

>>> rrf([["a", "b"], ["b", "c"]])[0]
('b', 0.03252247488101534)
"""

from __future__ import annotations

import contextlib
import functools
import heapq
import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from strongroom.embed import Embedder
from strongroom.errors import QueryError
from strongroom.finance import statement_of, statements_asked, synonyms
from strongroom.store.base import Index, Pinnable
from strongroom.text import tokenize
from strongroom.types import Hit, Scope

__all__ = ["RRF_K", "Fusion", "QueryVector", "diversify", "rrf", "search"]

RRF_K = 60
#: a query's embedding, shape (dim,)
QueryVector = npt.NDArray[np.float32]

_ORDINAL = {"first": 1, "second": 2, "third": 3, "fourth": 4}
_QUARTER = re.compile(r"\b(first|second|third|fourth)\s+(?:fiscal\s+)?quarter\b", re.IGNORECASE)


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


@functools.lru_cache(maxsize=65536)
def _title_terms(title: str) -> frozenset[str]:
    """A title's index terms; titles repeat across queries, so they are tokenized once."""
    return frozenset(tokenize(title))


def title_prior(query: str, titles: Mapping[str, str]) -> dict[str, float]:
    """Per version id, how well its title matches the query, from 0 to 1 (the best match).

    A term counts by its BM25 IDF among the given titles, so words every candidate's title
    shares ("Form 10-Q") weigh next to nothing and a company or period named by the query
    and by few titles weighs most.
    """
    terms = frozenset(tokenize(_QUARTER.sub(lambda m: f"{m.group(0)} Q{_ORDINAL[m.group(1).lower()]}", query)))
    matched = {vid: _title_terms(title) & terms for vid, title in titles.items()}
    n = len(titles)
    df = Counter(t for found in matched.values() for t in found)
    idf = {t: math.log(1 + (n - d + 0.5) / (d + 0.5)) for t, d in df.items()}
    raw = {vid: math.fsum(idf[t] for t in found) for vid, found in matched.items()}
    best = max(raw.values(), default=0.0)
    return {vid: r / best if best > 0 else 0.0 for vid, r in raw.items()}


def diversify(
    ranked: Sequence[tuple[str, float]],
    group_of: Mapping[str, str],
    k: int,
    penalty: float,
    group_penalty: Mapping[str, float] | None = None,
) -> list[tuple[str, float]]:
    """Greedy top-``k``: each item's score is multiplied by ``penalty`` (or its group's entry
    in ``group_penalty``) per item of its group already chosen; 1.0 keeps the ranking.

    Penalties are at most 1, so a score only falls as its group fills: a lazy heap re-scores
    an item only when it reaches the top with a stale count (O((n + k) log n), not O(n k)).
    Ties go to the item ranked first.
    """
    per_group = group_penalty or {}
    heap = [(-score, i, 0) for i, (_, score) in enumerate(ranked)]
    heapq.heapify(heap)
    chosen: list[tuple[str, float]] = []
    counts: dict[str, int] = {}
    while heap and len(chosen) < k:
        _, i, seen = heapq.heappop(heap)
        item, score = ranked[i]
        group = group_of.get(item, "")
        count = counts.get(group, 0)
        if count != seen:  # its group gained members since it was scored: re-score, try again
            heapq.heappush(heap, (-score * per_group.get(group, penalty) ** count, i, count))
            continue
        chosen.append((item, score))
        counts[group] = count + 1
    return chosen


@dataclass(frozen=True)
class Fusion:
    """How rankings are weighed. ``candidates``: how deep each ranking is read.

    ``title``: how much a full title match multiplies a chunk's score in every ranking
    (by ``1 + title``). ``per_document``: the discount per chunk already chosen from the
    same document. ``named_document``: how much of that discount a document is spared in
    proportion to its title match (1.0: the best-named document is not discounted).

    ``synonyms``: widen both keyword searches with the other names of the line items the
    question names (:func:`strongroom.finance.synonyms`: capex, purchases of property, plant
    and equipment). ``statement``: how much a chunk of the ``rerank`` best gains (by
    ``1 + statement``) when its page is the statement the question asks about (a balance
    sheet for inventories). ``page``: how much of the other top chunks' scores on the same
    page a chunk adds (page-level voting); 0 by default, because on the page-labelled sec10q
    set every weight tried lowered page hit@5 (BENCHMARKS.md section 2).
    """

    dense: float = 1.0
    lines: float = 0.5
    chunks: float = 0.1
    per_document: float = 0.5
    title: float = 1.0
    named_document: float = 1.0
    candidates: int = 100
    synonyms: bool = True
    statement: float = 1.0
    page: float = 0.0
    rerank: int = 100


def search(
    index: Index,
    encoder: Embedder | QueryVector,
    query: str,
    scope: Scope,
    k: int = 10,
    *,
    fusion: Fusion = Fusion(),
) -> list[Hit]:
    """The top ``k`` chunks for ``query`` that ``scope`` admits, best first.

    ``encoder``: the embedder that embeds ``query`` here, or the query's vector when the
    caller computed it already (the service embeds concurrent queries in batches).
    """
    if not query.strip():
        raise QueryError("the query is empty; ask something")
    if k < 1:
        raise QueryError("k must be at least 1")
    vector = encoder if isinstance(encoder, np.ndarray) else encoder.embed([query])[0]
    with index.pinned() if isinstance(index, Pinnable) else contextlib.nullcontext():
        return _search(index, vector, query, scope, k, fusion)


def _by_page(store: Index, fused: list[tuple[str, float]], query: str, fusion: Fusion) -> list[tuple[str, float]]:
    """Re-rank the ``fusion.rerank`` best chunks by their page: the chunks of one page vote
    for each other (``fusion.page`` of the others' scores), and a chunk on a page of the
    statement the question asks about (a balance sheet for inventories) gains
    ``fusion.statement`` of its score. The rest keep their order below."""
    asked = statements_asked(query)
    if not asked and not fusion.page:
        return fused  # nothing would move: spare the fetch of the top chunks
    head, tail = fused[: fusion.rerank], fused[fusion.rerank :]
    fetched = store.fetch([cid for cid, _ in head])
    page_of = {c.id: (c.version_id, c.page) for c, _ in fetched}
    statement: dict[tuple[str, int], str | None] = {}
    for chunk, _ in sorted(fetched, key=lambda cv: cv[0].char_start):  # a page's title is in its first chunk
        key = (chunk.version_id, chunk.page)
        if statement.get(key) is None:
            statement[key] = statement_of(chunk.text[:600]) or statement_of(chunk.context.rsplit(" — ", 1)[-1])
    votes: dict[tuple[str, int], float] = {}
    for cid, score in head:
        if cid in page_of:
            votes[page_of[cid]] = votes.get(page_of[cid], 0.0) + score
    scored = []
    for cid, score in head:
        page = page_of.get(cid)
        if page is None:
            scored.append((cid, score))
            continue
        boost = 1 + (fusion.statement if asked and statement.get(page) in asked else 0.0)
        scored.append((cid, (score + fusion.page * (votes[page] - score)) * boost))
    floor = tail[0][1] if tail else 0.0
    head = sorted(scored, key=lambda kv: (-kv[1], kv[0]))
    return [(cid, max(score, floor)) for cid, score in head] + tail


def _search(
    store: Index, vector: npt.NDArray[np.float32], query: str, scope: Scope, k: int, fusion: Fusion
) -> list[Hit]:
    n = max(fusion.candidates, k)
    expanded = " ".join((query, *synonyms(query))) if fusion.synonyms else query
    found = {
        "dense": store.vector_search(vector, scope, n),
        "lines": store.keyword_search(expanded, scope, n, unit="line"),
        "chunks": store.keyword_search(expanded, scope, n),
    }
    pool = list(dict.fromkeys(c for ranking in found.values() for c, _ in ranking))
    versions = store.versions_of(pool)
    version_of = {cid: version.id for cid, version in versions.items()}
    prior = title_prior(query, {version.id: version.title for version in versions.values()})

    def boosted(ranking: list[tuple[str, float]]) -> list[str]:
        scored = [(c, max(s, 0.0) * (1 + fusion.title * prior[version_of[c]])) for c, s in ranking if c in version_of]
        return [c for c, _ in sorted(scored, key=lambda cs: -cs[1])]  # stable: ties keep the index's order

    rankings = {name: boosted(ranking) for name, ranking in found.items()}
    fused = rrf(
        [rankings["dense"], rankings["lines"], rankings["chunks"]],
        weights=[fusion.dense, fusion.lines, fusion.chunks],
    )
    if fusion.statement or fusion.page:
        fused = _by_page(store, fused, query, fusion)
    named = fusion.named_document * (1 - fusion.per_document)
    top = diversify(
        fused, version_of, k, fusion.per_document, {v: fusion.per_document + named * p for v, p in prior.items()}
    )
    scores = dict(top)

    def rank_in(name: str, cid: str) -> int | None:
        ranking = rankings[name]
        return ranking.index(cid) + 1 if cid in ranking else None  # k hits in ~100 candidates: no dict

    return [
        Hit(
            chunk,
            version,
            scores[chunk.id],
            rank_in("lines", chunk.id) or rank_in("chunks", chunk.id),
            rank_in("dense", chunk.id),
        )
        for chunk, version in store.fetch([cid for cid, _ in top])
    ]
