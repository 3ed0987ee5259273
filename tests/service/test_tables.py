"""The tables of a stored version through the application layer: found in the stored page
text (their cells' spans index it, as citations do), read as the page is read (role, clocks,
entitlements: a version the principal may not read is NotFound exactly as one that does not
exist), and audited with one record that holds no document text (through the sync facade,
:class:`~strongroom.service.Platform`, over a real store)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from strongroom.config import Settings
from strongroom.errors import NotFound
from strongroom.service import IngestRequest, Platform, View
from strongroom.service.tables import TABLES_ACTION
from strongroom.testing import HashEmbedder
from strongroom.types import Principal

AAPL = Path(__file__).resolve().parents[2].parent / "shared" / "corpus" / "sec10q" / "docs" / "2023 Q3 AAPL.pdf"
ana = Principal("ana", frozenset({"research"}), frozenset({"reader"}))
eve = Principal("eve", frozenset({"public"}), frozenset({"reader"}))  # a reader, not of research documents


@dataclass
class Stored:
    platform: Platform
    versions: dict[str, tuple[str, str]]  # file name -> (document id, version id)


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stored]:
    if not AAPL.is_file():
        pytest.skip(f"the sec10q corpus is not at {AAPL.parent}")
    files = tmp_path_factory.mktemp("files")
    (files / "terms.csv").write_text('Field,Value\nCoupon,4.25%\nIssue price,99.412%\nNotional,"750,000,000"\n')
    settings = Settings(home=tmp_path_factory.mktemp("home"), embedder="hash")
    with Platform.open(settings, embedder=HashEmbedder(64)) as p:
        root = p.principal("root", ["research"])
        request = IngestRequest(paths=(AAPL, files / "terms.csv"), acl=frozenset({"research"}), published="2023-08-04")
        report = p.ingest(root, request)
        assert report.ingested == 2, report
        yield Stored(p, {Path(f.path).name: (f.document_id, f.version_id) for f in report.files})


def test_an_income_statement_is_found_in_the_stored_text_of_a_filing(stored: Stored) -> None:
    doc, version = stored.versions[AAPL.name]
    found = stored.platform.tables(ana, doc, version)
    assert found.version.id == version and found.tables
    sales = next(row for t in found.tables if t.page == 4 for row in t.rows if row[0].text == "Total net sales")
    assert sales[1].number == 81797.0 and sales[1].text == "81,797"
    # every cell's span indexes the page text a citation points into
    text = stored.platform.page(ana, doc, version, 4).text
    assert all(text[c.start : c.end] == c.text for c in sales)
    index = found.tables.index(next(t for t in found.tables if sales in t.rows))
    assert stored.platform.tables(ana, doc, version, index=index).table == found.tables[index]


def test_a_pipe_table_keeps_its_header(stored: Stored) -> None:
    (table,) = stored.platform.tables(ana, *stored.versions["terms.csv"]).tables
    assert table.kind == "pipe" and table.header == ("Field", "Value")
    assert [c.text for c in table.rows[0]] == ["Coupon", "4.25%"]


def _refusal(platform: Platform, who: Principal, doc: str, version: str, **more: object) -> str:
    with pytest.raises(NotFound) as refused:
        platform.tables(who, doc, version, **more)  # type: ignore[arg-type]
    return str(refused.value)


def test_an_outsider_gets_the_refusal_of_a_version_that_does_not_exist(stored: Stored) -> None:
    doc, version = stored.versions[AAPL.name]
    outsider = _refusal(stored.platform, eve, doc, version)
    assert outsider == _refusal(stored.platform, ana, doc, "f" * 64)
    assert outsider == _refusal(stored.platform, ana, "0" * 64, version)
    assert outsider == _refusal(stored.platform, eve, doc, version, index=0)
    # the clocks: before it was published, it was not there
    assert outsider == _refusal(stored.platform, ana, doc, version, view=View(as_of="2023-01-01"))


def test_a_table_past_the_last_is_not_found(stored: Stored) -> None:
    doc, version = stored.versions["terms.csv"]
    assert "has 1 tables" in _refusal(stored.platform, ana, doc, version, index=1)
    assert "has 1 tables" in _refusal(stored.platform, ana, doc, version, index=-1)


def test_each_read_is_one_audit_record_without_document_text(stored: Stored, caplog: pytest.LogCaptureFixture) -> None:
    p = stored.platform
    doc, version = stored.versions[AAPL.name]
    before = p.audit.head().seq
    with caplog.at_level(logging.INFO):
        count = len(p.tables(ana, doc, version).tables)
        p.tables(ana, doc, version, index=0)
        with pytest.raises(NotFound):
            p.tables(eve, doc, version)
    stored_records = list(p.audit.read(before, 100))
    records = [r.event() for r in stored_records]
    assert [(r["action"], r["principal"], r["outcome"]) for r in records] == [
        (TABLES_ACTION, "ana", "ok"),
        (TABLES_ACTION, "ana", "ok"),
        (TABLES_ACTION, "eve", "not_found"),
    ]
    assert {r["target"] for r in records} == {f"{doc}/{version}"}
    assert [r["detail"] for r in records[:2]] == [f"{count} tables", f"table 0 of {count}"]
    kept = "".join(r.body + (r.erasable or "") for r in stored_records) + caplog.text
    assert "81,797" not in kept and "Total net sales" not in kept
