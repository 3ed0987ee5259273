from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from strongroom.errors import StoreError
from strongroom.store.keyword import KeywordIndex
from strongroom.text import tokenize

DOCS = [
    "Net interest income rose 12% on higher loan balances.",
    "The bank's operating expenses were flat year on year.",
    "Net sales were 82,959 million, compared with (2,028) million of losses.",
    "Revenues from trading grew; the dividend was 1.20 per share.",
    "Credit derivatives exposure was reduced in the quarter.",
]


def reference_bm25(docs: list[list[str]], query: list[str], k1: float = 1.2, b: float = 0.75) -> list[float]:
    """Textbook Okapi BM25, one score per document, written as plainly as possible."""
    n = len(docs)
    avgdl = sum(len(d) for d in docs) / n
    df = Counter(term for doc in docs for term in set(doc))
    scores = []
    for doc in docs:
        tf = Counter(doc)
        score = 0.0
        for term in query:
            if tf[term] == 0:
                continue
            idf = math.log(1 + (n - df[term] + 0.5) / (df[term] + 0.5))
            score += idf * tf[term] * (k1 + 1) / (tf[term] + k1 * (1 - b + b * len(doc) / avgdl))
        scores.append(score)
    return scores


def build(docs: list[str]) -> KeywordIndex:
    index = KeywordIndex()
    index.add(np.arange(len(docs)), docs)
    return index


def test_tokenize_keeps_numbers_whole_and_adds_the_digits_only_form() -> None:
    tokens = tokenize("Net sales were 82,959 million vs (2,028); dividend 1.20.")
    assert {"82,959", "82959", "2,028", "2028", "1.20"} <= set(tokens)
    assert "120" not in tokens  # a decimal point is not a thousands separator
    assert "82" not in tokens and "959" not in tokens


def test_tokenize_stems_lowercases_and_drops_stopwords() -> None:
    assert tokenize("The Revenues of the banks") == ["revenu", "bank"]
    assert tokenize("revenues") == tokenize("Revenue")
    assert tokenize("net-interest_income") == ["net", "interest", "incom"]


def test_relevant_document_ranks_first() -> None:
    rows, scores = build(DOCS).search("net interest income", k=3)
    assert rows[0] == 0
    assert list(scores) == sorted(scores, reverse=True)


def test_scores_equal_textbook_bm25() -> None:
    index = build(DOCS)
    docs = [tokenize(d) for d in DOCS]
    query = "net sales revenue million"
    expected = reference_bm25(docs, tokenize(query))
    rows, scores = index.search(query, k=len(DOCS))
    assert rows.tolist() == [i for i in np.argsort(expected)[::-1] if expected[i] > 0]
    np.testing.assert_allclose(scores, [expected[r] for r in rows], rtol=1e-5)


def test_rare_term_outweighs_common_term() -> None:
    docs = [f"bank report number {i}" for i in range(20)] + ["bank derivative note"]
    index = build(docs)
    rows, scores = index.search("bank derivative", k=5)
    assert rows[0] == 20
    assert scores[0] > 3 * scores[1]


def test_numbers_match_with_or_without_separators() -> None:
    index = build(DOCS)
    assert index.search("82959", k=1)[0].tolist() == [2]
    assert index.search("82,959", k=1)[0].tolist() == [2]
    assert index.search("2028", k=1)[0].tolist() == [2]


def test_stemming_matches_inflections() -> None:
    assert build(DOCS).search("revenue", k=1)[0].tolist() == [3]


def test_unknown_terms_and_non_positive_k_give_nothing() -> None:
    index = build(DOCS)
    for rows, scores in (index.search("zzyzx", k=3), index.search("loan", k=0), index.search("the", k=3)):
        assert rows.dtype == np.int64 and scores.dtype == np.float32
        assert len(rows) == len(scores) == 0


@pytest.mark.parametrize("admitted_every", [3, 100])  # many admitted rows / few admitted, long postings
def test_mask_is_applied_before_top_k(admitted_every: int) -> None:
    # Admitted documents are long, so they rank below every other document that holds the term:
    # dropping results after an unfiltered top-k would return nothing here.
    n = 1000
    docs = [("loan " + "filler " * 40) if i % admitted_every == 0 else "loan" for i in range(n)]
    mask = np.arange(n) % admitted_every == 0
    rows, scores = build(docs).search("loan", k=10, mask=mask)
    assert len(rows) == 10
    assert mask[rows].all()
    assert (scores > 0).all()


def test_mask_admitting_nothing_or_too_short_mask() -> None:
    index = build(DOCS)
    assert len(index.search("bank", k=3, mask=np.zeros(len(DOCS), dtype=bool))[0]) == 0
    with pytest.raises(ValueError, match="one per row"):
        index.search("bank", k=3, mask=np.ones(len(DOCS) - 1, dtype=bool))
    with pytest.raises(ValueError, match="bool"):
        index.search("bank", k=3, mask=np.ones(len(DOCS), dtype=np.int8))


def test_incremental_adds_match_a_single_build() -> None:
    rng = np.random.default_rng(1)
    words = [f"w{i}" for i in range(300)]
    p = 1.0 / np.arange(1, 301)
    docs = [" ".join(rng.choice(words, size=rng.integers(5, 30), p=p / p.sum())) for _ in range(2000)]
    grown = KeywordIndex()
    queries = ["w0 w17 w250", "w3 w4", "w299 w1", "w120"]
    for start in range(0, len(docs), 150):  # search between adds: several segments, then merges
        grown.add(np.arange(start, min(len(docs), start + 150)), docs[start : start + 150])
        assert grown.search("w0", k=1)[0].size == 1
    assert grown.search(docs[-1], k=1)[0].tolist() == [len(docs) - 1]
    whole = build(docs)
    for query in queries:
        for mask in (None, rng.random(len(docs)) < 0.05):
            a_rows, a_scores = grown.search(query, k=20, mask=mask)
            b_rows, b_scores = whole.search(query, k=20, mask=mask)
            np.testing.assert_allclose(a_scores, b_scores, rtol=1e-5)
            assert set(a_rows) == set(b_rows)


def test_pruned_search_is_exact() -> None:
    # Common terms (in most documents) next to rare ones: the MaxScore shortcut must not change results.
    rng = np.random.default_rng(2)
    docs = [
        ["common"] * int(rng.integers(1, 4)) + ["usual"] * int(rng.integers(0, 3)) + [f"rare{rng.integers(0, 200)}"]
        for _ in range(3000)
    ]
    index = KeywordIndex()
    index.add_tokens(np.arange(len(docs)), docs)
    masks = [None, rng.random(len(docs)) < 0.3, rng.random(len(docs)) < 0.01]
    for query in (["common", "rare7"], ["common", "usual", "rare3", "rare150"], ["usual", "rare11"]):
        expected = np.array(reference_bm25(docs, query))
        for mask in masks:
            admitted = expected if mask is None else expected[mask]
            rows, scores = index.search_tokens(query, k=10, mask=mask)
            assert mask is None or mask[rows].all()
            np.testing.assert_allclose(scores, sorted(admitted[admitted > 0], reverse=True)[:10], rtol=1e-5)


def test_rows_may_skip_but_never_go_back() -> None:
    index = KeywordIndex()
    index.add([0, 1], ["alpha", "beta"])
    index.add([5], ["alpha gamma"])
    assert len(index) == 6
    assert set(index.search("alpha", k=5)[0].tolist()) == {0, 5}
    with pytest.raises(ValueError, match="append-only"):
        index.add([5], ["again"])
    with pytest.raises(ValueError, match="append-only"):
        index.add([8, 7], ["x", "y"])


def test_save_load_round_trip(tmp_path: Path) -> None:
    index = build([*DOCS, "Société Générale résultats 2,5"])
    index.search("bank", k=1)
    index.add([10], ["late addition about loans"])  # pending at save time
    path = tmp_path / "keyword.npz"
    index.save(path)
    loaded = KeywordIndex.load(path)
    assert len(loaded) == len(index) == 11
    mask = np.arange(11) % 2 == 0
    for query in ("bank loans", "société", "82959", "revenue dividend", "loan"):
        for m in (None, mask):
            a, b = index.search(query, k=5, mask=m), loaded.search(query, k=5, mask=m)
            assert a[0].tolist() == b[0].tolist()
            np.testing.assert_array_equal(a[1], b[1])
    loaded.add([11], ["new loan"])
    assert 11 in loaded.search("loan", k=5)[0]
    assert [p.name for p in tmp_path.iterdir()] == ["keyword.npz"]  # no temporary file left


def test_load_rejects_a_damaged_file(tmp_path: Path) -> None:
    path = tmp_path / "keyword.npz"
    build(DOCS).save(path)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(StoreError, match="rebuild"):
        KeywordIndex.load(path)


WORDS = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta"]
corpora = st.lists(st.lists(st.sampled_from(WORDS), max_size=12), min_size=1, max_size=60)


@settings(max_examples=150, deadline=None)
@given(
    docs=corpora,
    query=st.lists(st.sampled_from(WORDS), min_size=1, max_size=4),
    k=st.integers(1, 12),
    data=st.data(),
)
def test_search_invariants(docs: list[list[str]], query: list[str], k: int, data: st.DataObject) -> None:
    mask = np.array(data.draw(st.lists(st.booleans(), min_size=len(docs), max_size=len(docs))), dtype=bool)
    index = KeywordIndex()
    index.add_tokens(np.arange(len(docs)), docs)
    rows, scores = index.search_tokens(query, k, mask)
    expected = reference_bm25(docs, query)
    matching = [expected[i] for i in range(len(docs)) if mask[i] and expected[i] > 0]
    assert len(rows) == min(k, len(matching))  # a full top-k whenever enough admitted rows match
    assert mask[rows].all()
    assert (np.diff(scores) <= 0).all() and (scores > 0).all()
    np.testing.assert_allclose(scores, sorted(matching, reverse=True)[:k], rtol=1e-5)
