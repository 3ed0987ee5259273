from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from strongroom.ingest.pipeline import IngestOptions, ingest
from strongroom.store.sqlite import SqliteStore
from strongroom.testing import HashEmbedder
from strongroom.types import Scope

PUBLIC = Scope(frozenset({"public"}))


def _store(home: Path, embedder: HashEmbedder) -> SqliteStore:
    return SqliteStore(home, model_id=embedder.model_id, dim=embedder.dim)


def test_mixed_batch_with_bad_files_keeps_going(tmp_path: Path, embedder: HashEmbedder) -> None:
    docs = tmp_path / "docs"
    (docs / "sub").mkdir(parents=True)
    (docs / "notes.txt").write_text("Quarterly revenue was 1,234 million.\n")
    (docs / "sub" / "report.md").write_text("# Outlook\nWe expect margin expansion next year.\n")
    (docs / "page.html").write_text(
        "<html><title>Desk</title><body><p>Coupon of 5.25% paid semi-annually.</p></body></html>"
    )
    (docs / "table.csv").write_text("item,q1,q2\nRevenue,100,120\nCosts,50,55\n")
    (docs / "broken.pdf").write_bytes(b"%PDF-1.7\nthis is not really a pdf")
    (docs / "empty.txt").write_text("")
    (docs / "program.exe").write_bytes(b"MZ\x00\x01")
    (docs / "big.txt").write_text("x" * 5000)
    store = _store(tmp_path / "home", embedder)
    report = ingest([docs, tmp_path / "missing"], store, embedder, IngestOptions(max_file_bytes=4000))
    assert report.ingested == 4
    failed = {Path(f.path).name: f.error for f in report.failures}
    assert set(failed) == {"broken.pdf", "empty.txt", "program.exe", "big.txt", "missing"}
    assert "unsupported file type .exe" in failed["program.exe"]
    assert "limit" in failed["big.txt"]
    assert "no such file" in failed["missing"]
    assert not report.ok
    assert all(report.seconds[s] >= 0 for s in ("parse", "chunk", "embed", "index"))
    # what was ingested is searchable, and a rerun is a no-op
    assert store.keyword_search("coupon semi-annually", PUBLIC, 3)
    again = ingest([docs], store, embedder, IngestOptions(max_file_bytes=4000))
    assert again.ingested == 0 and again.duplicates == 4
    assert store.counts()["versions"] == 4


def test_new_bytes_make_a_new_version_and_old_stays_for_as_of(tmp_path: Path, embedder: HashEmbedder) -> None:
    doc = tmp_path / "guidance.txt"
    store = _store(tmp_path / "home", embedder)
    before = datetime.now(UTC)
    time.sleep(0.01)
    doc.write_text("Full-year guidance: revenue of 100.")
    ingest([doc], store, embedder, IngestOptions(published=datetime(2024, 1, 1, tzinfo=UTC)))
    between = datetime.now(UTC)
    time.sleep(0.01)
    doc.write_text("Full-year guidance: revenue of 140.")
    ingest([doc], store, embedder, IngestOptions(published=datetime(2024, 4, 1, tzinfo=UTC)))
    versions = store.versions()
    assert len(versions) == 2 and len({v.document_id for v in versions}) == 1

    def text(scope: Scope) -> str:
        ((cid, _),) = store.keyword_search("guidance revenue", scope, 5)
        return store.fetch([cid])[0][0].text

    assert text(PUBLIC).endswith("140.")
    # what the platform held between the two ingestions (an audit replay)
    assert text(Scope(frozenset({"public"}), known_at=between)).endswith("100.")
    # a back-test: published by February 2024, whenever it was loaded
    feb = datetime(2024, 2, 1, tzinfo=UTC)
    assert text(Scope(frozenset({"public"}), as_of=feb)).endswith("100.")
    # no look-ahead: before either was ingested, nothing is visible
    assert store.keyword_search("guidance", Scope(frozenset({"public"}), as_of=feb, known_at=before), 5) == []


def test_options_are_recorded(tmp_path: Path, embedder: HashEmbedder) -> None:
    doc = tmp_path / "ts.txt"
    doc.write_text("Issuer: Example Bank. Coupon 4%.")
    store = _store(tmp_path / "home", embedder)
    ingest(
        [doc],
        store,
        embedder,
        IngestOptions(acl=frozenset({"rates"}), doc_type="term_sheet", source="dealer", meta={"desk": "rates"}),
    )
    (v,) = store.versions()
    assert v.acl == {"rates"} and v.doc_type == "term_sheet"
    assert v.metadata["desk"] == "rates" and v.metadata["source"] == "dealer"
    assert v.source == "dealer/ts.txt"
    assert store.keyword_search("coupon", PUBLIC, 5) == []
    assert store.keyword_search("coupon", Scope(frozenset({"rates"})), 5)


def test_kill_9_mid_batch_then_rerun_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    n = 300
    for i in range(n):
        (docs / f"note{i:03}.txt").write_text(f"Note {i}. " + "Revenue and margin commentary. " * 200)
    home = tmp_path / "home"
    env = {**os.environ, "STRONGROOM_EMBEDDER": "hash", "STRONGROOM_HOME": str(home)}
    cmd = [sys.executable, "-m", "strongroom.cli", "ingest", str(docs), "--json"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    stored = 0
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with sqlite3.connect(home / "catalog.sqlite3", timeout=1) as db:
                stored = db.execute("SELECT COUNT(*) FROM versions").fetchone()[0]
        except sqlite3.Error:
            stored = 0
        if stored >= 20:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "ingestion finished before it could be killed; make the batch bigger"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert 20 <= stored < n
    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    with sqlite3.connect(home / "catalog.sqlite3") as db:
        assert db.execute("SELECT COUNT(*), COUNT(DISTINCT id) FROM versions").fetchone() == (n, n)
        assert (
            db.execute("SELECT COUNT(*) FROM chunks WHERE version_seq NOT IN (SELECT seq FROM versions)").fetchone()[0]
            == 0
        )
        per_version = db.execute(
            "SELECT v.id, COUNT(c.row) FROM versions v LEFT JOIN chunks c ON c.version_seq = v.seq GROUP BY v.id"
        ).fetchall()
        assert len({count for _, count in per_version}) == 1  # identical notes -> identical chunk counts: none partial
        assert db.execute("SELECT COUNT(*) FROM pages").fetchone()[0] == n


@pytest.mark.slow
def test_real_filings_end_to_end(tmp_path: Path, sec10q: Path, embedder: HashEmbedder) -> None:
    store = _store(tmp_path / "home", embedder)
    report = ingest([sec10q / "docs" / "2022 Q3 AAPL.pdf"], store, embedder, IngestOptions())
    assert report.ok and report.pages == 28 and report.chunks > 50
    (v,) = store.versions()
    assert v.doc_type == "regulatory_filing" and "Apple Inc." in v.title and "10-Q" in v.title
    assert v.published_at.date().isoformat() == "2022-07-29"
    assert store.keyword_search("Apple total net sales", PUBLIC, 5)
    hits = store.fetch([c for c, _ in store.keyword_search("total net sales products services", PUBLIC, 5)])
    assert any("82,959" in c.text for c, _ in hits)
    for chunk, version in hits:
        assert store.page_text(version.id, chunk.page)[chunk.char_start : chunk.char_end] == chunk.text  # type: ignore[index]
