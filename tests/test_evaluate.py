"""Retrieval metrics on hand-built hits: page recall counts labelled pages, page hit any of them."""

from __future__ import annotations

from strongroom.evaluate import Evidence, QAItem, run_eval, score_item
from strongroom.testing.generator_contract import hit

HITS = [
    hit("2023 Q3 AAPL.pdf", 4, "Total net sales $ 81,797 $ 82,959", 0),
    hit("2023 Q3 AAPL.pdf", 9, "Products and services net sales", 0),
    hit("2023 Q2 AAPL.pdf", 4, "Total net sales $ 94,836", 0),
]


def labelled(*pages: tuple[str, int]) -> QAItem:
    evidence = [Evidence(doc=doc, page=page) for doc, page in pages]
    return QAItem(id="q", question="What were Apple's net sales?", evidence=evidence, facts=["81,797"])


def test_page_hit_is_one_when_any_labelled_page_is_retrieved() -> None:
    scores = score_item(labelled(("2023 Q3 AAPL.pdf", 4), ("2023 Q3 AAPL.pdf", 20)), HITS)
    assert scores["page_recall"] == 0.5
    assert scores["page_hit"] == 1.0


def test_the_right_page_of_the_wrong_filing_is_a_miss() -> None:
    scores = score_item(labelled(("2023 Q1 AAPL.pdf", 4)), HITS)
    assert scores["page_hit"] == 0.0 and scores["page_recall"] == 0.0


def test_page_metrics_are_absent_without_page_labels() -> None:
    item = QAItem(id="q", question="Net sales?", evidence=[Evidence(doc="2023 Q3 AAPL.pdf")])
    scores = score_item(item, HITS)
    assert scores["page_hit"] is None and scores["page_recall"] is None and scores["doc_hit"] == 1.0


def test_run_eval_averages_page_hit_over_labelled_questions_only() -> None:
    items = [
        labelled(("2023 Q3 AAPL.pdf", 9)),  # found at rank 2: a hit at k=2, a miss at k=1
        labelled(("2023 Q1 AAPL.pdf", 4)),  # never found
        QAItem(id="u", question="Unlabelled?", evidence=[Evidence(doc="2023 Q3 AAPL.pdf")]),
    ]
    at_1 = run_eval(items, lambda _question: HITS, k=1)
    at_2 = run_eval(items, lambda _question: HITS, k=2)
    assert at_1["page_hit_at_1"] == 0.0 and at_2["page_hit_at_2"] == 0.5
    assert at_2["n_with_pages"] == 2
