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

import functools
import math
import os
import threading
import zipfile
from pathlib import Path
from typing import Literal

import faiss
import numpy as np
import numpy.typing as npt

from strongroom.errors import StoreError
from strongroom.store.keyword import Mask, Rows, Scores, admitted_view, empty_result, top_k, write_npz_atomic

__all__ = ["VectorIndex"]

_FORMAT = 1
_BLOCK = 8192  # rows per gathered block in exact search: bounds the temporary copy
_NO_FLOOR = float("-inf")


@functools.cache
def _configure_faiss() -> None:
    """Use the cores this process may run on (at most 8) for training and bulk adds."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    faiss.omp_set_num_threads(max(1, min(cores, 8)))


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

    def __init__(self, dim: int, *, exact_threshold: int = 20_000, nprobe: int | None = None, seed: int = 0):
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
                params.sel = faiss.IDSelectorBitmap(n, faiss.swig_ptr(bits))
            scores, labels = ivf.search(q[None, :], k, params=params)
        found = labels[0] >= 0
        return labels[0][found].astype(np.int64), scores[0][found].astype(np.float32)

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

    def _exact(
        self, q: npt.NDArray[np.float32], k: int, admitted: Mask | None, n: int
    ) -> tuple[Rows, Scores]:
        data = self._data
        if admitted is None or np.count_nonzero(admitted) * 4 > n:
            scores = data[:n] @ q
            if admitted is not None:
                scores[~admitted] = _NO_FLOOR
            return top_k(None, scores, k, above=_NO_FLOOR)
        rows = np.flatnonzero(admitted)
        scores = np.concatenate([data[rows[i : i + _BLOCK]] @ q for i in range(0, len(rows), _BLOCK)])
        return top_k(rows, scores, k, above=_NO_FLOOR)

    def _ensure_ivf(self) -> faiss.IndexIVF:
        """The IVF covering every row; trains it first if missing or outgrown. Hold the lock."""
        n = self._n
        if self._ivf is None or n >= 4 * self._trained_on:
            _configure_faiss()
            self._ivf, self._trained_on, self._ivf_rows = self._train(n), n, 0
        if self._ivf_rows < n:
            assert self._ivf is not None
            self._ivf.add(self._data[self._ivf_rows : n])  # faiss ids are positions: ids == rows
            self._ivf_rows = n
        return self._ivf

    def _train(self, n: int) -> faiss.IndexIVF:
        nlist = max(1, min(int(4 * math.sqrt(n)), n // 39))
        rng = np.random.default_rng(self._seed)
        sample = np.sort(rng.choice(n, size=min(n, 32 * nlist), replace=False))
        ivf = faiss.extract_index_ivf(
            faiss.index_factory(self._dim, f"IVF{nlist},Flat", faiss.METRIC_INNER_PRODUCT)
        )
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
                "params": np.array(
                    [self._dim, self.exact_threshold, self.nprobe or 0, self._seed, self._trained_on]
                ),
                "counts": np.array([n, self._ivf_rows]),
                "data": self._data[:n],
                "filled": self._filled[:n],
                "ivf": ivf,
            }
        write_npz_atomic(path, arrays)

    @classmethod
    def load(cls, path: Path) -> VectorIndex:
        """Read an index written by :meth:`save`; raises :class:`StoreError` if it is unreadable."""
        try:
            with np.load(path, allow_pickle=False) as z:
                if int(z["format"]) != _FORMAT:
                    raise StoreError(f"{path} has vector index format {int(z['format'])}, expected {_FORMAT}")
                dim, threshold, nprobe, seed, trained_on = (int(v) for v in z["params"])
                n, ivf_rows = (int(v) for v in z["counts"])
                data, filled, ivf_bytes = z["data"], z["filled"], z["ivf"]
            ivf = faiss.extract_index_ivf(faiss.deserialize_index(ivf_bytes)) if len(ivf_bytes) else None
        except (OSError, ValueError, KeyError, EOFError, RuntimeError, zipfile.BadZipFile) as exc:
            raise StoreError(f"cannot read vector index {path}: {exc}; rebuild it from the catalog") from exc
        index = cls(dim, exact_threshold=threshold, nprobe=nprobe or None, seed=seed)
        index._data, index._filled, index._n = data, filled, n
        index._has_gaps = not bool(filled.all())
        index._ivf, index._trained_on, index._ivf_rows = ivf, trained_on, ivf_rows if ivf is not None else 0
        return index
