from __future__ import annotations

from pathlib import Path

import pytest

from strongroom.ingest.parsers import parse
from strongroom.ingest.understand.classify import DOC_TYPES, classify, classify_text, confusion_matrix
from strongroom.ingest.understand.core import understand
from strongroom.ingest.understand.synth import generate
from strongroom.types import Page, ParsedDocument

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "corpus"
SEC10Q = SHARED / "sec10q" / "docs"
EARNINGS = SHARED / "earnings21" / "transcripts"


def _doc(text: str) -> ParsedDocument:
    return ParsedDocument((Page(1, text),), "text/plain")


@pytest.mark.slow
def test_every_sec10q_filing_is_a_public_regulatory_filing() -> None:
    if not SEC10Q.is_dir():
        pytest.skip(f"the sec10q corpus is not at {SEC10Q}")
    pdfs = sorted(SEC10Q.glob("*.pdf"))
    assert len(pdfs) == 20
    results = {p.name: understand(parse(p.read_bytes(), p.name), p.name) for p in pdfs}
    assert {name: u.doc_type for name, u in results.items() if u.doc_type != "regulatory_filing"} == {}
    assert all(u.confidence >= 0.7 for u in results.values())
    # A public filing stays public and nothing in it is redacted (no false-positive secrets).
    assert {name: u.sensitivity for name, u in results.items() if u.sensitivity != "public"} == {}
    assert {name: len(u.redacted) for name, u in results.items() if u.redacted} == {}


def test_every_earnings_call_is_a_transcript() -> None:
    if not EARNINGS.is_dir():
        pytest.skip(f"the earnings21 corpus is not at {EARNINGS}")
    files = sorted(EARNINGS.glob("*.txt"))
    assert files
    wrong = {
        p.name: c.doc_type
        for p in files
        if (c := classify(parse(p.read_bytes(), p.name), p.name)).doc_type != "earnings_call_transcript"
    }
    assert wrong == {}


def test_generated_term_sheets_are_term_sheets_in_every_layout_and_format() -> None:
    sheets = generate(24, seed=5)
    assert {(s.layout, s.format) for s in sheets} == {(la, f) for la in ("table", "bullets", "prose")
                                                     for f in ("pdf", "docx", "html", "txt")}  # fmt: skip
    assert [classify(parse(s.data, s.name), s.name).doc_type for s in sheets] == ["term_sheet"] * 24


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Dear Mr Smith,\nThank you for your letter.\n\nKind regards,\nAnn", "correspondence"),
        ("Equity Research\nRating: Overweight\nPrice target: $210\nWe reiterate our view.", "research_report"),
        ("BASE PROSPECTUS\nRisk Factors\nUse of Proceeds\nPlan of Distribution\nUse of proceeds", "prospectus"),
        ("Shopping list: apples, pears.", "other"),
    ],
)
def test_rules_for_other_types(text: str, expected: str) -> None:
    result = classify_text(text)
    assert result.doc_type == expected
    assert 0.5 <= result.confidence <= 1.0
    if expected != "other":
        assert result.evidence and all(e.startswith(expected + ":") for e in result.evidence)


def test_confusion_matrix_counts_truth_by_prediction() -> None:
    matrix = confusion_matrix([("term_sheet", "term_sheet"), ("term_sheet", "other"), ("other", "other")])
    ts, other = DOC_TYPES.index("term_sheet"), DOC_TYPES.index("other")
    assert matrix[ts][ts] == 1 and matrix[ts][other] == 1 and matrix[other][other] == 1
    assert sum(map(sum, matrix)) == 3


def test_empty_document_is_other() -> None:
    assert classify(ParsedDocument((), "text/plain")).doc_type == "other"
