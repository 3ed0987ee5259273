"""Both API key stores pass the key store contract."""

from __future__ import annotations

from pathlib import Path

import pytest
from psycopg.conninfo import conninfo_to_dict

from strongroom.auth.apikeys import SqliteApiKeyStore
from strongroom.auth.apikeys_postgres import PostgresApiKeyStore
from strongroom.testing.key_contract import KeyStoreContract, Opener


class TestSqliteKeys(KeyStoreContract):
    @pytest.fixture
    def keys(self, tmp_path: Path) -> Opener:
        return lambda: SqliteApiKeyStore(tmp_path / "catalog.sqlite3")


class TestPostgresKeys(KeyStoreContract):
    @pytest.fixture
    def keys(self, database_url: str) -> Opener:
        info = conninfo_to_dict(database_url)
        url = f"postgresql://{info.get('user', '')}@/{info['dbname']}?host={info['host']}&port={info.get('port', 5432)}"
        return lambda: PostgresApiKeyStore(url)
