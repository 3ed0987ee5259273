"""Numbers as filings write them, and the check of an answer's numbers against the evidence
it cites."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from strongroom.agent.base import Evidence
from strongroom.agent.citations import check_answer, cited_markers, states, unsupported_note
from strongroom.agent.numbers import find_figures, parse_figure, same_figure

INCOME = Evidence(
    "page",
    {"document_id": "d1", "version_id": "v1", "page": 4},
    "CONDENSED CONSOLIDATED STATEMENTS OF OPERATIONS (Unaudited)\n(In millions, except per-share amounts)\n"
    "Three Months Ended July 1, 2023 June 25, 2022\nTotal net sales 81,797 82,959\nNet income (loss) (1,234) 19,442",
)
RATES = Evidence("query", {"sql": "select rate from rates"}, "rate\n0.0425", ("0.0425",))
CALC = Evidence(
    "calculation",
    {"expression": "pct_change(a, b)"},
    "pct_change(82959, 81797) ≈ -1.400691908050964934485709808459601",
    ("-1.400691908050964934485709808459601",),
)


@pytest.mark.parametrize(
    ("text", "value", "scale", "percent", "places"),
    [
        ("1,234.5", "1234.5", 1, False, 1),
        ("(1,234)", "-1234", 1, False, 0),
        ("-3.25", "-3.25", 1, False, 2),
        ("\u22123", "-3", 1, False, 0),
        ("4.25%", "4.25", 1, True, 2),
        ("4.25 percent", "4.25", 1, True, 2),
        ("$81.8 billion", "81.8", 10**9, False, 1),
        ("$81,797 million", "81797", 10**6, False, 0),
        ("2.1bn", "2.1", 10**9, False, 1),
        ("$5m", "5", 10**6, False, 0),
        ("EUR 12.5 million", "12.5", 10**6, False, 1),
        ("£300k", "300", 10**3, False, 0),
        (".5", "0.5", 1, False, 1),
    ],
)
def test_a_figure_is_read_with_its_sign_scale_and_places(
    text: str, value: str, scale: int, percent: bool, places: int
) -> None:
    f = parse_figure(text)
    assert f is not None
    assert (f.value, f.scale, f.percent, f.places) == (Decimal(value), scale, percent, places)


@pytest.mark.parametrize("text", ["1,23", "1 2", "twelve", "(3", "3)", "1.2.3", "", "Q3", "10-Q"])
def test_what_is_not_one_number(text: str) -> None:
    assert parse_figure(text) is None


def test_dates_years_markers_references_and_codes_are_not_figures_to_check() -> None:
    text = (
        "In the quarter ended July 1, 2023 (fiscal 2023, Q3 2023, filed on Form 10-Q on 2023-08-04 and "
        "7/1/2023; see page 4, Note 5 and Item 7 for the 12 months ended 1 July 2023), CET1 was 13.5% "
        "[1][2], Tier 1 capital rose in 3 segments and the 3rd quarter [Source 3], sales were $81.8 billion [4]."
    )
    assert [f.text for f in find_figures(text)] == ["13.5%", "$81.8 billion"]
    # evidence keeps every number it states, years and small ones included
    assert "2023" in [f.text for f in find_figures("fiscal 2023: 3 segments", every=True)]


@pytest.mark.parametrize(
    ("stated", "source", "source_scale", "same"),
    [
        ("81,797", "81797", 1, True),
        ("81797", "81,797", 1, True),
        ("$81.8 billion", "81,797", 10**6, True),  # the evidence says "(In millions)"
        ("$82 billion", "81,797", 10**6, True),  # rounded to the places the answer shows
        ("81.797 billion", "81,797", 10**6, True),
        ("$81,797 million", "81,797", 1, True),  # evidence without a stated scale: compared as written
        ("81,797,000,000", "81,797", 10**6, True),
        ("$80 billion", "81,797", 10**6, False),
        ("$81.7 billion", "81,797", 10**6, False),
        ("$82 million", "81.797", 10**9, False),  # both scales known: they must agree
        ("81,800", "81,797", 1, False),  # claims a precision the evidence does not have
        ("4.25%", "4.25", 1, True),
        ("4.25%", "0.0425", 1, True),  # a rate column
        ("4.3%", "4.25%", 1, True),
        ("4.2%", "4.25%", 1, True),  # half way: either rounding convention may write it
        ("4.1%", "4.25%", 1, False),
        ("1,234", "(1,234)", 1, True),  # prose says "a loss of 1,234"
        ("1.4%", "-1.400691908050964934485709808459601", 1, True),
        ("12.5%", "81,797", 10**6, False),
    ],
)
def test_same_figure_in_other_formats(stated: str, source: str, source_scale: int, same: bool) -> None:
    a, b = parse_figure(stated), parse_figure(source)
    assert a is not None and b is not None
    assert same_figure(a, b, source_scale) is same


def test_an_answer_s_numbers_are_checked_against_the_evidence_its_sentences_cite() -> None:
    evidence = [INCOME, RATES, CALC]
    answer = (
        "Net sales were $81.8 billion [1], down 1.4% [3] from 82,959 million [1]. "
        "The policy rate was 4.25% [2]. Net loss was 1,234 million [1].\n"
        "Margins were 44.1% [1]. Costs were 900 million. Deposits were 12,345 [7]."
    )
    report = check_answer(answer, evidence)
    got = {n.text: (n.cited, n.supported_by) for n in report.numbers}
    assert got == {
        "$81.8 billion": ((1,), (1,)),
        "1.4%": ((3,), (3,)),
        "82,959 million": ((1,), (1,)),
        "4.25%": ((2,), (2,)),
        "1,234 million": ((1,), (1,)),
        "44.1%": ((1,), ()),  # cited, but [1] does not say it
        "900 million": ((7,), ()),  # no marker of its own: takes the next sentence's, which names no evidence
        "12,345": ((7,), ()),
    }
    assert [n.text for n in report.unsupported] == ["44.1%", "900 million", "12,345"]
    assert report.cited == (1, 3, 2)
    assert report.unknown == (7,)
    assert unsupported_note(report) == "Not supported by the cited evidence (unverified): 44.1%, 900 million, 12,345."
    assert answer[report.numbers[0].start : report.numbers[0].end] == "$81.8 billion"


def test_a_number_without_any_marker_is_unsupported_even_if_some_evidence_states_it() -> None:
    report = check_answer("Total net sales were 81,797 million.", [INCOME])
    assert [n.text for n in report.unsupported] == ["81,797 million"]
    assert report.numbers[0].cited == ()


def test_markers_after_the_full_stop_cite_the_sentence_before_them() -> None:
    report = check_answer("Total net sales were 81,797 million. [1]\nThe rate was 4.25%. [2]", [INCOME, RATES])
    assert report.unsupported == ()
    assert [n.supported_by for n in report.numbers] == [(1,), (2,)]


def test_marker_forms() -> None:
    assert cited_markers("a [1, 2] b [Source 3] c [2][4] d [evidence 5]") == [1, 2, 3, 4, 5]
    report = check_answer("Sales were 81,797 and 82,959 [2][1].", [RATES, INCOME])
    assert [(n.cited, n.supported_by) for n in report.numbers] == [((2, 1), (2,)), ((2, 1), (2,))]


def test_an_answer_without_numbers_passes_and_the_note_is_empty() -> None:
    report = check_answer("The filing does not say [1].", [INCOME])
    assert report.numbers == () and unsupported_note(report) == ""


def test_states_reads_the_evidence_numbers_and_text() -> None:
    f = parse_figure("$81.8 billion")
    assert f is not None
    assert states(INCOME, f)
    assert not states(RATES, f)


@settings(deadline=None, max_examples=300)
@given(st.text(max_size=300), st.lists(st.text(max_size=80), max_size=3))
def test_checking_any_text_never_fails(answer: str, texts: list[str]) -> None:
    evidence = [Evidence("page", {}, t, (t[:10],)) for t in texts]
    report = check_answer(answer, evidence)
    for n in report.numbers:
        assert answer[n.start : n.end] == n.text or answer[n.start : n.end].strip() == n.text
        assert set(n.supported_by) <= set(n.cited)
