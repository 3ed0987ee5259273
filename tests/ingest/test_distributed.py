"""Bulk ingestion on a local Ray: the store's content equals the single-process path's."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from strongroom.config import Settings
from strongroom.ingest.pipeline import IngestOptions, ingest
from strongroom.runtime import open_runtime

ray = pytest.importorskip("ray", reason="Ray is not installed: pip install 'ray[data]'")
pytestmark = pytest.mark.integration


def _content(home: Path, job_id: str) -> dict[str, list[tuple[object, ...]]]:
    """Everything stored except the ingestion time and the job (which differ between the two
    runs); every version names ``job_id``, the job that wrote it."""
    with sqlite3.connect(home / "catalog.sqlite3") as db:
        versions = db.execute(
            "SELECT id, document_id, source, title, media_type, doc_type, acl, published_at, size, pages, metadata "
            "FROM versions ORDER BY id"
        ).fetchall()
        metadata = [json.loads(v[-1]) for v in versions]
        assert [m.pop("ingest_job") for m in metadata] == [job_id] * len(versions)
        return {
            "versions": [(*v[:-1], m) for v, m in zip(versions, metadata, strict=True)],
            "pages": db.execute("SELECT version_id, page, text FROM pages ORDER BY version_id, page").fetchall(),
            "chunks": db.execute(
                "SELECT c.id, v.id, c.ordinal, c.page, c.char_start, c.char_end, c.text, c.context, c.embed_key "
                "FROM chunks c JOIN versions v ON v.seq = c.version_seq ORDER BY c.id"
            ).fetchall(),
            "vectors": db.execute("SELECT key, model, vector FROM embeddings ORDER BY key").fetchall(),
        }


def test_ray_ingestion_stores_what_the_single_process_path_stores(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "rates.md").write_text("# Rates desk\nThe 2031 senior notes pay a 4.25% coupon.\n\nIssued at 99.412.")
    (docs / "sales.csv").write_text("Item,Q3 2022,Q3 2021\nTotal net sales,82959,81434\nServices,19604,17486\n")
    (docs / "memo.txt").write_text("Credit memo. The borrower's leverage fell to 2.1x after the disposal.")
    (docs / "broken.pdf").write_bytes(b"%PDF-1.7 not really")
    options = IngestOptions(acl=frozenset({"research"}), source="desk")
    results = {}
    for mode in ("single", "ray"):
        settings = Settings(home=tmp_path / mode)  # the bundled MiniLM: vectors must match byte for byte
        runtime = open_runtime(settings)
        try:
            if mode == "single":
                report = ingest([docs], runtime.store, runtime.embedder, options)
            else:
                from strongroom.ingest.distributed import ingest_with_ray

                report = ingest_with_ray([docs], runtime.store, settings, options, address="local", workers=2)
                again = ingest_with_ray([docs], runtime.store, settings, options, address="local", workers=2)
                assert again.duplicates == 3 and again.ingested == 0  # known bytes never reach Ray
        finally:
            runtime.close()
        results[mode] = report
    single, distributed = results["single"], results["ray"]
    assert (distributed.ingested, len(distributed.failures)) == (single.ingested, len(single.failures)) == (3, 1)
    assert "broken.pdf" in distributed.failures[0].path and distributed.failures[0].error == single.failures[0].error
    assert _content(tmp_path / "ray", distributed.job_id) == _content(tmp_path / "single", single.job_id)
