"""Scoring a written answer against an evaluation question's gold (strongroom.agent.scoring)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from strongroom.agent.scoring import gold_in_answer, says_it_could_not, score_answer
from strongroom.data.questions import Gold, Question, Step

CODE_NAMES = ("PROJECT MERLIN", "PROJECT HERON")


def question(*gold: Gold, expect: str = "answer") -> Question:
    return Question(
        id="q-1", kind="test", question="?", needs="data", as_of=datetime(2023, 12, 29, tzinfo=UTC), known_at=None,
        principal="analyst", groups=("public",), plan=(Step("query_data", {"sql": "SELECT 1"}),), gold=gold,
        answer="", expect=expect, must_not_contain=CODE_NAMES,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("gold", "answer", "found"),
    [
        (Gold("$1", "decimal", "264.01"), "It closed at 264.01 [1].", True),
        (Gold("$1", "decimal", "264.01"), "It closed at $264.010 [1].", True),
        (Gold("$1", "decimal", "264.01"), "It closed at 264 [1].", False),  # exact data is written exactly
        (Gold("$1", "decimal", "264.01"), "It closed at 264.02 [1].", False),
        (Gold("$1", "decimal", "2000000"), "A notional of 2,000,000 [1].", True),
        (Gold("$1", "decimal", "2000000"), "A notional of $2 million [1].", True),
        (Gold("$3", "decimal", "-3.718046", "0.000001"), "It fell 3.72% [3].", True),  # rounded, in prose
        (Gold("$3", "decimal", "-3.718046", "0.000001"), "It moved -3.718046% [3].", True),
        (Gold("$3", "decimal", "-3.718046", "0.000001"), "It fell about 4% [3].", False),  # too coarse
        (Gold("$3", "decimal", "-3.718046", "0.000001"), "It fell 3.73% [3].", False),
        (Gold("$1", "printed", "18,120"), "Revenue was $18,120 million [1].", True),
        (Gold("$1", "printed", "18,120"), "Revenue was 18120 million [1].", True),
        (Gold("$1", "printed", "18,120"), "Revenue was $18.12 billion [1].", True),
        (Gold("$1", "printed", "18,120"), "Revenue was $18 billion [1].", False),  # too coarse
        (Gold("$1", "printed", "18,120"), "Revenue was 118,120 [1].", False),
        (Gold("$1", "text", "Consumer Discretionary"), "EMBR is in consumer  discretionary [1].", True),
        (Gold("$1", "text", "USD"), "It trades in euros [1].", False),
        (Gold("$1", "date", "2022-12-30"), "Added on December 30, 2022 [1].", True),
        (Gold("$1", "date", "2022-12-30"), "Added on 30 Dec 2022 [1].", True),
        (Gold("$1", "date", "2022-12-30"), "Added on 2022-12-30 [1].", True),
        (Gold("$1", "date", "2022-12-30"), "Added on December 31, 2022 [1].", False),
        (Gold("$1", "set", ("T-0037", "T-0012")), "Trades T-0012 and T-0037 [1].", True),
        (Gold("$1", "set", ("T-0037", "T-0012")), "Trade T-0037 [1].", False),
        (Gold("$1", "set", ("T-0037",)), "Trade T-00371 [1].", False),  # a word, not inside one
        (Gold("$1", "count", "3"), "There are three such trades [1].", True),
        (Gold("$1", "count", "3"), "There are 3 [1].", True),
        (Gold("$1", "count", "3"), "There are 13 [1].", False),
        (Gold("$1", "present", "prices"), "You may query Prices and rates.", True),
        (Gold("$1", "absent", "positions"), "You may query prices and rates.", True),
        (Gold("$1", "absent", "positions"), "You may query prices and positions.", False),
    ],
)
def test_gold_values_in_prose(gold: Gold, answer: str, found: bool) -> None:
    assert gold_in_answer(gold, answer) is found


def test_an_answer_passes_with_every_gold_value_and_no_unsupported_number() -> None:
    q = question(Gold("$1.rows[0].close", "decimal", "151.73"), Gold("$3.value", "decimal", "0.336123", "0.000001"))
    good = "AAPL closed at 151.73 [1] and rose 0.34% over the quarter [3]."
    assert score_answer(q, good, status="answered") == []
    assert score_answer(q, "AAPL closed at 151.73 [1].", status="answered") == [
        "$3.value (decimal): '0.336123' is not in the answer"
    ]
    assert "not supported by the evidence" in score_answer(q, good, status="answered", unsupported=["0.34%"])[0]
    assert score_answer(q, good, status="limit", reason="max_steps") == ["the run ended limit: max_steps"]
    leaked = score_answer(q, good + " Also on the list as PROJECT MERLIN [1].", status="answered")
    assert leaked == ["the answer contains restricted text: PROJECT MERLIN"]


def test_a_refusal_passes_only_when_it_says_it_could_not_and_leaks_nothing() -> None:
    q = question(expect="refusal")
    assert (
        score_answer(q, "I could not answer: the positions dataset is not available to you.", status="answered") == []
    )
    assert score_answer(q, "", status="limit", reason="max_steps") == []  # it stopped without an answer
    assert score_answer(q, "The desk holds 3 such trades [1].", status="answered") == [
        "a refusal was expected: the answer does not say it could not answer"
    ]
    assert score_answer(q, "I cannot say, but PROJECT HERON is on it.", status="answered") == [
        "the answer contains restricted text: PROJECT HERON"
    ]


@pytest.mark.parametrize(
    ("answer", "refused"),
    [
        ("I don't have access to the positions dataset.", True),
        ("That dataset is not available to you.", True),
        ("The query was refused: unknown dataset 'positions'.", True),
        ("I am unable to read the watchlist.", True),
        ("The desk holds 3 autocallables on CIRR [1].", False),
        ("Notional totals 12,000,000 [2].", False),
    ],
)
def test_says_it_could_not(answer: str, refused: bool) -> None:
    assert says_it_could_not(answer) is refused
