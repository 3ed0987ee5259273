"""DuckDBDatasets: the contract, plus what only the embedded file does (the engine's lock-down,
reopening, two stores of one process on one file, the factory); several processes on one file:
test_duckdb_processes.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from strongroom.config import Settings
from strongroom.data import open_datasets
from strongroom.data.base import DatasetVersion
from strongroom.data.duckdb import DuckDBDatasets
from strongroom.errors import QueryError, StoreError
from strongroom.testing.dataset_contract import LATER, PRICES, DatasetStoreContract


class TestDuckDBDatasets(DatasetStoreContract):
    engine_file_reads = (
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM read_text('/etc/hostname')",
        "SELECT * FROM glob('/*')",
        "ATTACH '/tmp/strongroom-attack.duckdb' AS other",
        "COPY (SELECT 1) TO '/tmp/strongroom-attack.csv'",
        "INSTALL httpfs",
        "SELECT * FROM read_parquet('https://example.com/x.parquet')",
    )

    @pytest.fixture
    def datasets(self, tmp_path: Path) -> Iterator[DuckDBDatasets]:
        store = DuckDBDatasets(tmp_path / "home" / "datasets.duckdb")
        yield store
        store.close()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[DuckDBDatasets]:
    store = DuckDBDatasets(tmp_path / "datasets.duckdb")
    yield store
    store.close()


@pytest.fixture
def prices(store: DuckDBDatasets, tmp_path: Path) -> DatasetVersion:
    return TestDuckDBDatasets().prices.__wrapped__(TestDuckDBDatasets(), store, tmp_path)  # type: ignore[attr-defined]


def test_no_query_can_unlock_the_engine(store: DuckDBDatasets, prices: DatasetVersion) -> None:
    for sql in (
        "SET enable_external_access = true",
        "SET GLOBAL enable_external_access = true",
        "RESET lock_configuration",
        "SET lock_configuration = false",
        "SET TimeZone = 'America/New_York'",
    ):
        with pytest.raises(QueryError, match=r"locked|read-only"):
            store._run_engine(sql)
    with pytest.raises(QueryError, match="disabled by configuration"):
        store._run_engine("SELECT * FROM read_csv('/etc/passwd')")


def test_rows_are_stored_in_key_then_valid_time_order(store: DuckDBDatasets, prices: DatasetVersion) -> None:
    stored = store._run_engine("SELECT ticker, date FROM strongroom_data.prices")
    assert stored == sorted((t, d) for t, _, d in PRICES)


def test_the_file_keeps_datasets_across_reopening(
    tmp_path: Path, store: DuckDBDatasets, prices: DatasetVersion
) -> None:
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.versions()
    again = DuckDBDatasets(tmp_path / "datasets.duckdb")
    try:
        assert again.versions() == [prices]
        result = again.query("SELECT count(*) FROM prices", ["prices"], as_of=LATER, known_at=LATER)
        assert result.rows == ((len(PRICES),),)
        with pytest.raises(QueryError, match="disabled by configuration"):
            again._run_engine("SELECT * FROM read_csv('/etc/passwd')")
    finally:
        again.close()


def test_two_stores_on_one_file_in_one_process_share_it(
    tmp_path: Path, store: DuckDBDatasets, prices: DatasetVersion
) -> None:
    other = DuckDBDatasets(tmp_path / "datasets.duckdb")
    try:
        assert other.versions() == [prices]
        with pytest.raises(QueryError, match="disabled by configuration"):
            other._run_engine("SELECT * FROM read_csv('/etc/passwd')")
    finally:
        other.close()
    assert store.versions() == [prices]


def test_open_datasets_picks_the_home_file(tmp_path: Path) -> None:
    store = open_datasets(Settings(home=tmp_path / "home"))
    try:
        assert isinstance(store, DuckDBDatasets) and store.path == tmp_path / "home" / "datasets.duckdb"
        assert store.versions() == []
    finally:
        store.close()
