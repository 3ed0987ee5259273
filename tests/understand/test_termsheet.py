from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from pathlib import Path

from strongroom.ingest.parsers import parse
from strongroom.ingest.understand.evaluate import evaluate_directory, score
from strongroom.ingest.understand.synth import generate, write_corpus
from strongroom.ingest.understand.termsheet import Amount, extract_termsheet, fields_as_metadata
from strongroom.types import Page, ParsedDocument

SHEET = """INDICATIVE TERM SHEET: PHOENIX AUTOCALLABLE NOTES
Issuer | Goldman Sachs International
Guarantor | The Goldman Sachs Group, Inc.
ISIN | US0378331005
CUSIP | 037833100
Aggregate Nominal Amount | USD 25,000,000
Issue Price | 100.00%
Trade Date | 15 March 2024
Issue Date | March 22, 2024
Maturity Date | 2029-03-22
Coupon Rate | 8.50% per annum
Coupon Frequency | Quarterly
Underlying | S&P 500 Index and Russell 2000 Index
Knock-in Barrier | 60.00% of the Initial Level
Autocall Trigger Level | 100% of the Initial Level
Governing Law | English law
"""


def _doc(text: str) -> ParsedDocument:
    return ParsedDocument((Page(1, text),), "text/plain")


def test_fields_are_typed_with_spans_that_point_at_the_value() -> None:
    fields = {f.name: f for f in extract_termsheet(_doc(SHEET))}
    assert fields["maturity_date"].value == date(2029, 3, 22)
    assert fields["issue_date"].value == date(2024, 3, 22)
    assert fields["notional"].value == Amount("USD", Decimal(25_000_000))
    assert fields["coupon_rate"].value == 8.5
    assert fields["barrier_level"].value == 60.0
    assert fields["underlying"].value == ("S&P 500 Index", "Russell 2000 Index")
    assert fields["product_type"].value == "autocallable"
    assert fields["payment_frequency"].value == "quarterly"
    assert fields["governing_law"].value == "England"
    assert fields["currency"].value == "USD"  # from the notional, with a lower confidence
    assert fields["currency"].confidence < fields["isin"].confidence
    for f in fields.values():
        assert SHEET[f.start : f.end] == f.text
        assert 0.5 < f.confidence <= 1.0


def test_absent_fields_are_absent_and_bad_check_digits_are_not_extracted() -> None:
    text = "Term Sheet\nISIN: US0378331006\nCUSIP: 037833101\nMaturity Date: to be confirmed\nIssuer: Acme Bank"
    names = {f.name for f in extract_termsheet(_doc(text))}
    assert names == {"issuer"}


def test_floating_rate_gives_index_and_spread_in_percent() -> None:
    fields = {f.name: f.value for f in extract_termsheet(_doc("Floating Rate: 3M EURIBOR + 85 bps\n"))}
    assert fields == {"floating_index": "EURIBOR", "floating_spread": 0.85}


def test_prose_term_sheet() -> None:
    text = (
        'This term sheet describes Fixed Rate Notes (the "Notes"). The Notes are issued by BNP Paribas Issuance '
        'B.V. (the "Issuer"). The ISIN of the Notes is XS0000000008. The Maturity Date is 1 June 2030. The Notes '
        "bear a Coupon Rate of 4.75 per cent. per annum. The Notes are governed by the laws of Germany."
    )
    fields = {f.name: f.canonical for f in extract_termsheet(_doc(text))}
    assert fields["issuer"] == "BNP Paribas Issuance B.V."
    assert fields["maturity_date"] == "2030-06-01"
    assert fields["coupon_rate"] == "4.75"
    assert fields["governing_law"] == "Germany"
    assert fields["product_type"] == "fixed_rate_note"
    assert "isin" not in fields  # XS0000000008 has a wrong check digit


def test_metadata_keys_are_prefixed_canonical_strings() -> None:
    meta = fields_as_metadata(extract_termsheet(_doc(SHEET)))
    assert meta["ts.maturity_date"] == "2029-03-22"
    assert meta["ts.notional"] == "USD 25000000.00"
    assert meta["ts.underlying"] == "S&P 500 Index; Russell 2000 Index"


def test_generator_is_reproducible_and_seed_dependent() -> None:
    a, b, c = generate(6, seed=3), generate(6, seed=3), generate(6, seed=4)
    assert [s.data for s in a] == [s.data for s in b]
    assert [s.truth for s in a] != [s.truth for s in c]


def test_extraction_meets_the_bar_on_every_layout_and_format(tmp_path: Path) -> None:
    # A small corpus keeps the test quick; the 200+ document figure is in the benchmark.
    write_corpus(tmp_path, 36, seed=101)
    result = evaluate_directory(tmp_path)
    assert result.documents == 36
    assert result.micro_precision >= 0.95, result.errors[:10]
    assert result.micro_recall >= 0.90, result.errors[:10]
    truth = json.loads(next(tmp_path.glob("*.truth.json")).read_text())
    assert {"layout", "format", "product", "fields"} <= set(truth)


def test_score_counts_a_wrong_value_as_both_fp_and_fn() -> None:
    result = score([({"isin": "A", "cusip": "X"}, {"isin": "B", "currency": "USD"})])
    assert (result.fields["isin"].fp, result.fields["isin"].fn) == (1, 1)
    assert result.fields["cusip"].fp == 1 and result.fields["currency"].fn == 1
    assert result.micro_precision == 0.0


def test_every_generated_value_parses_back_from_its_own_file() -> None:
    for sheet in generate(12, seed=202):
        predicted = {f.name: f.canonical for f in extract_termsheet(parse(sheet.data, sheet.name))}
        missing = {k: v for k, v in sheet.truth.items() if predicted.get(k) != v}
        assert len(missing) <= 1, (sheet.name, missing)
