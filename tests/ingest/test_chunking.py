from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from strongroom.ingest.chunking import chunk_pages
from strongroom.text import classify_lines, dense_text, estimate_tokens
from strongroom.types import Chunk, Page

TABLE = "\n".join(f"Line item {i} {i * 1000:,} {i * 1100:,} {i * 1200:,}" for i in range(1, 9))


def test_table_rows_stay_whole_and_together() -> None:
    prose = " ".join(["The company reported results for the quarter."] * 12)
    text = f"# Statements of Operations\n{prose}\n{TABLE}\nSee notes."
    spans = chunk_pages([Page(1, text)], max_tokens=120)
    table_chunks = [s for s in spans if "Line item 1 " in text[s.start : s.end]]
    assert len(table_chunks) == 1
    assert all(f"Line item {i} " in text[table_chunks[0].start : table_chunks[0].end] for i in range(1, 9))
    assert all(s.heading == "Statements of Operations" for s in spans)


def test_headings_start_chunks_and_carry_over_pages() -> None:
    pages = [Page(1, "# Liquidity\n" + "Cash was ample. " * 30), Page(2, "More about cash and debt.")]
    spans = chunk_pages(pages, max_tokens=60)
    assert spans[-1].page == 2 and spans[-1].heading == "Liquidity"


def test_row_classification() -> None:
    kinds = [line.kind for line in classify_lines("RISK FACTORS\nTotal net sales 82,959 81,434\nWe sell phones.")]
    assert kinds == ["heading", "row", "text"]


texts = st.lists(
    st.one_of(
        st.text(alphabet="abcdefghij ,.\n", min_size=0, max_size=300),
        st.just(TABLE),
        st.just("# A Heading\n"),
    ),
    min_size=1,
    max_size=6,
).map("\n".join)


@settings(max_examples=200, deadline=None)
@given(pages=st.lists(texts, min_size=1, max_size=4), max_tokens=st.integers(min_value=8, max_value=200))
def test_spans_cover_the_text_in_order_without_overlap(pages: list[str], max_tokens: int) -> None:
    page_objs = [Page(i, t) for i, t in enumerate(pages, start=1)]
    spans = chunk_pages(page_objs, max_tokens)
    for page in page_objs:
        mine = [s for s in spans if s.page == page.number]
        covered = "".join(page.text[s.start : s.end] for s in mine)
        assert "".join(covered.split()) == "".join(page.text.split())  # every non-space char, once
        for a, b in itertools.pairwise(mine):
            assert a.end <= b.start
        for s in mine:
            assert page.text[s.start : s.end].strip() == page.text[s.start : s.end]
            chunk = page.text[s.start : s.end]
            if max(len(w) for w in chunk.split()) < 9:  # single words are never split
                assert estimate_tokens(chunk) <= max_tokens


def test_long_line_after_the_first_splits_at_sentence_ends() -> None:
    # regression: offsets of sentence ends were counted twice for lines not at position 0
    text = "Dear client,\n" + " ".join(["This is a sentence about coupons and barriers."] * 20)
    spans = chunk_pages([Page(1, text)], max_tokens=20)
    assert "".join("".join(text[s.start : s.end].split()) for s in spans) == "".join(text.split())
    assert all(text[s.start : s.end].endswith((".", ",")) for s in spans)


def test_dense_text_keeps_labels_and_prose_but_not_figures() -> None:
    text = "Operating expenses\nResearch and development $ 1,875 $ 1,618\nResearch and development $ 1,875 $ 1,618\n2023\nWe invest in research."
    chunk = Chunk("c", "v", 0, 1, 0, len(text), text, "Acme 10-Q — Results")
    assert (
        dense_text(chunk) == "Acme 10-Q — Results\nOperating expenses\nResearch and development\nWe invest in research."
    )
