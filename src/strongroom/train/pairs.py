"""Training pairs from the store's own chunks: pseudo-queries, positives, hard negatives.

A chunk's pseudo-queries are what an analyst would type to find it: its section heading and
its table rows' labels, each prefixed with the document's short name ("2023 Q1 NVDA
Research and development"), and its first full sentence. The positive is what the embedder
reads for the chunk (:func:`strongroom.ingest.chunking.dense_text`). A hard negative is the
best BM25 match for the query from another document of the same split: close in words, but
another company or period.

Documents, not pairs, are split into train and eval (by a seeded hash of the document id),
so evaluation never sees a passage of a training document.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Literal

from strongroom.store.base import NewVersion, Store
from strongroom.text import classify_lines, dense_text, row_label
from strongroom.types import Chunk, Scope

__all__ = ["Pair", "make_pairs", "pseudo_queries", "split_of"]

Split = Literal["train", "eval"]
_SENTENCE = re.compile(r"[A-Z][^.!?]{30,300}[.!?]")


@dataclass(frozen=True)
class Pair:
    query: str
    positive: str
    chunk_id: str
    document_id: str
    negatives: tuple[str, ...] = ()


def split_of(document_id: str, eval_share: float, seed: int) -> Split:
    """``eval`` for about ``eval_share`` of documents, the same ones for the same seed."""
    digest = hashlib.sha256(f"{seed}:{document_id}".encode()).digest()
    return "eval" if int.from_bytes(digest[:8], "big") / 2**64 < eval_share else "train"


def _short_name(chunk: Chunk) -> str:
    return chunk.context.split(" — ", 1)[0].strip()


def pseudo_queries(chunk: Chunk, limit: int = 3) -> list[str]:
    """Up to ``limit`` queries a reader might ask to find ``chunk``, most specific first."""
    name = _short_name(chunk)
    found: list[str] = []
    for line in classify_lines(chunk.text):
        body = chunk.text[line.start : line.end]
        if line.kind == "row":
            label = row_label(body)
            if len(label.split()) >= 2:
                found.append(f"{name} {label}")
        elif line.kind == "heading":
            heading = body.lstrip("#").strip()
            if len(heading.split()) >= 2:
                found.append(f"{name} {heading}")
    sentence = _SENTENCE.search(chunk.text)
    if sentence:
        found.append(sentence.group(0))
    return list(dict.fromkeys(found))[:limit]


def make_pairs(
    versions: Iterable[NewVersion],
    store: Store,
    scope: Scope,
    *,
    split: Split,
    eval_share: float = 0.2,
    seed: int = 0,
    per_chunk: int = 2,
    hard_negatives: int = 1,
) -> Iterator[Pair]:
    """Pairs of one split, in store order (deterministic). ``store`` and ``scope`` serve the
    hard-negative search; negatives come from other documents of the same split."""
    documents: dict[str, str] = {}
    for new in versions:
        doc = new.version.document_id
        if split_of(doc, eval_share, seed) != split:
            continue
        for chunk in new.chunks:
            documents[chunk.id] = doc
            for query in pseudo_queries(chunk, per_chunk):
                negatives: tuple[str, ...] = ()
                if hard_negatives:
                    hits = [chunk_id for chunk_id, _ in store.keyword_search(query, scope, 20)]
                    owners = store.versions_of(hits)
                    chosen = [
                        c
                        for c in hits
                        if c in owners
                        and owners[c].document_id != doc
                        and split_of(owners[c].document_id, eval_share, seed) == split
                    ][:hard_negatives]
                    negatives = tuple(dense_text(c) for c, _ in store.fetch(chosen))
                yield Pair(query, dense_text(chunk), chunk.id, doc, negatives)
