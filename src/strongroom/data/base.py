"""Structured datasets (prices, rates, fundamentals, positions, reference data): the vocabulary
and the one protocol their backends implement.

A dataset is loaded from CSV or Parquet as a new **version** (its content hash and the time it
was loaded, like a document's version) and is bitemporal:

- ``valid_time_column`` says when each row was true (a price's date). A row is visible
  ``as_of`` T only if its valid time is at or before T: no look-ahead.
- ``loaded_at`` says when strongroom learned the row. A row loaded later that has the same
  ``key_columns`` as an earlier one **corrects** it: at ``known_at`` before the correction
  the old row is seen, at or after it the new one. A row for a past valid time loaded late
  is invisible at a ``known_at`` before its load.

A dataset's ACL is that of its newest version and applies at every time (narrowing an ACL
hides the dataset's history too: deny by default). Entitlements are checked by the
application layer (``strongroom.service.datasets``), which hands a backend a query that
already names only datasets the principal may read; a backend enforces the engine-side
limits (read-only, no file or network access, a row limit, a time limit).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Protocol

__all__ = [
    "DATASET_NAME",
    "DatasetStore",
    "DatasetVersion",
    "QueryLimits",
    "QueryResult",
]

#: a dataset's name: lower-case letters, digits and underscores, starting with a letter
DATASET_NAME = r"^[a-z][a-z0-9_]{0,62}$"


@dataclass(frozen=True)
class DatasetVersion:
    """One load of a dataset.

    ``version``: 1, 2, ... per dataset; ``sha256``: the loaded file's bytes; ``rows``: rows in
    this load; ``superseded``: rows of earlier loads this load corrected; ``columns``: the
    dataset's columns and their SQL types (without the bookkeeping columns); ``mode``:
    ``append`` (new rows; rows with an existing key correct it) or ``replace`` (this load is
    the whole dataset from now on).
    """

    dataset: str
    version: int
    sha256: str
    loaded_at: datetime
    loaded_by: str
    rows: int
    acl: frozenset[str]
    valid_time_column: str
    key_columns: tuple[str, ...]
    columns: tuple[tuple[str, str], ...]
    source: str  # the file's name (never its folder)
    mode: str = "append"
    superseded: int = 0


@dataclass(frozen=True)
class QueryLimits:
    """What one query may cost: rows returned (more are cut, and ``truncated`` says so) and
    seconds of engine time (past it the engine is interrupted: a :class:`QueryError`)."""

    max_rows: int = 1000
    timeout_s: float = 10.0


@dataclass(frozen=True)
class QueryResult:
    """Rows of a checked query, and what answered it: the SQL as asked, the SQL the engine
    ran, the dataset versions visible at ``known_at`` and both clocks."""

    sql: str
    executed_sql: str
    columns: tuple[str, ...]
    rows: tuple[tuple[object, ...], ...]
    truncated: bool
    datasets: tuple[DatasetVersion, ...]
    as_of: datetime
    known_at: datetime
    elapsed_ms: float = 0.0
    extra: dict[str, object] = field(default_factory=dict)


class DatasetStore(Protocol):
    """Where datasets live: DuckDB in the home folder (embedded), or PostgreSQL.

    ``query`` takes SQL already checked by :func:`strongroom.data.sql.check_select` against
    the datasets the caller may read (``allowed``), and runs it over each dataset's rows
    visible at (``as_of``, ``known_at``).
    """

    def load(
        self,
        name: str,
        path: Path,
        *,
        acl: frozenset[str],
        valid_time_column: str,
        key_columns: Sequence[str] = (),
        mode: str = "append",
        loaded_by: str = "",
        loaded_at: datetime | None = None,
    ) -> DatasetVersion: ...

    def versions(self, name: str | None = None) -> list[DatasetVersion]: ...

    def query(
        self,
        sql: str,
        allowed: Sequence[str],
        *,
        as_of: datetime,
        known_at: datetime,
        limits: QueryLimits = QueryLimits(),
    ) -> QueryResult: ...

    def close(self) -> None: ...
