from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from strongroom.retrieve import Fusion, diversify, rrf, search, title_prior
from strongroom.store.sqlite import SqliteStore
from strongroom.testing import HashEmbedder
from strongroom.testing.builders import make_version
from strongroom.types import Scope


def test_rrf_rewards_agreement() -> None:
    fused = rrf([["a", "b", "c"], ["b", "a", "d"]])
    assert [i for i, _ in fused[:2]] == ["a", "b"] or [i for i, _ in fused[:2]] == ["b", "a"]
    assert fused[-1][0] in {"c", "d"}


@given(st.lists(st.lists(st.sampled_from("abcdefgh"), unique=True), max_size=4))
def test_rrf_is_order_independent(rankings: list[list[str]]) -> None:
    assert rrf(rankings) == rrf(list(reversed(rankings)))


@given(
    st.lists(
        st.tuples(st.sampled_from("abcdefghij"), st.floats(min_value=0.01, max_value=1.0)), unique_by=lambda t: t[0]
    ),
    st.integers(min_value=0, max_value=12),
    st.floats(min_value=0.1, max_value=1.0),
)
def test_diversify_picks_k_from_the_input(ranked: list[tuple[str, float]], k: int, penalty: float) -> None:
    ranked = sorted(ranked, key=lambda t: -t[1])
    groups = {item: "g" + str(ord(item) % 3) for item, _ in ranked}
    chosen = diversify(ranked, groups, k, penalty)
    assert len(chosen) == min(k, len(ranked))
    assert set(chosen) <= set(ranked)
    assert diversify(ranked, groups, k, 1.0) == ranked[:k]


def test_diversify_spreads_across_documents() -> None:
    ranked = [("a1", 1.0), ("a2", 0.9), ("a3", 0.8), ("b1", 0.6)]
    groups = {"a1": "A", "a2": "A", "a3": "A", "b1": "B"}
    assert [i for i, _ in diversify(ranked, groups, 2, 0.5)] == ["a1", "b1"]


def test_weighted_rrf_needs_one_weight_per_ranking() -> None:
    with pytest.raises(ValueError, match="one weight"):
        rrf([["a"]], weights=[1.0, 2.0])
    assert rrf([["a"], ["b"]], weights=[1.0, 3.0])[0][0] == "b"


def test_title_prior_weighs_the_words_that_pick_a_document() -> None:
    titles = {
        "n1": "2023 Q1 NVDA — NVIDIA CORPORATION — Form 10-Q",
        "n2": "2023 Q2 NVDA — NVIDIA CORPORATION — Form 10-Q",
        "a1": "2023 Q1 AAPL — Apple Inc. — Form 10-Q",
    }
    prior = title_prior("What did NVIDIA spend on research in the first quarter of 2023?", titles)
    assert prior["n1"] == 1.0  # names the company and the quarter ("first quarter" reads as Q1)
    assert 0.0 < prior["n2"] == prior["a1"] < 1.0  # each shares one of the two words, equally rare
    assert title_prior("Form 10-Q", titles) == {"n1": 1.0, "n2": 1.0, "a1": 1.0}  # shared words pick nothing
    assert title_prior("inventory levels", titles) == {"n1": 0.0, "n2": 0.0, "a1": 0.0}
    assert title_prior("anything", {}) == {}


def test_diversify_spares_a_group_with_its_own_penalty() -> None:
    ranked = [("a1", 1.0), ("a2", 0.9), ("a3", 0.8), ("b1", 0.6)]
    groups = {"a1": "A", "a2": "A", "a3": "A", "b1": "B"}
    assert [i for i, _ in diversify(ranked, groups, 3, 0.5, {"A": 1.0})] == ["a1", "a2", "a3"]
    assert [i for i, _ in diversify(ranked, groups, 3, 0.5, {"B": 1.0})] == ["a1", "b1", "a2"]


def test_a_question_that_names_a_document_is_answered_from_it(tmp_path: Path) -> None:
    """Two filings with the same table labels: the one the question names wins every slot it
    can fill, and without a name the results spread over both."""
    embedder = HashEmbedder(dim=64)
    store = SqliteStore(tmp_path, model_id=embedder.model_id, dim=embedder.dim)
    page = "Operating expenses\nResearch and development {a} {b}\nSales and marketing {c} {d}\n"
    for name, numbers in (("Northwind 10-Q.txt", (11, 12, 13, 14)), ("Contoso 10-Q.txt", (21, 22, 23, 24))):
        a, b, c, d = numbers
        pages = [page.format(a=a, b=b, c=c, d=d) + f"Note {i} on research and development costs." for i in range(4)]
        store.write(make_version(embedder, name, pages, chunk_tokens=16))
    scope = Scope(frozenset({"public"}))
    named = search(store, embedder, "How much did Northwind spend on research and development?", scope, 4)
    assert {h.version.source for h in named} == {"Northwind 10-Q.txt"}
    unnamed = search(store, embedder, "How much was spent on research and development?", scope, 4)
    assert {h.version.source for h in unnamed} == {"Northwind 10-Q.txt", "Contoso 10-Q.txt"}


def test_a_search_checks_the_catalog_once_and_sees_another_writer_next_time(tmp_path: Path) -> None:
    """The embedded store pins its indexes for one search (one generation check, not one per
    index call); the next search still sees what another process wrote in between."""
    embedder = HashEmbedder(dim=64)
    reader = SqliteStore(tmp_path, model_id=embedder.model_id, dim=embedder.dim)
    writer = SqliteStore(tmp_path, model_id=embedder.model_id, dim=embedder.dim)
    writer.write(make_version(embedder, "first.txt", ["Revenue grew in the quarter."]))
    scope = Scope(frozenset({"public"}))
    checks: list[str] = []
    reader._db.set_trace_callback(lambda sql: checks.append(sql) if "'generation'" in sql else None)
    assert {h.version.source for h in search(reader, embedder, "revenue quarter", scope, 5)} == {"first.txt"}
    assert len(checks) == 1
    writer.write(make_version(embedder, "second.txt", ["Revenue fell in the second quarter."]))
    found = {h.version.source for h in search(reader, embedder, "revenue quarter", scope, 5)}
    assert found == {"first.txt", "second.txt"} and len(checks) == 2
    with reader.pinned(), reader.pinned():  # nested: one view
        reader.keyword_search("revenue", scope, 5)
        reader.vector_search(embedder.embed(["revenue"])[0], scope, 5)
    assert len(checks) == 3
    reader.close()
    writer.close()


def test_a_question_about_a_line_item_prefers_the_statement_that_reports_it(tmp_path: Path) -> None:
    """Inventories are a balance-sheet figure; the cash flow statement's "Inventories" line is
    their change. The cash-flow page matches the words better, the statement decides."""
    embedder = HashEmbedder(dim=64)
    store = SqliteStore(tmp_path, model_id=embedder.model_id, dim=embedder.dim)
    cash = "CONDENSED CONSOLIDATED STATEMENTS OF CASH FLOWS\nHow inventory levels changed\nInventories (2,570) 1,049\n"
    others = "".join(f"Other current asset {i} {i},001 {i},002\n" for i in range(1, 9))
    balance = f"CONDENSED CONSOLIDATED BALANCE SHEETS\nCurrent assets:\n{others}Inventories 7,351 4,946\n"
    store.write(make_version(embedder, "Northwind 10-Q.txt", [cash, balance]))
    scope = Scope(frozenset({"public"}))
    question = "How have Northwind's inventory levels changed?"
    plain = search(store, embedder, question, scope, 2, fusion=Fusion(statement=0.0))
    assert plain[0].chunk.page == 1  # without the statement, the better-worded cash flow page wins
    assert search(store, embedder, question, scope, 2)[0].chunk.page == 2


def test_a_synonym_from_the_curated_table_finds_the_line_as_the_filing_words_it(tmp_path: Path) -> None:
    embedder = HashEmbedder(dim=64)
    store = SqliteStore(tmp_path, model_id=embedder.model_id, dim=embedder.dim)
    page = "Investing activities:\nPurchases of property, plant and equipment (2,093) (2,102)\n"
    filler = [f"Note {i}: the board met {i} times and discussed the weather." for i in range(6)]
    store.write(make_version(embedder, "Northwind 10-Q.txt", [page, *filler]))
    scope = Scope(frozenset({"public"}))
    found = search(store, embedder, "What was the capex in the quarter?", scope, 7)
    row = next(h for h in found if "Purchases of property" in h.chunk.text)
    assert row.keyword_rank == 1  # matched by words the question never said
    without = search(store, embedder, "What was the capex in the quarter?", scope, 7, fusion=Fusion(synonyms=False))
    assert next(h for h in without if "Purchases of property" in h.chunk.text).keyword_rank is None
