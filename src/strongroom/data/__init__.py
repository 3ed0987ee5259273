"""Structured datasets (prices, rates, fundamentals, positions, reference data), loaded from
CSV or Parquet as bitemporal versions and queried with checked, read-only SQL.

:func:`open_datasets` opens the configured backend: PostgreSQL (schema ``strongroom_data``)
when ``store_url`` is set, else the DuckDB file ``HOME/datasets.duckdb``. Both implement
:class:`DatasetStore`; :func:`check_select` and :func:`rewrite` (``strongroom.data.sql``) are the
checker and the rewrite they run every query through.

>>> store = open_datasets(settings)  # doctest: +SKIP
>>> store.query("SELECT close FROM prices WHERE ticker = 'ACME' ORDER BY date DESC LIMIT 1",
...             ["prices"], as_of=as_of, known_at=known_at).rows  # doctest: +SKIP
"""

from __future__ import annotations

from strongroom.config import Settings
from strongroom.data.base import DATASET_NAME, DatasetStore, DatasetVersion, QueryLimits, QueryResult
from strongroom.data.sql import CheckedSelect, check_select, rewrite

__all__ = [
    "DATASET_NAME",
    "CheckedSelect",
    "DatasetStore",
    "DatasetVersion",
    "QueryLimits",
    "QueryResult",
    "check_select",
    "open_datasets",
    "rewrite",
]

#: the DuckDB file of datasets in the home folder
DATASETS_FILE = "datasets.duckdb"


def open_datasets(settings: Settings) -> DatasetStore:
    """The datasets of this deployment: in PostgreSQL when ``settings.store_url`` is set (the
    same database as the store, schema ``strongroom_data``), else in ``home/datasets.duckdb`` (held
    only while an operation runs, so processes of one home share it; an operation waits up to
    ``dataset_lock_wait_s`` for a load in another process)."""
    if settings.store_url:
        from strongroom.data.postgres import PostgresDatasets  # needs the postgres extra (psycopg)

        return PostgresDatasets(settings.store_url)
    from strongroom.data.duckdb import DuckDBDatasets

    return DuckDBDatasets(
        settings.home / DATASETS_FILE,
        lock_wait_s=settings.dataset_lock_wait_s,
        memory_limit_mb=settings.dataset_memory_limit_mb,
    )
