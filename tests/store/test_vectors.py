from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from strongroom.errors import StoreError
from strongroom.store.vectors import VectorIndex


def unit(x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    norms: npt.NDArray[np.float32] = np.linalg.norm(x, axis=-1, keepdims=True)
    return (x / norms).astype(np.float32)


def clustered(n: int, dim: int, clusters: int, seed: int) -> npt.NDArray[np.float32]:
    rng = np.random.default_rng(seed)
    centers = unit(rng.standard_normal((clusters, dim)).astype(np.float32))
    noise = rng.standard_normal((n, dim)).astype(np.float32) * np.float32(0.8 / np.sqrt(dim))
    return unit(centers[rng.integers(0, clusters, n)] + noise)


def brute_force(
    vectors: npt.NDArray[np.float32],
    query: npt.NDArray[np.float32],
    k: int,
    mask: npt.NDArray[np.bool_] | None,
) -> list[int]:
    scores = vectors @ query
    if mask is not None:
        scores = np.where(mask, scores, -np.inf)
    order = np.lexsort((np.arange(len(scores)), -scores))
    return [int(i) for i in order[:k] if np.isfinite(scores[i])]


def recall(index: VectorIndex, queries: npt.NDArray[np.float32], mask: npt.NDArray[np.bool_] | None) -> float:
    hits = []
    for q in queries:
        rows, _ = index.search(q, 10, mask)
        truth, _ = index.search_exact(q, 10, mask)
        hits.append(len(set(rows.tolist()) & set(truth.tolist())) / len(truth))
    return float(np.mean(hits))


@pytest.fixture(scope="module")
def data() -> npt.NDArray[np.float32]:
    return clustered(5000, 32, 40, seed=0)


@pytest.fixture(scope="module")
def ivf_index(data: npt.NDArray[np.float32]) -> VectorIndex:
    index = VectorIndex(32, exact_threshold=500)
    index.add(np.arange(len(data)), data)
    index.build()
    return index


def test_exact_search_equals_brute_force(data: npt.NDArray[np.float32]) -> None:
    index = VectorIndex(32)
    index.add(np.arange(1000), data[:1000])
    mask = np.random.default_rng(1).random(1000) < 0.1
    for q in data[1000:1020]:
        assert index.plan() == "exact"
        rows, scores = index.search(q, 10)
        assert rows.tolist() == brute_force(data[:1000], q, 10, None)
        np.testing.assert_allclose(scores, data[rows] @ q, rtol=1e-5)
        assert index.search(q, 10, mask)[0].tolist() == brute_force(data[:1000], q, 10, mask)


def test_ivf_recall_against_exact(ivf_index: VectorIndex, data: npt.NDArray[np.float32]) -> None:
    assert ivf_index.plan() == "ivf"
    rng = np.random.default_rng(2)
    queries = unit(data[:100] + rng.standard_normal((100, 32)).astype(np.float32) * np.float32(0.05))
    assert recall(ivf_index, queries, None) >= 0.9


def test_filtered_ivf_never_returns_a_masked_row_and_fills_k(
    ivf_index: VectorIndex, data: npt.NDArray[np.float32]
) -> None:
    mask = np.random.default_rng(3).random(len(data)) < 0.3
    assert ivf_index.plan(mask) == "ivf"
    for q in data[:50]:
        rows, scores = ivf_index.search(q, 10, mask)
        assert len(rows) == 10 and mask[rows].all()
        assert (np.diff(scores) <= 0).all()
    assert recall(ivf_index, data[:50], mask) >= 0.9


def test_selective_mask_goes_exact_and_fills_k(ivf_index: VectorIndex, data: npt.NDArray[np.float32]) -> None:
    mask = np.zeros(len(data), dtype=bool)
    mask[np.random.default_rng(4).choice(len(data), 50, replace=False)] = True  # 1%
    assert ivf_index.plan(mask) == "exact"
    for q in data[:20]:
        rows, _ = ivf_index.search(q, 10, mask)
        assert rows.tolist() == brute_force(data, q, 10, mask)


def test_adds_after_training_are_searchable_and_growth_retrains() -> None:
    vectors = clustered(8000, 16, 20, seed=5)
    index = VectorIndex(16, exact_threshold=300)
    index.add(np.arange(400), vectors[:400])
    index.build()
    for start in range(400, 8000, 1900):  # grows 20x: retrained twice on the way
        index.add(np.arange(start, min(8000, start + 1900)), vectors[start : start + 1900])
        last = min(8000, start + 1900) - 1
        assert index.search(vectors[last], 1)[0].tolist() == [last]
    assert recall(index, vectors[::160], None) >= 0.9


def test_rows_may_skip_and_skipped_rows_are_never_returned() -> None:
    vectors = clustered(20, 8, 2, seed=6)
    index = VectorIndex(8)
    index.add(np.arange(10), vectors[:10])
    index.add(np.arange(20, 30), vectors[10:])
    assert len(index) == 30
    rows, _ = index.search(-vectors[0], 30)  # gap rows would score 0, above most real rows
    assert sorted(rows.tolist()) == [*range(10), *range(20, 30)]
    with pytest.raises(ValueError, match="append-only"):
        index.add([25], vectors[:1])


def test_bad_arguments_are_refused() -> None:
    index = VectorIndex(8)
    index.add(np.arange(3), np.eye(3, 8, dtype=np.float32))
    with pytest.raises(ValueError, match="expected 8"):
        index.search(np.ones(4, dtype=np.float32), 1)
    with pytest.raises(ValueError, match="shape"):
        index.add([3], np.ones((1, 4), dtype=np.float32))
    with pytest.raises(ValueError, match="one per row"):
        index.search(np.ones(8, dtype=np.float32), 1, np.ones(2, dtype=bool))
    assert index.search(np.ones(8, dtype=np.float32), 0)[0].size == 0


@pytest.mark.parametrize("trained", [False, True])
def test_save_load_round_trip(tmp_path: Path, data: npt.NDArray[np.float32], trained: bool) -> None:
    index = VectorIndex(32, exact_threshold=500)
    index.add(np.arange(2000), data[:2000])
    if trained:
        index.build()
    path = tmp_path / "vectors.npz"
    index.save(path)
    loaded = VectorIndex.load(path)
    assert len(loaded) == 2000 and loaded.dim == 32 and loaded.plan() == "ivf"
    mask = np.arange(2000) % 3 == 0
    for q in data[2000:2020]:
        for m in (None, mask):
            a, b = index.search(q, 10, m), loaded.search(q, 10, m)
            assert a[0].tolist() == b[0].tolist()
            np.testing.assert_array_equal(a[1], b[1])
    loaded.add([2000], data[2000:2001])
    assert loaded.search(data[2000], 1)[0].tolist() == [2000]
    assert [p.name for p in tmp_path.iterdir()] == ["vectors.npz"]


def test_load_rejects_a_damaged_file(tmp_path: Path) -> None:
    path = tmp_path / "vectors.npz"
    path.write_bytes(b"not an index")
    with pytest.raises(StoreError, match="rebuild"):
        VectorIndex.load(path)


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 80),
    k=st.integers(1, 12),
    threshold=st.sampled_from([8, 20_000]),  # the IVF plan and the exact plan
    seed=st.integers(0, 2**16),
    share=st.floats(0.0, 1.0),
)
def test_search_invariants(n: int, k: int, threshold: int, seed: int, share: float) -> None:
    rng = np.random.default_rng(seed)
    vectors = unit(rng.standard_normal((n, 4)).astype(np.float32))
    mask = rng.random(n) < share
    index = VectorIndex(4, exact_threshold=threshold)
    index.add(np.arange(n), vectors)
    query = vectors[0]
    rows, scores = index.search(query, k, mask)
    assert mask[rows].all()
    assert len(rows) == min(k, int(mask.sum()))
    assert (np.diff(scores) <= 0).all()
    np.testing.assert_allclose(scores, vectors[rows] @ query, rtol=1e-5, atol=1e-6)
    if index.plan(mask) == "exact":
        assert rows.tolist() == brute_force(vectors, query, k, mask)
