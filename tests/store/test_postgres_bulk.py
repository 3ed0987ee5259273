"""The PostgreSQL bulk loader: the same store as single writes, indexes that always come back."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import numpy as np
import psycopg
import pytest

from strongroom.errors import StoreError
from strongroom.service.transfer import content_digest
from strongroom.store.base import NewVersion
from strongroom.store.postgres import PostgresStore
from strongroom.store.postgres_bulk import MARKER, bulk_load, drop_indexes, recover_interrupted_load
from strongroom.testing import HashEmbedder
from strongroom.testing.builders import make_version
from strongroom.types import Scope
from tests.store.conftest import fresh_database

pytestmark = pytest.mark.integration

DEFERRED = {"chunks_embedding", "chunk_postings_pkey", "chunk_postings_row", "line_postings_pkey", "line_postings_row"}
BOTH = Scope(frozenset({"public", "desk"}))
WORDS = ["revenue", "margin", "guidance", "cash", "debt", "coupon", "notes", "spread"]


def _corpus(embedder: HashEmbedder, n: int = 24) -> list[NewVersion]:
    """Versions with prose and table rows, two ACLs, and later versions of some sources."""
    rng = np.random.default_rng(3)
    day = datetime(2024, 1, 1, tzinfo=UTC)
    out = []
    for i in range(n):
        pages = [
            " ".join(rng.choice(WORDS, 8)) + f" report {i}.\nTotal {WORDS[i % 8]} {i},{i + 100} {i + 7}.5",
            f"# {WORDS[(i * 3) % 8].title()} outlook\n" + " ".join(rng.choice(WORDS, 12)) + ".",
        ]
        out.append(
            make_version(
                embedder, f"d{i % 17}.txt", pages, acl=["desk"] if i % 5 == 0 else ["public"],
                published=day + timedelta(days=i), ingested=day + timedelta(days=i),
            )
        )  # fmt: skip
    return out


def _indexes(url: str) -> set[str]:
    with psycopg.connect(url) as db:
        return {str(r[0]) for r in db.execute("SELECT indexname FROM pg_indexes WHERE schemaname = 'public'")}


def _marked(url: str) -> bool:
    with psycopg.connect(url) as db:
        return db.execute("SELECT 1 FROM meta WHERE key = %s", (MARKER,)).fetchone() is not None


def _bm25_tables(url: str) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    with psycopg.connect(url) as db:
        stats = db.execute("SELECT unit, n_docs, total_len FROM bm25_stats ORDER BY unit").fetchall()
        df = db.execute("SELECT unit, term, df FROM bm25_df ORDER BY unit, term").fetchall()
    return stats, df


def test_a_bulk_load_stores_what_single_writes_store(
    pg: PostgresStore, database_url: str, server_url: str, embedder: HashEmbedder
) -> None:
    versions = _corpus(embedder)
    one_by_one_url = fresh_database(server_url)
    single = PostgresStore(one_by_one_url, model_id=embedder.model_id, dim=embedder.dim)
    lines: list[str] = []
    try:
        for v in versions:
            single.write(v)
        report = bulk_load(pg, iter(versions), batch_chunks=7, progress=lines.append)  # several batches
        assert (report.written, report.skipped) == (24, 0)
        assert report.chunks == sum(len(v.chunks) for v in versions) and report.index_s > 0
        assert content_digest(pg.iter_versions()) == content_digest(single.iter_versions())
        assert _bm25_tables(database_url) == _bm25_tables(one_by_one_url)  # statistics exact across batches
        for query in ("revenue guidance", "total cash", "coupon outlook", "spread 12"):
            for scope in (BOTH, Scope(frozenset({"desk"}))):
                for unit in ("chunk", "line"):
                    assert pg.keyword_search(query, scope, 20, unit) == single.keyword_search(query, scope, 20, unit)
                vector = embedder.embed([query])[0]
                assert pg.vector_search(vector, scope, 5) == single.vector_search(vector, scope, 5)
        np.testing.assert_array_equal(pg.get_vectors([versions[3].embed_keys[0]])[versions[3].embed_keys[0]],
                                      versions[3].vectors[0])  # fmt: skip
    finally:
        single.close()
    assert DEFERRED <= _indexes(database_url) and not _marked(database_url)
    assert any("building index chunks_embedding" in line for line in lines)
    assert any("chunks written" in line for line in lines)


def test_what_is_stored_is_skipped_and_a_live_store_keeps_its_indexes(
    pg: PostgresStore, database_url: str, embedder: HashEmbedder
) -> None:
    first, second, third = _corpus(embedder, 3)
    pg.write(first)
    report = bulk_load(pg, [first, second, second, third])
    assert (report.written, report.skipped, report.index_s) == (2, 2, 0.0)  # not empty: indexes kept
    assert pg.counts()["versions"] == 3 and DEFERRED <= _indexes(database_url)
    assert pg.write_many([first, third]) == 0


def test_a_bad_version_stops_the_load_keeps_earlier_batches_and_restores_the_indexes(
    pg: PostgresStore, database_url: str, embedder: HashEmbedder
) -> None:
    good, later, after = _corpus(embedder, 3)
    bad = NewVersion(later.version, later.pages, later.chunks, later.vectors[:, :5], later.embed_keys)
    with pytest.raises(StoreError, match="vectors of shape"):
        bulk_load(pg, [good, bad, after], batch_chunks=1)
    assert [v.id for v in pg.versions()] == [good.version.id]
    assert DEFERRED <= _indexes(database_url) and not _marked(database_url)
    assert pg.keyword_search("report", BOTH, 5)


def test_only_one_bulk_load_runs_at_a_time(pg: PostgresStore, database_url: str, embedder: HashEmbedder) -> None:
    with psycopg.connect(database_url, autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(%s)", (0x5354524F4E47 + 1,))
        with pytest.raises(StoreError, match="another bulk load is running"):
            bulk_load(pg, _corpus(embedder, 2))
        # and a store opened meanwhile leaves a running load's indexes to it
        drop_indexes(other)
        with psycopg.connect(database_url, autocommit=True) as opener:
            assert recover_interrupted_load(opener) is False
        assert not DEFERRED & _indexes(database_url)
    with psycopg.connect(database_url, autocommit=True) as opener:
        assert recover_interrupted_load(opener) is True
    assert DEFERRED <= _indexes(database_url) and not _marked(database_url)


LOADER = """
import sys, time
from strongroom.store.postgres import PostgresStore
from strongroom.store.postgres_bulk import bulk_load
from strongroom.testing import HashEmbedder
from strongroom.testing.builders import make_version

emb = HashEmbedder(dim=64)
store = PostgresStore(sys.argv[1], model_id=emb.model_id, dim=emb.dim)

def versions():
    for i in range(4):
        yield make_version(emb, f"k{i}.txt", [f"killed load revenue {i}"])
    print("batch given", flush=True)
    time.sleep(600)  # killed here, the first batch committed and the indexes dropped

bulk_load(store, versions(), batch_chunks=2)
"""


def test_a_load_killed_with_its_indexes_dropped_is_repaired_by_the_next_open(
    database_url: str, embedder: HashEmbedder, caplog: pytest.LogCaptureFixture
) -> None:
    PostgresStore(database_url, model_id=embedder.model_id, dim=embedder.dim).close()  # an empty store
    child = subprocess.Popen(
        [sys.executable, "-c", LOADER, database_url], stdout=subprocess.PIPE, text=True, env=os.environ.copy()
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "batch given"
        opened = PostgresStore(database_url, model_id=embedder.model_id, dim=embedder.dim)
        assert opened.counts()["versions"] == 4  # both batches committed before the loader stalled
        opened.close()
        assert _marked(database_url) and not DEFERRED & _indexes(database_url)  # opening did not rebuild: it runs
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
        assert child.stdout is not None
        child.stdout.close()
    with caplog.at_level(logging.WARNING, logger="strongroom.store.postgres_bulk"):
        store = PostgresStore(database_url, model_id=embedder.model_id, dim=embedder.dim)
    try:
        assert "bulk load into this store was interrupted" in caplog.text
        assert DEFERRED <= _indexes(database_url) and not _marked(database_url)
        assert store.counts()["versions"] == 4  # the committed batches stay
        assert store.keyword_search("killed load", BOTH, 5)
    finally:
        store.close()
