"""Both API key stores pass the key store contract, and both upgrade a key table made before
keys recorded their creator (its keys' creator is unknown)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from strongroom.auth.apikeys import KeyBackend, SqliteApiKeyStore
from strongroom.auth.apikeys_postgres import PostgresApiKeyStore
from strongroom.testing.key_contract import KeyStoreContract, Opener


class TestSqliteKeys(KeyStoreContract):
    @pytest.fixture
    def keys(self, tmp_path: Path) -> Opener:
        return lambda: SqliteApiKeyStore(tmp_path / "catalog.sqlite3")


class TestPostgresKeys(KeyStoreContract):
    @pytest.fixture
    def keys(self, database_url: str) -> Opener:
        url = _url(database_url)
        return lambda: PostgresApiKeyStore(url)


def _url(database_url: str) -> str:
    info = conninfo_to_dict(database_url)
    return f"postgresql://{info.get('user', '')}@/{info['dbname']}?host={info['host']}&port={info.get('port', 5432)}"


# a key table as strongroom made it before keys recorded their creator, with one key in it
_OLD_TABLE = (
    "CREATE TABLE api_keys (id TEXT PRIMARY KEY, salt BYTEA NOT NULL, hash BYTEA NOT NULL, owner TEXT NOT NULL, "
    "groups TEXT NOT NULL, created_at TEXT NOT NULL, expires_at TEXT, revoked_at TEXT)"
)
_OLD_ROW = "INSERT INTO api_keys VALUES ('0ld0ld0ld0ld', 'salt', 'hash', 'zed', '[\"r\"]', '2026-01-01T00:00:00+00:00', NULL, NULL)"


def _upgraded(store: KeyBackend) -> None:
    try:
        old = {k.id: k for k in store.list()}["0ld0ld0ld0ld"]
        assert (old.owner, old.created_by) == ("zed", frozenset())  # unknown, and still listed
        _, secret = store.create("zed", frozenset({"r"}), created_by=frozenset({"ana"}))
        assert store.check(secret).created_by == {"ana"}
    finally:
        store.close()


def test_an_older_sqlite_key_table_gains_the_creator_column(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog.sqlite3"
    with sqlite3.connect(catalog) as db:
        db.execute(_OLD_TABLE.replace("BYTEA", "BLOB"))
        db.execute(_OLD_ROW)
    db.close()
    _upgraded(SqliteApiKeyStore(catalog))
    _upgraded(SqliteApiKeyStore(catalog))  # and opening it again changes nothing


def test_an_older_postgres_key_table_gains_the_creator_column(database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as db:
        db.execute(_OLD_TABLE.replace("BYTEA", "bytea"))
        db.execute(_OLD_ROW.replace("'salt', 'hash'", "'salt'::bytea, 'hash'::bytea"))
    _upgraded(PostgresApiKeyStore(_url(database_url)))
    _upgraded(PostgresApiKeyStore(_url(database_url)))
