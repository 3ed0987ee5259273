"""The table-cell answerer: real filings' rows, labelled by statement, period and scale from
the page, cited to the cells' characters; computed values with their inputs; and what it
must not do (cite text that is not on the page, answer prose questions with a stray row)."""

from __future__ import annotations

from pathlib import Path

import pytest

from strongroom.ingest.pipeline import IngestOptions, ingest
from strongroom.rag import ExtractiveGenerator, answer
from strongroom.rag.figures import figure_claims
from strongroom.store.sqlite import SqliteStore
from strongroom.testing import HashEmbedder
from strongroom.testing.generator_contract import hit
from strongroom.types import Answer, Scope

PUBLIC = Scope(frozenset({"public"}))


@pytest.fixture(scope="module")
def apple(tmp_path_factory: pytest.TempPathFactory) -> tuple[SqliteStore, HashEmbedder]:
    from tests.conftest import SEC10Q

    if not (SEC10Q / "docs").is_dir():
        pytest.skip(f"the sec10q corpus is not at {SEC10Q}")
    embedder = HashEmbedder(dim=64)
    store = SqliteStore(tmp_path_factory.mktemp("apple"), model_id=embedder.model_id, dim=embedder.dim)
    files = [SEC10Q / "docs" / f"2023 Q{q} AAPL.pdf" for q in (2, 3)]
    assert not ingest(files, store, embedder, IngestOptions()).failures
    return store, embedder


def _cited_exactly(result: Answer, store: SqliteStore) -> None:
    for claim in result.claims:
        for c in claim.citations:
            page = store.page_text(c.version_id, c.page)
            assert page is not None and page[c.char_start : c.char_end] == c.quote


def test_a_figure_question_is_answered_by_its_cells_labelled_and_cited(apple: tuple[SqliteStore, HashEmbedder]) -> None:
    store, embedder = apple
    result = answer("What were Apple's research and development expenses in Q3 2023?", PUBLIC, store, embedder)
    first = result.claims[0]
    assert "Research and development, in millions: three months ended July 1, 2023: 7,442" in first.text
    assert "three months ended June 25, 2022: 6,797" in first.text and "income statement" in first.text
    assert any("7,442" in c.quote for c in first.citations)
    _cited_exactly(result, store)


def test_a_change_question_gets_the_series_over_the_filings_then_the_change(
    apple: tuple[SqliteStore, HashEmbedder],
) -> None:
    store, embedder = apple
    result = answer("How has Apple's total net sales changed over time?", PUBLIC, store, embedder)
    series = result.claims[0].text
    assert series.startswith("Total net sales (in millions) over the filings:")
    # oldest first, each filing at its own current quarter, each figure cited to its cell
    assert series.index("April 1, 2023: 94,836") < series.index("July 1, 2023: 81,797")
    assert {c.quote for c in result.claims[0].citations} == {"94,836", "81,797"}
    assert "Change from April 1, 2023 to July 1, 2023: 81,797 \u2212 94,836 = \u221213,039 (\u221213.7%)." in series
    changes = " ".join(c.text for c in result.claims[1:])
    assert "81,797 \u2212 82,959 = \u22121,162 (\u22121.4%)" in changes  # this quarter vs the same one last year
    _cited_exactly(result, store)


def test_a_date_in_the_question_does_not_make_a_row_about_that_date_an_answer(
    apple: tuple[SqliteStore, HashEmbedder],
) -> None:
    store, embedder = apple  # the RSU note's "Balance as of July 1, 2023" row is not about inventories
    result = answer("What were Apple's inventories at July 1, 2023?", PUBLIC, store, embedder)
    first = result.claims[0].text
    assert "inventories, in millions: July 1, 2023: 7,351; September 24, 2022: 4,946" in first
    _cited_exactly(result, store)


def test_a_prose_question_is_answered_with_sentences() -> None:
    h = hit("memo.txt", 1, "The board approved the plan. Revenue 10 20\nThe CEO discussed hiring in Europe.", 0)
    result = ExtractiveGenerator().generate("What did the CEO discuss about hiring?", [h])
    assert result.found and result.claims[0].text == "The CEO discussed hiring in Europe."


def test_a_share_is_computed_exactly_with_its_inputs_and_formula() -> None:
    text = (
        "Three Months Ended\nJuly 1,\n2023\nJune 25,\n2022\nNet sales:\n"
        "Products $ 60,584 $ 63,355\nServices 21,213 19,604\nTotal net sales 81,797 82,959\n"
    )
    claims = figure_claims("What share of total net sales did Services contribute?", [hit("q3.txt", 4, text, 0)])
    assert "Services / Total net sales, three months ended July 1, 2023: 21,213 / 81,797 = 25.9%" in claims[0].text


def test_a_page_that_no_longer_holds_the_chunk_is_not_read() -> None:
    """A page reader that returns other text (a tampered or re-parsed page) must not move a
    citation: the answer then labels from the chunk alone."""
    text = "Research and development 7,442 6,797\n"
    h = hit("q3.txt", 4, text, 100)
    claims = figure_claims("What was R&D?", [h], pages=lambda _v, _p: "x" * 100 + "Research and development 9,999 1\n")
    assert claims and "7,442" in claims[0].text and "9,999" not in claims[0].text
    c = claims[0].citations[0]
    assert (c.char_start, c.char_end, c.quote) == (100, 100 + len(text) - 1, text.strip())


@pytest.mark.parametrize(
    "text",
    [
        "Q1 Q: 1 | 2023\nfrom Q: 2 | 2022\n",  # a layout's debris: no words to match
        "Total ) 315 380\n",
        "Revenue 1e309 nan\n",  # not figures
        "Revenue " + "9" * 400 + " 1\n",
    ],
)
def test_debris_and_hostile_rows_never_break_an_answer(text: str) -> None:
    h = hit("odd.txt", 1, text, 0)
    result = ExtractiveGenerator().generate("What was revenue in Q1 2023?", [h])
    assert all(c.text for c in result.claims)  # found or not, an answer, never an exception
    labelled = figure_claims("What was revenue in Q1 2023?", [h])
    assert not any("Q1 Q" in c.text or "Total )" in c.text or "nan" in c.text for c in labelled)


def test_no_row_names_the_item_so_the_sentence_extractor_answers(tmp_path: Path) -> None:
    h = hit("memo.txt", 1, "Goodwill was not impaired this quarter.\nHeadcount 120 130\n", 0)
    assert figure_claims("Was goodwill impaired?", [h]) == []


_INCOME = (
    "CONDENSED CONSOLIDATED STATEMENTS OF OPERATIONS (Unaudited)\n(In millions)\n"
    "Three Months Ended Nine Months Ended\nJuly 1,\n2023\nJune 25,\n2022\nJuly 1,\n2023\nJune 25,\n2022\n"
    "Net sales:\nProducts $ 60,584 $ 63,355 $ 230,901 $ 245,241\nTotal net sales 81,797 82,959 293,787 304,182\n"
)


@pytest.mark.parametrize(
    ("question", "change"),
    [
        ("How did total net sales change in the quarter?", "three months ended July 1, 2023 vs June 25, 2022: 81,797"),
        ("How did total net sales change over the first nine months?", "nine months ended July 1, 2023 vs June 25, "
         "2022: 293,787 \u2212 304,182 = \u221210,395 (\u22123.4%)"),
    ],
)  # fmt: skip
def test_the_period_a_question_names_picks_the_columns_compared(question: str, change: str) -> None:
    claims = figure_claims(question, [hit("q3.txt", 4, _INCOME, 0)])
    assert "income statement" in claims[0].text and "Total net sales, in millions:" in claims[0].text
    assert change in claims[0].text


def test_a_pipe_table_labels_its_cells_by_its_header_row() -> None:
    """DOCX, XLSX, CSV and HTML tables arrive as pipe rows: the first row names the columns."""
    text = "Metric | Q1 2024 | Q2 2024\nRevenue | 100 | 120\nOperating costs | 50 | 60\n"
    claims = figure_claims("What was revenue?", [hit("deck.xlsx", 1, text, 0)])
    assert "Revenue: Q1 2024: 100; Q2 2024: 120." in claims[0].text
    assert claims[0].citations[0].quote == "Revenue | 100 | 120"


def test_a_huge_page_is_read_only_near_the_chunk() -> None:
    """A page of megabytes (a spreadsheet) costs the window above the chunk, not the page."""
    filler = "x filler line of a very long page\n" * 60_000
    text = "Research and development 7,442 6,797\n"
    page = filler + text
    h = hit("big.txt", 1, text, len(filler))
    calls: list[int] = []

    def reader(_version: str, _page: int) -> str:
        calls.append(1)
        return page

    claims = figure_claims("What was R&D?", [h], pages=reader)
    assert calls and "7,442" in claims[0].text
    assert claims[0].citations[0].char_start == len(filler)


def test_a_table_of_another_issuer_does_not_answer_a_question_that_names_one() -> None:
    """Asked about the Example Bank notes by someone who may not read them, NVIDIA's table of
    its own notes is not the answer (the demo showed it as one): rows count only from hits
    that mention a name the question gives."""
    text = "Notes Due 2026 1,000 1,000\nNotes Due 2031 1,250 1,250\n"
    nvidia = hit("2023 Q3 NVDA.pdf", 19, text, 0)
    assert figure_claims("What is the coupon and issue price of the Example Bank senior notes?", [nvidia]) == []
    assert figure_claims("What notes does NVIDIA have due in 2031?", [hit("NVIDIA 10-Q", 19, text, 0)])


def test_the_row_asked_for_comes_before_the_rest_of_its_section() -> None:
    claims = figure_claims("What were total net sales?", [hit("q3.txt", 4, _INCOME, 0)])
    first = claims[0].text
    assert first.index("Total net sales, in millions") < first.index("Products, in millions")
