"""Dense vector index over rows 0..N-1 with a planner that filters inside the search.

Vectors are float32 and L2-normalised by the caller, so the inner product is the cosine.
All vectors live in one growable matrix. ``search`` picks one of two plans:

* **exact**: when the index is small or the mask admits few rows (<= ``exact_threshold``):
  score only the admitted rows (gather + matrix-vector product + argpartition).
* **ivf**: otherwise a faiss ``IndexIVFFlat`` (inner product, ``nlist ~ 4 * sqrt(N)``), built on
  first need, re-trained when the index has grown 4x since training, fed new rows
  incrementally. The mask goes into faiss as an ``IDSelectorBitmap``, so non-admitted rows are
  skipped while the lists are scanned, and ``nprobe`` grows as the admitted fraction shrinks,
  which keeps the number of admitted candidates (and so recall) about constant.

Either way the mask is applied before top-k: a restrictive mask still yields a full top-k.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import tempfile
import threading
import zipfile
from pathlib import Path
from typing import Any, Literal

import faiss
import numpy as np
import numpy.typing as npt

from strongroom.errors import StoreError

__all__ = ["Mask", "Rows", "Scores", "VectorIndex", "admitted_view", "read_npz", "top_k", "write_npz"]

Rows = npt.NDArray[np.int64]
Scores = npt.NDArray[np.float32]
Mask = npt.NDArray[np.bool_]

_FORMAT = 1
_BLOCK = 2048  # rows per gathered block in exact search: the copy stays in cache
_NO_FLOOR = float("-inf")


@functools.cache
def _configure_faiss() -> None:
    """Use the cores this process may run on (at most 8) for training and bulk adds."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    faiss.omp_set_num_threads(max(1, min(cores, 8)))


def _as_ivf(index: faiss.Index) -> faiss.IndexIVF:
    # Not faiss.extract_index_ivf: its proxy does not own the index, which the
    # temporary returned by index_factory would then free.
    if not isinstance(index, faiss.IndexIVF):
        raise RuntimeError(f"expected an IVF index, got {type(index).__name__}")
    return index


class VectorIndex:
    """Cosine top-k over rows 0..N-1, filtered by a boolean mask inside the search.

    >>> rng = np.random.default_rng(0)
    >>> vectors = rng.standard_normal((1000, 8)).astype(np.float32)
    >>> vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    >>> index = VectorIndex(dim=8)
    >>> index.add(np.arange(1000), vectors)
    >>> rows, scores = index.search(vectors[42], k=3)
    >>> int(rows[0])
    42
    >>> mask = np.zeros(1000, dtype=bool); mask[::100] = True   # 10 admitted rows
    >>> rows, _ = index.search(vectors[42], k=3, mask=mask)
    >>> len(rows), bool(mask[rows].all())
    (3, True)
    """

    def __init__(self, dim: int, *, exact_threshold: int = 20_000, nprobe: int | None = None, seed: int = 0) -> None:
        if dim <= 0:
            raise ValueError(f"dim must be positive, got {dim}")
        self._dim = dim
        self.exact_threshold = exact_threshold
        self.nprobe = nprobe  # lists probed without a filter; None: max(16, nlist / 50)
        self._seed = seed
        self._data = np.zeros((0, dim), dtype=np.float32)
        self._filled = np.zeros(0, dtype=bool)
        self._has_gaps = False
        self._n = 0
        self._ivf: faiss.IndexIVF | None = None
        self._trained_on = 0  # rows when the IVF was trained
        self._ivf_rows = 0  # rows already added to the IVF
        self._lock = threading.Lock()

    @property
    def dim(self) -> int:
        return self._dim

    def __len__(self) -> int:
        """Rows covered: the highest row added plus one (a mask needs at least this many)."""
        return self._n

    def add(self, rows: npt.ArrayLike, vectors: npt.ArrayLike) -> None:
        """Store ``vectors[i]`` as row ``rows[i]``; rows increase and start at ``len(self)`` or later."""
        row_array = np.asarray(rows, dtype=np.int64).reshape(-1)
        matrix = np.asarray(vectors, dtype=np.float32)
        if matrix.ndim != 2 or matrix.shape != (len(row_array), self._dim):
            raise ValueError(f"vectors have shape {matrix.shape}, expected ({len(row_array)}, {self._dim})")
        if len(row_array) == 0:
            return
        with self._lock:
            n = self._n
            if row_array[0] < n or bool(np.any(np.diff(row_array) <= 0)):
                raise ValueError(f"rows must increase and start at {n} or later (rows are append-only)")
            end = int(row_array[-1]) + 1
            if end > len(self._data):
                capacity = max(end, len(self._data) * 3 // 2, 1024)
                data = np.zeros((capacity, self._dim), dtype=np.float32)
                data[:n] = self._data[:n]
                filled = np.zeros(capacity, dtype=bool)
                filled[:n] = self._filled[:n]
                self._data, self._filled = data, filled  # a running search keeps the old arrays
            self._data[row_array] = matrix
            self._filled[row_array] = True
            self._has_gaps = self._has_gaps or end - n != len(row_array)
            self._n = end  # last: a concurrent search reads n first, then the arrays

    def plan(self, mask: Mask | None = None) -> Literal["exact", "ivf"]:
        """Which plan :meth:`search` would use for ``mask``."""
        n = self._n
        admitted = self._admitted(mask, n)
        count = n if admitted is None else int(np.count_nonzero(admitted))
        return "exact" if n <= self.exact_threshold or count <= self.exact_threshold else "ivf"

    def search(self, query: npt.ArrayLike, k: int, mask: Mask | None = None) -> tuple[Rows, Scores]:
        """Best ``k`` rows by inner product among rows where ``mask`` is True, best first."""
        n = self._n
        q = self._query(query)
        admitted = self._admitted(mask, n)
        count = n if admitted is None else int(np.count_nonzero(admitted))
        if k <= 0 or count == 0:
            return empty_result()
        if n <= self.exact_threshold or count <= self.exact_threshold:
            return self._exact(q, k, admitted, n)
        with self._lock:  # faiss may not be searched while rows are added to it
            ivf = self._ensure_ivf()
            nprobe = self.nprobe or max(16, math.ceil(ivf.nlist / 50))
            nprobe = min(ivf.nlist, math.ceil(nprobe * n / count))
            params = faiss.SearchParametersIVF()
            params.nprobe = nprobe
            bits = None if admitted is None else np.packbits(admitted, bitorder="little")
            if bits is not None:  # faiss reads the bitmap through a raw pointer: keep `bits` alive
                params.sel = faiss.IDSelectorBitmap(len(bits), faiss.swig_ptr(bits))  # size in bytes
            scores, labels = ivf.search(q[None, :], k, params=params)
        found = labels[0] >= 0
        return top_k(labels[0][found], scores[0][found], k, above=_NO_FLOOR)  # equal scores by row

    def search_exact(self, query: npt.ArrayLike, k: int, mask: Mask | None = None) -> tuple[Rows, Scores]:
        """Brute-force top-k over every admitted row: the reference for recall."""
        n = self._n
        q = self._query(query)
        admitted = self._admitted(mask, n)
        if k <= 0 or n == 0:
            return empty_result()
        return self._exact(q, k, admitted, n)

    def build(self) -> None:
        """Train or refresh the IVF now rather than in the next search that needs it."""
        with self._lock:
            if self._n > self.exact_threshold:
                self._ensure_ivf()

    def _query(self, query: npt.ArrayLike) -> npt.NDArray[np.float32]:
        q = np.ascontiguousarray(query, dtype=np.float32).reshape(-1)
        if q.shape != (self._dim,):
            raise ValueError(f"query has {q.size} values, expected {self._dim}")
        return q

    def _admitted(self, mask: Mask | None, n: int) -> Mask | None:
        admitted = admitted_view(mask, n)
        if not self._has_gaps:
            return admitted
        filled = self._filled[:n]
        return filled if admitted is None else admitted & filled

    def _exact(self, q: npt.NDArray[np.float32], k: int, admitted: Mask | None, n: int) -> tuple[Rows, Scores]:
        # einsum, not BLAS: a threaded sgemv stalls badly when other processes hold the cores.
        data = self._data
        if admitted is None or np.count_nonzero(admitted) * 4 > n:
            scores = np.einsum("ij,j->i", data[:n], q)
            if admitted is not None:
                scores[~admitted] = _NO_FLOOR
            return top_k(None, scores, k, above=_NO_FLOOR)
        rows = np.flatnonzero(admitted)
        scores = np.concatenate(
            [np.einsum("ij,j->i", np.take(data, rows[i : i + _BLOCK], axis=0), q) for i in range(0, len(rows), _BLOCK)]
        )
        return top_k(rows, scores, k, above=_NO_FLOOR)

    def _ensure_ivf(self) -> faiss.IndexIVF:
        """The IVF covering every row; trains it first if missing or outgrown. Hold the lock."""
        n, ivf = self._n, self._ivf
        if ivf is None or n >= 4 * self._trained_on:
            _configure_faiss()
            ivf = self._ivf = self._train(n)
            self._trained_on, self._ivf_rows = n, 0
        if self._ivf_rows < n:
            ivf.add(self._data[self._ivf_rows : n])  # faiss ids are positions: ids == rows
            self._ivf_rows = n
        return ivf

    def _train(self, n: int) -> faiss.IndexIVF:
        nlist = max(1, min(int(4 * math.sqrt(n)), n // 39))
        filled = np.flatnonzero(self._filled[:n])  # skipped rows are zero vectors: keep them out
        rng = np.random.default_rng(self._seed)
        sample = np.sort(rng.choice(filled, size=min(len(filled), 32 * nlist), replace=False))
        ivf = _as_ivf(faiss.index_factory(self._dim, f"IVF{nlist},Flat", faiss.METRIC_INNER_PRODUCT))
        ivf.cp.niter = 10  # plenty for coarse lists; training cost is linear in it
        ivf.cp.seed = self._seed
        ivf.cp.spherical = True  # unit vectors: keep centroids on the sphere
        ivf.cp.min_points_per_centroid = 16
        ivf.train(self._data[sample])
        return ivf

    def save(self, path: Path) -> None:
        """Write vectors (and the trained IVF) to ``path`` (.npz) atomically."""
        with self._lock:
            n = self._n
            ivf = faiss.serialize_index(self._ivf) if self._ivf is not None else np.zeros(0, np.uint8)
            arrays = {
                "format": np.array(_FORMAT),
                "params": np.array([self._dim, self.exact_threshold, self.nprobe or 0, self._seed, self._trained_on]),
                "counts": np.array([n, self._ivf_rows]),
                "data": self._data[:n],
                "filled": self._filled[:n],
                "ivf": ivf,
            }
        write_npz(path, arrays)

    @classmethod
    def load(cls, path: Path) -> VectorIndex:
        """Read an index written by :meth:`save`; raises :class:`StoreError` if it is unreadable."""
        z = read_npz(path, "vector index", _FORMAT)
        dim, threshold, nprobe, seed, trained_on = (int(v) for v in z["params"])
        n, ivf_rows = (int(v) for v in z["counts"])
        try:
            ivf = _as_ivf(faiss.deserialize_index(z["ivf"])) if len(z["ivf"]) else None
        except RuntimeError as exc:
            raise StoreError(f"cannot read the IVF in {path}: {exc}; delete the file to rebuild it") from exc
        index = cls(dim, exact_threshold=threshold, nprobe=nprobe or None, seed=seed)
        index._data = z["data"].astype(np.float32, copy=False).reshape(n, dim)
        index._filled, index._n = z["filled"].astype(bool, copy=False), n
        index._has_gaps = not bool(z["filled"].all())
        index._ivf, index._trained_on, index._ivf_rows = ivf, trained_on, ivf_rows if ivf is not None else 0
        return index


# Conventions shared by the in-memory indexes (this module and keyword.py).


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
    """The ``k`` best (row, score) pairs with score > ``above``, best first, equal scores by row.

    ``rows`` must be ascending; ``rows=None`` means ``scores[i]`` is the score of row ``i``.
    """
    if k < len(scores):
        best = np.argpartition(scores, len(scores) - k)[len(scores) - k :]
        kth = scores[best].min()
        if np.count_nonzero(scores == kth) > np.count_nonzero(scores[best] == kth):
            # A tie straddles the cut: take the lowest rows of the tie, so results are reproducible.
            above_kth = np.flatnonzero(scores > kth)
            best = np.concatenate([above_kth, np.flatnonzero(scores == kth)[: k - len(above_kth)]])
    else:
        best = np.arange(len(scores))
    best = best[scores[best] > above]
    picked = best.astype(np.int64) if rows is None else rows[best].astype(np.int64)
    picked_scores = scores[best].astype(np.float32)
    order = np.lexsort((picked, -picked_scores))
    return picked[order], picked_scores[order]


def write_npz(path: Path, arrays: dict[str, npt.NDArray[np.generic]]) -> None:
    """Write ``arrays`` as an .npz at ``path`` atomically (temporary file, fsync, ``os.replace``)."""
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


def read_npz(path: Path, what: str, version: int) -> dict[str, npt.NDArray[Any]]:
    """Every array of an .npz written by :func:`write_npz`, or :class:`StoreError`."""
    try:
        with open(path, "rb") as f, np.load(f, allow_pickle=False) as z:  # np.load leaks f on errors
            arrays = {name: z[name] for name in z.files}
        found = int(arrays["format"])
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise StoreError(f"cannot read {what} {path}: {exc}; delete it to rebuild it from the catalog") from exc
    if found != version:
        raise StoreError(f"{path} holds {what} format {found}, expected {version}; delete it to rebuild it")
    return arrays
