"""The financial vocabulary: line items and synonyms, statement titles, column periods, scale."""

from __future__ import annotations

import pytest

from strongroom.finance import (
    is_period_header,
    items_in,
    line_items,
    periods,
    scale_of,
    statement_of,
    statements_asked,
    synonym_terms,
    synonyms,
)
from strongroom.text import tokenize


def test_the_curated_table_loads_and_every_item_has_a_known_statement() -> None:
    items = line_items()
    assert len(items) >= 20
    assert {i.statement for i in items} <= {"income", "balance", "cash_flow", "equity", "comprehensive"}
    assert all(i.terms and all(tokenize(t) for t in i.terms) for i in items)  # no term is all stopwords


@pytest.mark.parametrize(
    ("question", "item"),
    [
        ("How much did NVIDIA spend on capex?", "capital expenditures"),
        ("What were Apple's purchases of property, plant and equipment?", "capital expenditures"),
        ("What was Microsoft's R&D in Q1?", "research and development"),
        ("How did net sales move?", "revenue"),
        ("What is the PP&E balance?", "property, plant and equipment"),
    ],
)
def test_questions_name_line_items_by_any_of_their_names(question: str, item: str) -> None:
    assert item in [i.name for i in items_in(question)]


def test_synonyms_widen_a_question_with_the_other_names_only() -> None:
    found = synonyms("How has NVIDIA's capex changed?")
    assert "purchases of property, plant and equipment" in found and "capex" not in found
    assert synonyms("What did the CEO say about hiring?") == ()
    # a filer's own label matches rows when answering but never widens a search
    assert "technology and content" not in synonyms("Amazon R&D")
    assert {"technolog", "content"} <= set(synonym_terms("Amazon R&D"))


@pytest.mark.parametrize(
    ("title", "kind"),
    [
        ("CONDENSED CONSOLIDATED STATEMENTS OF OPERATIONS (Unaudited)", "income"),
        ("INCOME STATEMENTS", "income"),
        ("CONDENSED CONSOLIDATED STATEMENTS OF COMPREHENSIVE INCOME", "comprehensive"),
        ("COMPREHENSIVE INCOME STATEMENTS", "comprehensive"),
        ("CONDENSED CONSOLIDATED BALANCE SHEETS", "balance"),
        ("Consolidated Statements of Cash Flows", "cash_flow"),
        ("CONDENSED CONSOLIDATED STATEMENTS OF SHAREHOLDERS\u2019 EQUITY", "equity"),
        ("Note 5 — Leases", None),
    ],
)
def test_statement_titles_as_filings_print_them(title: str, kind: str | None) -> None:
    assert statement_of(title) == kind


def test_a_question_asks_for_the_statement_it_names_else_that_of_its_items() -> None:
    assert statements_asked("What do Apple's inventory levels suggest?") == {"balance"}
    assert statements_asked("Any changes in Amazon's liquidity or cash flows?") == {"cash_flow"}
    assert statements_asked("Who is the CFO?") == frozenset()


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (  # Apple: month and day over each year, two groups
            "Three Months Ended Nine Months Ended July 1, 2023 June 25, 2022 July 1, 2023 June 25, 2022",
            ["three months ended July 1, 2023", "three months ended June 25, 2022",
             "nine months ended July 1, 2023", "nine months ended June 25, 2022"],
        ),
        (  # NVIDIA: both days, then both years
            "Three Months Ended April 30, May 1, 2023 2022",
            ["three months ended April 30, 2023", "three months ended May 1, 2022"],
        ),
        (  # Microsoft: one date over several years
            "Three Months Ended September 30, 2022 2021",
            ["three months ended September 30, 2022", "three months ended September 30, 2021"],
        ),
        ("July 1, 2023 September 24, 2022", ["July 1, 2023", "September 24, 2022"]),  # a balance sheet
        ("2023 2022", ["2023", "2022"]),
        (  # a 10-K: one date over three fiscal years
            "Years Ended December 31, 2023 2022 2021",
            ["year ended December 31, 2023", "year ended December 31, 2022", "year ended December 31, 2021"],
        ),
        ("Three Months Ended Six Months Ended June 30, 2023 2022", []),  # 2 groups over 2 dates: unclear
        ("Revenue by segment", []),
    ],
)  # fmt: skip
def test_column_periods_from_the_layouts_filings_use(header: str, expected: list[str]) -> None:
    assert periods(header) == expected


def test_period_headers_and_scale() -> None:
    assert all(map(is_period_header, ["Three Months Ended Nine Months Ended", "July 1,", "2023", "April 30, May 1,"]))
    assert not any(map(is_period_header, ["Net sales:", "(In millions)", "Total net sales 81,797 82,959"]))
    assert scale_of("(In millions, except number of shares which are reflected in thousands)") == "millions"
    assert scale_of("(in thousands)") == "thousands"
    assert scale_of("Net sales") is None
