"""Tokenizer and in-memory BM25 index over dense integer rows.

The embedded store numbers its chunks 0..N-1 and keeps one :class:`KeywordIndex` next to
its catalog. Entitlements arrive as a boolean ``mask`` (one entry per row, True = may be
returned) and are applied to the postings *before* scoring and top-k, so a user who may
read 1% of the corpus still gets a full top-k of what they may read.

Layout: postings live in a few immutable CSR segments (term -> sorted rows and term
frequencies). ``add`` only appends to a pending buffer; the first search after an add turns
the buffer into a segment and merges segments of similar size (amortised linear work), then
publishes a new immutable snapshot, so a search never sees a half-applied add.
"""

from __future__ import annotations

import math
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import TypeVar

import numpy as np
import numpy.typing as npt

from strongroom.store.vectors import (
    Mask,
    Rows,
    Scores,
    admitted_view,
    empty_result,
    read_npz,
    top_k,
    write_npz,
)
from strongroom.text import tokenize

__all__ = ["KeywordIndex", "tokenize"]

_Doc = TypeVar("_Doc")
_Triples = tuple[npt.NDArray[np.int32], npt.NDArray[np.int32], npt.NDArray[np.uint16]]  # term, row, tf

_FORMAT = 1
_BATCH = 4096  # documents tokenized and counted per step
_MAX_TF = np.iinfo(np.uint16).max


@dataclass(frozen=True)
class _Segment:
    """Postings in CSR form: the rows of term ``t`` are ``rows[indptr[t]:indptr[t + 1]]``, sorted."""

    indptr: npt.NDArray[np.int64]
    rows: npt.NDArray[np.int32]
    tf: npt.NDArray[np.uint16]

    def postings(self, term: int) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.uint16]]:
        if term + 1 >= len(self.indptr):
            return self.rows[:0], self.tf[:0]
        lo, hi = int(self.indptr[term]), int(self.indptr[term + 1])
        return self.rows[lo:hi], self.tf[lo:hi]


def _build_segment(parts: Sequence[_Triples], n_terms: int) -> _Segment:
    """One segment from (term, row, tf) triples given in increasing row order."""
    if not parts:
        return _Segment(np.zeros(n_terms + 1, np.int64), np.zeros(0, np.int32), np.zeros(0, np.uint16))
    terms = np.concatenate([p[0] for p in parts])
    # Stable, so rows stay sorted within a term; timsort merges the already-sorted runs cheaply.
    order = np.argsort(terms, kind="stable")
    indptr = np.zeros(n_terms + 1, dtype=np.int64)
    np.cumsum(np.bincount(terms, minlength=n_terms), out=indptr[1:])
    rows = np.concatenate([p[1] for p in parts])[order]
    tf = np.concatenate([p[2] for p in parts])[order]
    return _Segment(indptr, rows, tf)


def _merge_segments(segments: Sequence[_Segment], n_terms: int) -> _Segment:
    """One segment from segments in row order, in linear time: per term, their rows one after another."""
    counts = []
    for seg in segments:
        c = np.zeros(n_terms, dtype=np.int64)
        c[: len(seg.indptr) - 1] = np.diff(seg.indptr)
        counts.append(c)
    indptr = np.zeros(n_terms + 1, dtype=np.int64)
    np.cumsum(np.sum(counts, axis=0), out=indptr[1:])
    rows = np.empty(int(indptr[-1]), dtype=np.int32)
    tf = np.empty(int(indptr[-1]), dtype=np.uint16)
    start = indptr[:-1].copy()  # where the next segment's block of each term goes
    for seg, c in zip(segments, counts, strict=True):
        seg_start = np.full(n_terms, seg.indptr[-1], dtype=np.int64)
        seg_start[: len(seg.indptr) - 1] = seg.indptr[:-1]
        dest = np.arange(len(seg.rows), dtype=np.int64) + np.repeat(start - seg_start, c)
        rows[dest], tf[dest] = seg.rows, seg.tf
        start += c
    return _Segment(indptr, rows, tf)


@dataclass(frozen=True)
class _Snapshot:
    """What one search reads; replaced as a whole, never changed in place."""

    segments: tuple[_Segment, ...]
    df: npt.NDArray[np.int64]
    norm: npt.NDArray[np.float32]  # k1 * (1 - b + b * doclen / avgdl), per row
    n_docs: int


@dataclass(frozen=True)
class _Term:
    weight: float  # query-term count * idf * (k1 + 1): also an upper bound of its contribution
    postings: tuple[tuple[npt.NDArray[np.int32], npt.NDArray[np.uint16]], ...]
    length: int


class KeywordIndex:
    """Okapi BM25 (k1=1.2, b=0.75) over rows 0..N-1, filtered by a mask inside the search.

    >>> index = KeywordIndex()
    >>> index.add(np.arange(3), ["Net revenues rose to 82,959", "Operating costs", "Revenue guidance"])
    >>> rows, scores = index.search("revenue 82959", k=2)
    >>> rows.tolist()
    [0, 2]
    >>> index.search("revenue", k=2, mask=np.array([True, True, False]))[0].tolist()
    [0]
    """

    def __init__(self, *, k1: float = 1.2, b: float = 0.75) -> None:
        self.k1 = k1
        self.b = b
        self._vocab: dict[str, int] = {}
        self._doclen = np.zeros(0, dtype=np.float32)
        self._n_rows = 0
        self._n_docs = 0
        self._total_len = 0.0
        self._pending: list[_Triples] = []
        self._segments: tuple[_Segment, ...] = ()
        self._df = np.zeros(0, dtype=np.int64)
        self._snap = _Snapshot((), self._df, np.zeros(0, dtype=np.float32), 0)
        self._lock = threading.Lock()

    def __len__(self) -> int:
        """Rows covered: the highest row added plus one (a mask needs at least this many)."""
        return self._n_rows

    def add(self, rows: npt.ArrayLike, texts: Sequence[str]) -> None:
        """Index ``texts[i]`` as row ``rows[i]``; rows increase and start at ``len(self)`` or later."""
        self._add(rows, texts, tokenize)

    def add_tokens(self, rows: npt.ArrayLike, token_lists: Sequence[Sequence[str]]) -> None:
        """Index pre-tokenized documents, e.g. ``tokenize(context) + tokenize(text)``."""
        self._add(rows, token_lists, list)

    def _add(self, rows: npt.ArrayLike, docs: Sequence[_Doc], to_tokens: Callable[[_Doc], list[str]]) -> None:
        row_array = np.asarray(rows, dtype=np.int64).reshape(-1)
        if len(row_array) != len(docs):
            raise ValueError(f"{len(row_array)} rows but {len(docs)} documents: pass one row each")
        if len(row_array) == 0:
            return
        with self._lock:
            if row_array[0] < self._n_rows or bool(np.any(np.diff(row_array) <= 0)):
                raise ValueError(f"rows must increase and start at {self._n_rows} or later (append-only)")
            if row_array[-1] > np.iinfo(np.int32).max:
                raise ValueError("rows beyond 2**31 - 1 are not supported")
            for start in range(0, len(row_array), _BATCH):  # bounds the memory of a large add
                batch = [to_tokens(d) for d in docs[start : start + _BATCH]]
                self._add_batch(row_array[start : start + _BATCH], batch)

    def _add_batch(self, rows: npt.NDArray[np.int64], token_lists: Sequence[Sequence[str]]) -> None:
        vocab = self._vocab
        lengths = np.fromiter((len(t) for t in token_lists), dtype=np.int64, count=len(token_lists))
        flat = list(chain.from_iterable(token_lists))
        for term in dict.fromkeys(flat):  # first-seen order keeps term ids reproducible
            if term not in vocab:
                vocab[term] = len(vocab)
        ids = np.fromiter(map(vocab.__getitem__, flat), dtype=np.int64, count=len(flat))
        # One key per (document, term) occurrence; counting unique keys gives term frequencies.
        keys = np.repeat(np.arange(len(rows), dtype=np.int64), lengths) * len(vocab) + ids
        uniq, counts = np.unique(keys, return_counts=True)
        doc = uniq // len(vocab)
        terms = (uniq - doc * len(vocab)).astype(np.int32)
        self._pending.append((terms, rows[doc].astype(np.int32), np.minimum(counts, _MAX_TF).astype(np.uint16)))
        end = int(rows[-1]) + 1
        if end > len(self._doclen):
            grown = np.zeros(max(end, 2 * len(self._doclen), 1024), dtype=np.float32)
            grown[: self._n_rows] = self._doclen[: self._n_rows]
            self._doclen = grown  # a published snapshot keeps the old array
        self._doclen[rows] = lengths
        self._n_rows = end
        self._n_docs += len(rows)
        self._total_len += float(lengths.sum())

    def build(self) -> None:
        """Fold pending additions into the postings now rather than in the next search."""
        self._snapshot()

    def _snapshot(self) -> _Snapshot:
        if not self._pending and len(self._snap.norm) == self._n_rows:
            return self._snap
        with self._lock:
            return self._publish()

    def _publish(self) -> _Snapshot:
        """Fold pending postings into segments and publish a new snapshot. Hold the lock."""
        if self._pending:
            n_terms = len(self._vocab)
            pending, self._pending = self._pending, []
            df = np.zeros(n_terms, dtype=np.int64)
            df[: len(self._df)] = self._df
            df += np.bincount(np.concatenate([p[0] for p in pending]), minlength=n_terms)
            segments = [*self._segments, _build_segment(pending, n_terms)]
            # Merge while the older neighbour is not much bigger: O(log) segments, linear work.
            while len(segments) > 1 and len(segments[-2].rows) <= 4 * len(segments[-1].rows):
                newer, older = segments.pop(), segments.pop()
                segments.append(_merge_segments([older, newer], n_terms))
            self._segments, self._df = tuple(segments), df
        avgdl = self._total_len / self._n_docs if self._total_len > 0 else 1.0
        doclen = self._doclen[: self._n_rows]
        norm = (self.k1 * (1.0 - self.b + self.b * doclen / avgdl)).astype(np.float32)
        self._snap = _Snapshot(self._segments, self._df, norm, self._n_docs)
        return self._snap

    def search(self, query: str, k: int, mask: Mask | None = None) -> tuple[Rows, Scores]:
        """Best ``k`` rows for ``query`` among rows where ``mask`` is True, best first, score > 0."""
        return self.search_tokens(tokenize(query), k, mask)

    def search_tokens(self, tokens: Iterable[str], k: int, mask: Mask | None = None) -> tuple[Rows, Scores]:
        """:meth:`search` for an already tokenized query."""
        snap = self._snapshot()
        n = len(snap.norm)
        mask_view = admitted_view(mask, n)
        terms = self._query_terms(snap, tokens) if k > 0 and n > 0 else []
        admitted = None if mask_view is None else _Filter(mask_view, np.flatnonzero(mask_view).astype(np.int32))
        if not terms or (admitted is not None and len(admitted.rows) == 0):
            return empty_result()
        return _search(terms, snap.norm, k, admitted)

    def _query_terms(self, snap: _Snapshot, tokens: Iterable[str]) -> list[_Term]:
        out = []
        for token, count in Counter(tokens).items():
            term = self._vocab.get(token)
            if term is None or term >= len(snap.df) or snap.df[term] == 0:
                continue
            df = float(snap.df[term])
            idf = math.log(1.0 + (snap.n_docs - df + 0.5) / (df + 0.5))
            postings = tuple(seg.postings(term) for seg in snap.segments)
            length = sum(len(p[0]) for p in postings)
            out.append(_Term(count * idf * (self.k1 + 1.0), postings, length))
        return out

    def save(self, path: Path) -> None:
        """Write the index to ``path`` (.npz) atomically: a crash leaves the old file or the new one."""
        with self._lock:
            self._publish()
            if len(self._segments) > 1:
                self._segments = (_merge_segments(self._segments, len(self._vocab)),)
            seg = self._segments[0] if self._segments else _build_segment([], len(self._vocab))
            terms = list(self._vocab)  # insertion order is term-id order
            arrays = {
                "format": np.array(_FORMAT),
                "params": np.array([self.k1, self.b, self._total_len]),
                "counts": np.array([self._n_rows, self._n_docs]),
                "vocab": np.frombuffer("".join(terms).encode(), dtype=np.uint8),
                "vocab_offsets": np.cumsum([0, *map(len, terms)], dtype=np.int64),
                "doclen": self._doclen[: self._n_rows],
                "indptr": seg.indptr,
                "rows": seg.rows,
                "tf": seg.tf,
            }
        write_npz(path, arrays)

    @classmethod
    def load(cls, path: Path) -> KeywordIndex:
        """Read an index written by :meth:`save`; raises :class:`StoreError` if it is unreadable."""
        z = read_npz(path, "keyword index", _FORMAT)
        k1, b, total_len = (float(v) for v in z["params"])
        (n_rows, n_docs), text = (int(v) for v in z["counts"]), z["vocab"].tobytes().decode()
        offsets = z["vocab_offsets"].tolist()
        index = cls(k1=k1, b=b)
        index._vocab = {text[offsets[i] : offsets[i + 1]]: i for i in range(len(offsets) - 1)}
        index._doclen = z["doclen"].astype(np.float32, copy=False)
        index._n_rows, index._n_docs, index._total_len = n_rows, n_docs, total_len
        seg = _Segment(
            z["indptr"].astype(np.int64, copy=False),
            z["rows"].astype(np.int32, copy=False),
            z["tf"].astype(np.uint16, copy=False),
        )
        index._segments = (seg,) if len(seg.rows) else ()
        index._df = np.zeros(len(index._vocab), dtype=np.int64)
        index._df[: len(seg.indptr) - 1] = np.diff(seg.indptr)
        return index


def _contrib(weight: float, tf: npt.NDArray[np.uint16], norm: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    tf32 = tf.astype(np.float32)
    out = tf32 * np.float32(weight)
    out /= tf32 + norm
    return out


@dataclass(frozen=True)
class _Filter:
    mask: Mask  # one entry per row
    rows: npt.NDArray[np.int32]  # the admitted rows, ascending


def _restrict(
    rows: npt.NDArray[np.int32], tf: npt.NDArray[np.uint16], admitted: _Filter
) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.uint16]]:
    """The postings whose row is admitted."""
    if len(rows) <= 32 * len(admitted.rows):
        keep = admitted.mask[rows]
        return rows[keep], tf[keep]
    # A long list and few admitted rows: binary-search the admitted rows in the postings instead.
    lo = int(np.searchsorted(admitted.rows, rows[0], side="left"))
    hi = int(np.searchsorted(admitted.rows, rows[-1], side="right"))
    wanted = admitted.rows[lo:hi]
    pos = np.searchsorted(rows, wanted)  # < len(rows) because wanted <= rows[-1]
    hit = rows[pos] == wanted
    return wanted[hit], tf[pos[hit]]


def _accumulate(
    terms: Sequence[_Term], norm: npt.NDArray[np.float32], admitted: _Filter | None
) -> tuple[npt.NDArray[np.int32] | None, npt.NDArray[np.float32]]:
    """BM25 of every admitted row holding a query term: (rows, scores), or (None, one score per row)."""
    parts_rows, parts_scores = [], []
    for term in terms:
        for rows, tf in term.postings:
            if admitted is not None and len(rows):
                rows, tf = _restrict(rows, tf, admitted)
            if len(rows):
                parts_rows.append(rows)
                parts_scores.append(_contrib(term.weight, tf, norm[rows]))
    if sum(len(r) for r in parts_rows) * 8 < len(norm):
        if not parts_rows:
            return np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.float32)
        rows, inverse = np.unique(np.concatenate(parts_rows), return_inverse=True)
        sums = np.bincount(inverse, weights=np.concatenate(parts_scores)).astype(np.float32)
        return rows, sums
    dense = np.zeros(len(norm), dtype=np.float32)
    for rows, scores in zip(parts_rows, parts_scores, strict=True):
        dense[rows] += scores  # rows are unique within one term's postings of one segment
    return None, dense


def _lookup(
    rows: npt.NDArray[np.int32], tf: npt.NDArray[np.uint16], wanted: npt.NDArray[np.int32]
) -> npt.NDArray[np.uint16]:
    """Term frequency of each (sorted) ``wanted`` row in one sorted postings list, 0 where absent."""
    if len(rows) == 0:
        return np.zeros(len(wanted), dtype=np.uint16)
    pos = np.minimum(np.searchsorted(rows, wanted), len(rows) - 1)
    return np.where(rows[pos] == wanted, tf[pos], np.uint16(0))


def _search(
    terms: Sequence[_Term], norm: npt.NDArray[np.float32], k: int, admitted: _Filter | None
) -> tuple[Rows, Scores]:
    """Exact top-k that skips the long postings of common terms when that is safe.

    Rows holding a rare term are scored in full, common terms looked up by binary search. A row
    holding only common terms scores below the sum of their weights (each term's upper bound);
    if that sum cannot beat the k-th best candidate, the candidates hold the top-k (MaxScore).
    """
    n = len(norm)
    common = [t for t in terms if t.length * 32 > n]
    rare = [t for t in terms if t.length * 32 <= n]
    if common and rare:
        rows, scores = _accumulate(rare, norm, admitted)
        if rows is None:
            rows = np.flatnonzero(scores).astype(np.int32)
            scores = scores[rows]
        if len(rows) >= k:
            cand_norm = norm[rows]
            for term in common:
                tf = np.zeros(len(rows), dtype=np.uint16)
                for post_rows, post_tf in term.postings:
                    tf += _lookup(post_rows, post_tf, rows)
                scores = scores + _contrib(term.weight, tf, cand_norm)
            kth = float(np.partition(scores, len(scores) - k)[len(scores) - k])
            if sum(t.weight for t in common) <= kth:
                return top_k(rows, scores, k, above=0.0)
    return top_k(*_accumulate(terms, norm, admitted), k, above=0.0)
