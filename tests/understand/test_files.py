"""Understanding over files on disk, and term sheets and tables as records."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from strongroom.config import Settings
from strongroom.errors import QueryError
from strongroom.ingest.understand.files import classify_files, evaluate_classifier, files_in
from strongroom.ingest.understand.tables import extract_tables
from strongroom.ingest.understand.termsheet import select_term_sheets
from strongroom.types import DocumentVersion, Page, ParsedDocument, frozen_meta


def test_folders_expand_to_the_files_strongroom_parses_and_a_missing_path_is_bad_input(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("Alpha.\n")
    (tmp_path / "b.exe").write_bytes(b"MZ")
    assert files_in([tmp_path]) == [tmp_path / "a.txt"]
    with pytest.raises(QueryError, match="no such file or folder"):
        files_in([tmp_path / "nope"])


def test_the_rules_are_scored_on_a_labelled_folder(tmp_path: Path) -> None:
    letters = tmp_path / "labelled" / "correspondence"
    letters.mkdir(parents=True)
    for i in range(3):
        (letters / f"letter{i}.txt").write_text(f"Dear client {i},\nthank you for your letter.\nKind regards,\nDesk\n")
    settings = Settings(home=tmp_path / "home")
    found = evaluate_classifier(tmp_path / "labelled", settings)
    assert (found.accuracy, found.documents, found.labels, found.matrix) == (1.0, 3, ["correspondence"], [[3]])
    assert found.rows() == [{"truth": "correspondence", "correspondence": 3}]
    assert classify_files([letters / "letter0.txt"], settings)[0]["doc_type"] == "correspondence"
    with pytest.raises(QueryError, match="no labelled documents"):
        evaluate_classifier(letters, settings)


def test_table_records_are_keyed_by_header_else_by_column_number() -> None:
    text = "item | q1 | q1\nRevenue | 100 | 120\nCosts | 50 | (55)"
    doc = ParsedDocument((Page(1, text),), "text/csv")
    table = extract_tables(doc)[0]
    assert table.records() == [
        {"item": "Revenue", "q1 (1)": "100", "q1 (2)": "120"},
        {"item": "Costs", "q1 (1)": "50", "q1 (2)": "(55)"},
    ]
    assert table.summary() == {"page": 1, "kind": "pipe", "rows": 2, "columns": 3, "first": ["Revenue", "100", "120"]}
    cell = table.as_dict(cells=True)["cells"][1][2]
    assert (cell["text"], cell["number"], cell["page"]) == ("(55)", -55.0, 1)
    assert text[cell["start"] : cell["end"]] == "(55)"


def _version(name: str, doc_type: str, **fields: str) -> DocumentVersion:
    at = datetime(2024, 1, 1, tzinfo=UTC)
    return DocumentVersion(
        id=name * 8, document_id=name, source=name, title=name, media_type="text/plain", doc_type=doc_type,
        acl=frozenset({"public"}), published_at=at, ingested_at=at, size=1, pages=1,
        metadata=frozen_meta({f"ts.{k}": v for k, v in fields.items()}),
    )  # fmt: skip


def test_term_sheets_are_selected_by_underlying_and_maturity() -> None:
    versions = [
        _version("a", "term_sheet", underlying="Apple; Tesla", maturity_date="2027-01-01"),
        _version("b", "term_sheet", underlying="Tesla", maturity_date="2031-01-01"),
        _version("c", "other", maturity_date="2026-01-01"),  # not typed a term sheet, but has its fields
        _version("d", "research"),
    ]
    assert [r["document"] for r in select_term_sheets(versions)] == ["a", "b", "c"]
    assert [r["document"] for r in select_term_sheets(versions, underlying="tesla")] == ["a", "b"]
    assert [r["document"] for r in select_term_sheets(versions, maturing_before="2030-01-01")] == ["a", "c"]
    with pytest.raises(QueryError, match="not a date"):
        select_term_sheets(versions, maturing_before="2030-13-01")
