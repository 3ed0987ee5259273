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

import contextlib
import math
import os
import re
import tempfile
import threading
import zipfile
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import chain
from pathlib import Path

import numpy as np
import numpy.typing as npt
import Stemmer

from strongroom.errors import StoreError

__all__ = ["KeywordIndex", "Mask", "Rows", "Scores", "tokenize", "top_k", "write_npz_atomic"]

Rows = npt.NDArray[np.int64]
Scores = npt.NDArray[np.float32]
Mask = npt.NDArray[np.bool_]

_FORMAT = 1
_BATCH = 4096  # documents tokenized and counted per step, bounds the memory of a large add
_MAX_TF = np.iinfo(np.uint16).max

# A number keeps its thousands separators and decimals ("82,959", "1.20", and "1.20" out of
# "1.20x"); any other run of letters and digits is a word ("q3", "fy2023").
_TOKEN = re.compile(r"\d+(?:[.,]\d+)+|[^\W_]+")

_STOPWORDS = frozenset(
    """a about after again all am an and any are as at be because been before being both but
    by can could did do does doing during each few for from further had has have having he her
    here hers him his how i if in into is it its itself just me more most my no nor not of off
    on once only or other our ours out own s same she should so some such t than that the their
    theirs them then there these they this those through to too very was we were what when where
    which while who whom why will with would you your yours""".split()
)

_local = threading.local()  # Stemmer objects are not thread-safe: one per thread


def _stemmer() -> Stemmer.Stemmer:
    stemmer = getattr(_local, "stemmer", None)
    if stemmer is None:
        stemmer = _local.stemmer = Stemmer.Stemmer("english", 100_000)
    return stemmer


def tokenize(text: str) -> list[str]:
    """Index terms of ``text``: lowercased, stopwords dropped, words stemmed, numbers kept whole.

    A number with thousands separators is emitted twice, as written and as digits only, so a
    query for ``82959`` finds ``82,959``. Word order is kept; the extra number forms come last.

    >>> tokenize("Revenues were (2,028) million, up 1.20%")
    ['revenu', '2,028', 'million', 'up', '1.20', '2028']
    """
    words = [t for t in _TOKEN.findall(text.lower()) if t not in _STOPWORDS]
    terms: list[str] = _stemmer().stemWords(words)  # the stemmer leaves digit strings alone
    if "," in text:
        terms.extend(t.replace(",", "") for t in words if "," in t and t[0].isdigit())
    return terms


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

    def triples(self) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.int32], npt.NDArray[np.uint16]]:
        terms = np.repeat(np.arange(len(self.indptr) - 1, dtype=np.int32), np.diff(self.indptr))
        return terms, self.rows, self.tf


def _build_segment(
    parts: Sequence[tuple[npt.NDArray[np.int32], npt.NDArray[np.int32], npt.NDArray[np.uint16]]],
    n_terms: int,
) -> _Segment:
    """One segment from (term, row, tf) triples given in increasing row order."""
    terms = np.concatenate([p[0] for p in parts])
    # Stable, so rows stay sorted within a term; timsort merges the already-sorted runs cheaply.
    order = np.argsort(terms, kind="stable")
    indptr = np.zeros(n_terms + 1, dtype=np.int64)
    np.cumsum(np.bincount(terms, minlength=n_terms), out=indptr[1:])
    rows = np.concatenate([p[1] for p in parts])[order]
    tf = np.concatenate([p[2] for p in parts])[order]
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
        self._pending: list[tuple[npt.NDArray[np.int32], npt.NDArray[np.int32], npt.NDArray[np.uint16]]] = []
        self._segments: tuple[_Segment, ...] = ()
        self._df = np.zeros(0, dtype=np.int64)
        self._snap = _Snapshot((), self._df, np.zeros(0, dtype=np.float32), 0)
        self._lock = threading.Lock()

    def __len__(self) -> int:
        """Rows covered: the highest row added plus one (a mask needs at least this many)."""
        return self._n_rows

    @property
    def vocabulary_size(self) -> int:
        return len(self._vocab)

    def add(self, rows: npt.ArrayLike, texts: Sequence[str]) -> None:
        """Index ``texts[i]`` as row ``rows[i]``; rows increase and start at ``len(self)`` or later."""
        self.add_tokens(rows, [tokenize(t) for t in texts])

    def add_tokens(self, rows: npt.ArrayLike, token_lists: Sequence[Sequence[str]]) -> None:
        """Index pre-tokenized documents, e.g. ``tokenize(context) + tokenize(text)``."""
        row_array = np.asarray(rows, dtype=np.int64).reshape(-1)
        if len(row_array) != len(token_lists):
            raise ValueError(f"{len(row_array)} rows but {len(token_lists)} documents: pass one row each")
        if len(row_array) == 0:
            return
        with self._lock:
            _check_new_rows(row_array, self._n_rows)
            for start in range(0, len(row_array), _BATCH):
                self._add_batch(row_array[start : start + _BATCH], token_lists[start : start + _BATCH])

    def _add_batch(self, rows: npt.NDArray[np.int64], token_lists: Sequence[Sequence[str]]) -> None:
        vocab = self._vocab
        lengths = np.fromiter((len(t) for t in token_lists), dtype=np.int64, count=len(token_lists))
        flat = chain.from_iterable(token_lists)
        ids = np.fromiter((vocab.setdefault(t, len(vocab)) for t in flat), dtype=np.int64)
        # One key per (document, term) occurrence; counting unique keys gives term frequencies.
        keys = np.repeat(np.arange(len(rows), dtype=np.int64), lengths) * len(vocab) + ids
        uniq, counts = np.unique(keys, return_counts=True)
        doc = uniq // len(vocab)
        terms = (uniq - doc * len(vocab)).astype(np.int32)
        self._pending.append(
            (terms, rows[doc].astype(np.int32), np.minimum(counts, _MAX_TF).astype(np.uint16))
        )
        end = int(rows[-1]) + 1
        if end > len(self._doclen):
            grown = np.zeros(max(end, 2 * len(self._doclen), 1024), dtype=np.float32)
            grown[: self._n_rows] = self._doclen[: self._n_rows]
            self._doclen = grown  # a published snapshot keeps the old array
        self._doclen[rows] = lengths
        self._n_rows = end
        self._n_docs += len(rows)
        self._total_len += float(lengths.sum())

    def _snapshot(self) -> _Snapshot:
        if not self._pending and len(self._snap.norm) == self._n_rows:
            return self._snap
        with self._lock:
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
                    segments.append(_build_segment([older.triples(), newer.triples()], n_terms))
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
        admitted = admitted_view(mask, n)
        terms = self._query_terms(snap, tokens) if k > 0 and n > 0 else []
        if not terms or (admitted is not None and not admitted.any()):
            return empty_result()
        if admitted is None:
            return _search_pruned(terms, snap.norm, k)
        return top_k(*_accumulate(terms, snap.norm, admitted), k, above=0.0)

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
        snap = self._snapshot()
        with self._lock:
            if len(self._segments) > 1:
                self._segments = (_build_segment([s.triples() for s in self._segments], len(self._vocab)),)
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
        del snap
        write_npz_atomic(path, arrays)

    @classmethod
    def load(cls, path: Path) -> KeywordIndex:
        """Read an index written by :meth:`save`; raises :class:`StoreError` if it is unreadable."""
        try:
            with np.load(path, allow_pickle=False) as z:
                if int(z["format"]) != _FORMAT:
                    raise StoreError(
                        f"{path} has keyword index format {int(z['format'])}, expected {_FORMAT}"
                    )
                k1, b, total_len = (float(v) for v in z["params"])
                n_rows, n_docs = (int(v) for v in z["counts"])
                text = z["vocab"].tobytes().decode()
                offsets = z["vocab_offsets"].tolist()
                seg = _Segment(z["indptr"], z["rows"], z["tf"])
                doclen = z["doclen"]
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            raise StoreError(f"cannot read keyword index {path}: {exc}; rebuild it from the catalog") from exc
        index = cls(k1=k1, b=b)
        index._vocab = {text[offsets[i] : offsets[i + 1]]: i for i in range(len(offsets) - 1)}
        index._doclen, index._n_rows, index._n_docs, index._total_len = doclen, n_rows, n_docs, total_len
        index._segments = (seg,) if len(seg.rows) else ()
        df = np.zeros(len(index._vocab), dtype=np.int64)
        counts = np.diff(seg.indptr)
        df[: len(counts)] = counts
        index._df = df
        return index


def _check_new_rows(rows: npt.NDArray[np.int64], n_rows: int) -> None:
    if rows[0] < n_rows or (len(rows) > 1 and bool(np.any(np.diff(rows) <= 0))):
        raise ValueError(f"rows must increase and start at {n_rows} or later (rows are append-only)")


def _contrib(
    weight: float, tf: npt.NDArray[np.uint16], norm: npt.NDArray[np.float32]
) -> npt.NDArray[np.float32]:
    tf32 = tf.astype(np.float32)
    out = tf32 * np.float32(weight)
    out /= tf32 + norm
    return out


def _restrict(
    rows: npt.NDArray[np.int32],
    tf: npt.NDArray[np.uint16],
    admitted: Mask,
    admitted_rows: npt.NDArray[np.int32],
) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.uint16]]:
    """The postings whose row is admitted."""
    if len(rows) <= 32 * len(admitted_rows):
        keep = admitted[rows]
        return rows[keep], tf[keep]
    # A long list and few admitted rows: binary-search the admitted rows in the postings instead.
    lo = int(np.searchsorted(admitted_rows, rows[0], side="left"))
    hi = int(np.searchsorted(admitted_rows, rows[-1], side="right"))
    wanted = admitted_rows[lo:hi]
    pos = np.searchsorted(rows, wanted)  # < len(rows) because wanted <= rows[-1]
    hit = rows[pos] == wanted
    return wanted[hit], tf[pos[hit]]


def _accumulate(
    terms: Sequence[_Term], norm: npt.NDArray[np.float32], admitted: Mask | None
) -> tuple[npt.NDArray[np.int32] | None, npt.NDArray[np.float32]]:
    """BM25 of every admitted row holding a query term: (rows, scores), or (None, one score per row)."""
    admitted_rows = None if admitted is None else np.flatnonzero(admitted).astype(np.int32)
    parts_rows, parts_scores = [], []
    for term in terms:
        for rows, tf in term.postings:
            if admitted is not None and admitted_rows is not None and len(rows):
                rows, tf = _restrict(rows, tf, admitted, admitted_rows)
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


def _search_pruned(terms: Sequence[_Term], norm: npt.NDArray[np.float32], k: int) -> tuple[Rows, Scores]:
    """Exact unfiltered top-k that skips the long postings of common terms when that is safe.

    Rows holding a rare term are scored in full, common terms looked up by binary search. A row
    holding only common terms scores below the sum of their weights (each term's upper bound);
    if that sum cannot beat the k-th best candidate, the candidates hold the top-k (MaxScore).
    """
    n = len(norm)
    common = [t for t in terms if t.length * 32 > n]
    rare = [t for t in terms if t.length * 32 <= n]
    if common and rare:
        rows, scores = _accumulate(rare, norm, None)
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
    return top_k(*_accumulate(terms, norm, None), k, above=0.0)


# Shared by the in-memory indexes (this module and vectors.py).


def empty_result() -> tuple[Rows, Scores]:
    return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)


def admitted_view(mask: Mask | None, n: int) -> Mask | None:
    """``mask[:n]`` checked, or None when there is no mask or it admits every row."""
    if mask is None:
        return None
    if not isinstance(mask, np.ndarray) or mask.dtype != np.bool_ or mask.ndim != 1:
        raise ValueError("mask must be a 1-D numpy bool array with one entry per row")
    if len(mask) < n:
        raise ValueError(f"mask has {len(mask)} entries but the index has {n} rows; pass one per row")
    view = mask[:n]
    return None if bool(view.all()) else view


def top_k(
    rows: npt.NDArray[np.integer] | None, scores: npt.NDArray[np.floating], k: int, *, above: float
) -> tuple[Rows, Scores]:
    """The ``k`` best (row, score) pairs with score > ``above``, best first, ties by row.

    ``rows=None`` means ``scores[i]`` is the score of row ``i``.
    """
    if k < len(scores):
        best = np.argpartition(scores, len(scores) - k)[len(scores) - k :]
    else:
        best = np.arange(len(scores))
    best = best[scores[best] > above]
    picked = best.astype(np.int64) if rows is None else rows[best].astype(np.int64)
    picked_scores = scores[best].astype(np.float32)
    order = np.lexsort((picked, -picked_scores))
    return picked[order], picked_scores[order]


def write_npz_atomic(path: Path, arrays: dict[str, npt.NDArray[np.generic]]) -> None:
    """Write ``arrays`` as an .npz at ``path`` via a temporary file and ``os.replace``."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)  # type: ignore[arg-type]
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
