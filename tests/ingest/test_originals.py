"""Originals kept at ingestion: content-addressed, owner-only, written once, checked on reading."""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path

import pytest

from strongroom.errors import StoreError
from strongroom.ingest.originals import keep_original, read_original
from strongroom.ingest.pipeline import IngestOptions, ingest
from strongroom.store.sqlite import SqliteStore
from strongroom.testing import HashEmbedder
from tests.ingest.pdf_fixtures import make_pdf


def _store(home: Path, embedder: HashEmbedder) -> SqliteStore:
    return SqliteStore(home, model_id=embedder.model_id, dim=embedder.dim)


def test_ingest_keeps_each_new_original_once_by_its_sha256(tmp_path: Path, embedder: HashEmbedder) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    pdf = make_pdf(["Total net sales 81,797 82,959"])
    (docs / "q3.pdf").write_bytes(pdf)
    (docs / "copy.pdf").write_bytes(pdf)  # the same bytes under another name: kept once
    (docs / "notes.txt").write_text("Quarterly revenue was 1,234 million.\n")
    originals = tmp_path / "home" / "originals"
    store = _store(tmp_path / "home", embedder)
    report = ingest([docs], store, embedder, IngestOptions(originals=originals))
    assert report.ok and report.ingested == 2 and report.duplicates == 1
    sha = hashlib.sha256(pdf).hexdigest()
    kept = sorted(p.name for p in originals.iterdir())
    assert sha in kept and len(kept) == 2  # the PDF and the text file, no temporary files left
    assert stat.S_IMODE((originals / sha).stat().st_mode) == 0o600
    assert stat.S_IMODE(originals.stat().st_mode) == 0o700
    assert read_original(originals, sha) == pdf


def test_library_callers_without_a_folder_keep_nothing(tmp_path: Path, embedder: HashEmbedder) -> None:
    (tmp_path / "q3.pdf").write_bytes(make_pdf(["Net income 19,881"]))
    report = ingest([tmp_path / "q3.pdf"], _store(tmp_path / "home", embedder), embedder, IngestOptions())
    assert report.ingested == 1
    assert not (tmp_path / "home" / "originals").exists()


def test_a_redacted_version_keeps_no_original(tmp_path: Path, embedder: HashEmbedder) -> None:
    # the file still holds what its stored text had redacted: an image of it would show the secret
    doc = tmp_path / "wire.txt"
    doc.write_text("Wire instructions.\nPay card 4111 1111 1111 1111 by Friday.\n")
    originals = tmp_path / "originals"
    report = ingest([doc], _store(tmp_path / "home", embedder), embedder, IngestOptions(originals=originals))
    assert report.ingested == 1
    assert not originals.exists() or not any(originals.iterdir())


def test_a_tampered_original_is_refused_on_reading(tmp_path: Path) -> None:
    source = tmp_path / "q3.pdf"
    source.write_bytes(make_pdf(["Net income 19,881"]))
    sha = hashlib.sha256(source.read_bytes()).hexdigest()
    assert keep_original(tmp_path / "originals", source, sha) is True
    assert keep_original(tmp_path / "originals", source, sha) is False  # already there: untouched
    kept = tmp_path / "originals" / sha
    kept.write_bytes(kept.read_bytes().replace(b"19,881", b"91,881"))
    with pytest.raises(StoreError, match="does not match its SHA-256 name"):
        read_original(tmp_path / "originals", sha)
    assert read_original(tmp_path / "originals", "0" * 64) is None


def test_a_file_changed_after_parsing_is_not_kept(tmp_path: Path) -> None:
    source = tmp_path / "q3.pdf"
    source.write_bytes(b"%PDF-1.7 new bytes")
    stale = hashlib.sha256(b"%PDF-1.7 the bytes that were parsed").hexdigest()
    with pytest.raises(Exception, match="changed while it was ingested"):
        keep_original(tmp_path / "originals", source, stale)
    assert list((tmp_path / "originals").iterdir()) == []


def test_a_name_that_is_not_a_version_id_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="not a version id"):
        read_original(tmp_path, "../catalog.sqlite3")
