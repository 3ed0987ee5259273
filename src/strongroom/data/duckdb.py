"""Datasets in a DuckDB file in the home folder (``HOME/datasets.duckdb``): the embedded backend.

The engine is locked down when the file is opened, before any query can run:
``enable_external_access = false`` (no file, URL, ATTACH, COPY, extension or Python-object
access, for anyone) then ``lock_configuration = true`` (no ``SET`` can undo it). Files are read
by a separate private engine (:func:`strongroom.data.files.stage`) and handed over in memory.
Each query runs in a ``READ ONLY`` transaction on its own cursor, under a guard that interrupts
the engine past ``timeout_s``, and returns at most ``max_rows`` rows.

One process holds the file (DuckDB's rule): loads are serialised by a lock, queries from many
threads run side by side. Another process that opens the file gets a :class:`StoreError`
saying so; several processes share datasets through PostgreSQL.

>>> store = DuckDBDatasets(home / "datasets.duckdb")  # doctest: +SKIP
>>> store.load("prices", Path("prices.csv"), acl=frozenset({"research"}), valid_time_column="date",
...            key_columns=["ticker"])  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import duckdb

from strongroom.data.base import DatasetVersion, QueryLimits, QueryResult
from strongroom.data.bitemporal import (
    SCHEMA,
    VERSION_COLUMNS,
    aware,
    check_load,
    loaded_at_for,
    repeat_of,
    version_from_row,
    version_row,
    visible_rows,
    visible_versions,
)
from strongroom.data.files import file_sha256, quote, stage
from strongroom.data.sql import check_select, rewrite
from strongroom.errors import IngestError, QueryError, StoreError

__all__ = ["DuckDBDatasets"]

_FORMAT = "1"  # the layout of the tables below; a file of a later one is refused
_VERSIONS = f"{SCHEMA}._versions"
_LIMITS = QueryLimits()
_ENGINE = {
    "enable_external_access": False,
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "allow_community_extensions": False,
}


class DuckDBDatasets:
    """The :class:`~strongroom.data.base.DatasetStore` in one DuckDB file."""

    def __init__(self, path: Path, *, threads: int | None = None) -> None:
        self.path = path
        self._write = threading.Lock()  # one load at a time
        self._cursors = threading.Lock()  # cursors are made one at a time from the root connection
        self._closed = False
        config: dict[str, str | bool | int | float | list[str]] = dict(_ENGINE)
        if threads:
            config["threads"] = threads
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._root = duckdb.connect(str(path), config=config)
        except duckdb.IOException as exc:
            raise StoreError(
                f"cannot open the datasets file {path}: {_first_line(exc)}. DuckDB lets one process hold it: "
                "stop the other strongroom process using this home, or keep datasets in PostgreSQL "
                "(STRONGROOM_STORE_URL)"
            ) from exc
        except (duckdb.Error, OSError) as exc:
            raise StoreError(f"cannot open the datasets file {path}: {_first_line(exc)}") from exc
        try:
            self._lock_down()
            self._create_tables()
        except duckdb.Error as exc:
            self._root.close()
            raise StoreError(f"cannot prepare the datasets file {path}: {_first_line(exc)}") from exc
        except BaseException:
            self._root.close()
            raise

    # -- the protocol ------------------------------------------------------------------------

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
    ) -> DatasetVersion:
        """Load ``path`` (CSV or Parquet) as the next version of dataset ``name``, in one
        transaction: a refused or failed load leaves the store as it was.

        ``append``: add the rows; a row whose key (``key_columns`` + valid time) a current row
        has supersedes it. ``replace``: the file is the whole dataset from ``loaded_at`` on.
        The same bytes as the newest version (same mode and ACL) load nothing and return that
        version; the same bytes under another ACL add a version that records the new ACL and
        changes no rows.
        """
        acl = frozenset(acl)
        with self._write, self._cursor() as db:
            latest = self._latest(db, name)
            valid_time, keys = check_load(name, mode, valid_time_column, key_columns, latest)
            digest = file_sha256(path)
            repeat = repeat_of(latest, sha256=digest, mode=mode, acl=acl)
            if latest is not None and repeat == "same":
                return latest
            moment = loaded_at_for(latest, loaded_at)
            if latest is not None and repeat == "acl":
                version = dataclasses.replace(
                    latest, version=latest.version + 1, loaded_at=moment, loaded_by=loaded_by, rows=0, acl=acl,
                    source=path.name, superseded=0,
                )  # fmt: skip
                with _transaction(db, f"record the new ACL of dataset {name}"):
                    _insert_version(db, version)
                return version
            existing = latest.columns if latest else None
            reading = stage(path, valid_time_column=valid_time, key_columns=keys, existing=existing, sha256=digest)
            with reading as staged:
                version = DatasetVersion(
                    dataset=name, version=latest.version + 1 if latest else 1, sha256=digest, loaded_at=moment,
                    loaded_by=loaded_by, rows=staged.rows, acl=acl, valid_time_column=valid_time, key_columns=keys,
                    columns=staged.columns, source=staged.source, mode=mode,
                )  # fmt: skip
                with _transaction(db, f"load {staged.source} into dataset {name}"):
                    if latest is None:
                        _create_dataset_table(db, version)
                    db.register("_staged", db.from_arrow(staged.arrow_stream()))
                    try:
                        superseded = _write_rows(db, version)
                    finally:
                        db.unregister("_staged")
                    version = dataclasses.replace(version, superseded=superseded)
                    _insert_version(db, version)
            return version

    def versions(self, name: str | None = None) -> list[DatasetVersion]:
        """Every version (of dataset ``name``), oldest first within a dataset."""
        with self._cursor() as db:
            where = "WHERE dataset = ?" if name is not None else ""
            rows = db.execute(
                f"SELECT {VERSION_COLUMNS} FROM {_VERSIONS} {where} ORDER BY dataset, version",
                [name] if name is not None else [],
            ).fetchall()
        return [version_from_row(r) for r in rows]

    def query(
        self,
        sql: str,
        allowed: Sequence[str],
        *,
        as_of: datetime,
        known_at: datetime,
        limits: QueryLimits = _LIMITS,
    ) -> QueryResult:
        """Run one checked SELECT over the rows of ``allowed`` datasets visible at (``as_of``,
        ``known_at``); a dataset outside ``allowed`` is unknown. See the module for the limits."""
        as_of, known_at = aware(as_of, "as_of"), aware(known_at, "known_at")
        with self._cursor() as db:
            db.execute("BEGIN TRANSACTION READ ONLY")  # one snapshot for the versions and the rows
            try:
                newest, seen = _newest_and_seen(db, list(dict.fromkeys(allowed)), known_at)
                checked = check_select(sql, list(newest))
                views = {n: visible_rows(newest[n], as_of=as_of, known_at=known_at) for n in checked.datasets}
                executed = rewrite(checked, views, max_rows=limits.max_rows)
                columns, rows, elapsed_ms = _run(db, executed, limits)
            finally:
                _rollback(db)
        return QueryResult(
            sql=sql,
            executed_sql=executed,
            columns=columns,
            rows=tuple(rows[: limits.max_rows]),
            truncated=len(rows) > limits.max_rows,
            datasets=visible_versions(seen, checked.datasets, known_at),
            as_of=as_of,
            known_at=known_at,
            elapsed_ms=elapsed_ms,
            extra={"backend": "duckdb"},
        )

    def close(self) -> None:
        with self._write, self._cursors:
            if not self._closed:
                self._closed = True
                self._root.close()

    # -- the engine --------------------------------------------------------------------------

    def _run_engine(self, sql: str, limits: QueryLimits = _LIMITS) -> list[tuple[object, ...]]:
        """Run ``sql`` as the engine runs a checked query (read-only transaction, time guard, row
        limit) but WITHOUT the checker: for tests that show what the engine itself refuses.
        Never call it with a caller's SQL."""
        with self._cursor() as db:
            db.execute("BEGIN TRANSACTION READ ONLY")
            try:
                return _run(db, sql, limits)[1]
            finally:
                _rollback(db)

    def _lock_down(self) -> None:
        # The engine's settings are global; once locked, no connection (ours or a query's) can
        # change them, so another DuckDBDatasets on the same file in this process finds them set.
        row = self._root.execute("SELECT current_setting('lock_configuration')").fetchone()
        if not (row and row[0]):
            self._root.execute("SET GLOBAL TimeZone = 'UTC'")
            self._root.execute("SET GLOBAL lock_configuration = true")
        row = self._root.execute("SELECT current_setting('enable_external_access')").fetchone()
        if not row or row[0]:
            raise StoreError(f"the datasets file {self.path} is open with file access allowed; restart the process")

    def _create_tables(self) -> None:
        db = self._root
        db.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
        db.execute(f"CREATE TABLE IF NOT EXISTS {SCHEMA}._meta (key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL)")
        db.execute(f"INSERT INTO {SCHEMA}._meta VALUES ('format', ?) ON CONFLICT DO NOTHING", [_FORMAT])
        row = db.execute(f"SELECT value FROM {SCHEMA}._meta WHERE key = 'format'").fetchone()
        if row and row[0] != _FORMAT:
            raise StoreError(f"the datasets file {self.path} has format {row[0]}, newer than this strongroom's")
        db.execute(
            f"""CREATE TABLE IF NOT EXISTS {_VERSIONS} (
                dataset VARCHAR NOT NULL, version INTEGER NOT NULL, sha256 VARCHAR NOT NULL,
                loaded_at TIMESTAMPTZ NOT NULL, loaded_by VARCHAR NOT NULL, row_count BIGINT NOT NULL,
                acl VARCHAR NOT NULL, valid_time_column VARCHAR NOT NULL, key_columns VARCHAR NOT NULL,
                column_types VARCHAR NOT NULL, source_name VARCHAR NOT NULL, load_mode VARCHAR NOT NULL,
                superseded BIGINT NOT NULL, PRIMARY KEY (dataset, version))"""
        )

    @contextmanager
    def _cursor(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection of its own to the engine; engine failures become StoreError."""
        with self._cursors:
            if self._closed:
                raise StoreError(f"the datasets file {self.path} is closed: open the store again")
            cursor = self._root.cursor()
        try:
            yield cursor
        except (duckdb.IOException, duckdb.InternalException, duckdb.FatalException) as exc:
            raise StoreError(f"the datasets file {self.path} failed: {_first_line(exc)}") from exc
        finally:
            cursor.close()

    def _latest(self, db: duckdb.DuckDBPyConnection, name: str) -> DatasetVersion | None:
        return _newest(db, [name]).get(name)


def _newest(db: duckdb.DuckDBPyConnection, names: list[str]) -> dict[str, DatasetVersion]:
    """The newest version of each of ``names`` that exists."""
    return _newest_and_seen(db, names, None)[0]


def _newest_and_seen(
    db: duckdb.DuckDBPyConnection, names: list[str], known_at: datetime | None
) -> tuple[dict[str, DatasetVersion], list[DatasetVersion]]:
    """The newest version of each of ``names`` that exists, and (with ``known_at``) the newest
    of each loaded by then: one statement, as a query's fixed cost is mostly statements."""
    if not names:
        return {}, []
    rows = db.execute(
        f"SELECT {VERSION_COLUMNS}, version = max(version) OVER w AS newest, "
        "version = max(CASE WHEN loaded_at <= ? THEN version END) OVER w AS seen "
        f"FROM {_VERSIONS} WHERE list_contains(?, dataset) WINDOW w AS (PARTITION BY dataset) "
        "QUALIFY newest OR seen",
        [known_at, names],
    ).fetchall()
    newest = {v.dataset: v for *row, last, _ in rows if last for v in [version_from_row(row)]}
    seen = [version_from_row(row) for *row, _, then in rows if then]
    return newest, seen


def _run(
    db: duckdb.DuckDBPyConnection, sql: str, limits: QueryLimits
) -> tuple[tuple[str, ...], list[tuple[object, ...]], float]:
    """Columns, up to ``max_rows + 1`` rows and milliseconds of one statement, interrupted by
    the engine past ``timeout_s``."""
    done = threading.Event()
    guard = threading.Thread(target=_interrupt_after, args=(db, limits.timeout_s, done), daemon=True)
    start = time.perf_counter()
    guard.start()
    try:
        db.execute(sql)
        columns = tuple(str(d[0]) for d in db.description or ())
        rows = db.fetchmany(limits.max_rows + 1)
    except duckdb.InterruptException as exc:
        raise QueryError(
            f"the query ran past {limits.timeout_s:g} s and was stopped: filter by key or date, or aggregate "
            "before joining"
        ) from exc
    except duckdb.OutOfMemoryException as exc:
        raise QueryError(f"the query needed more memory than the engine has: {_first_line(exc)}; narrow it") from exc
    except (duckdb.IOException, duckdb.InternalException, duckdb.FatalException):
        raise
    except duckdb.Error as exc:
        raise QueryError(f"the query failed: {_first_line(exc)}") from exc
    finally:
        done.set()
        guard.join()  # no interrupt reaches the cursor after this statement
    return columns, rows, (time.perf_counter() - start) * 1000


def _interrupt_after(db: duckdb.DuckDBPyConnection, seconds: float, done: threading.Event) -> None:
    """Interrupt ``db`` once ``seconds`` have passed, and again every 50 ms until ``done``:
    DuckDB drops an interrupt that arrives before the statement starts running."""
    if done.wait(max(seconds, 0.0)):
        return
    while True:
        db.interrupt()
        if done.wait(0.05):
            return


def _rollback(db: duckdb.DuckDBPyConnection) -> None:
    try:
        db.execute("ROLLBACK")
    except duckdb.Error:
        pass  # an interrupted transaction may be gone already; the cursor is closed next


@contextmanager
def _transaction(db: duckdb.DuckDBPyConnection, action: str) -> Iterator[None]:
    db.execute("BEGIN TRANSACTION")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    try:
        db.execute("COMMIT")
    except duckdb.Error as exc:
        raise IngestError(f"could not {action}: {_first_line(exc)}; nothing was loaded") from exc


def _create_dataset_table(db: duckdb.DuckDBPyConnection, version: DatasetVersion) -> None:
    columns = ", ".join(f"{quote(n)} {t}" for n, t in version.columns)
    db.execute(
        f"CREATE TABLE {SCHEMA}.{quote(version.dataset)} ({columns}, _version INTEGER NOT NULL, "
        "_loaded_at TIMESTAMPTZ NOT NULL, _superseded_at TIMESTAMPTZ)"
    )


def _write_rows(db: duckdb.DuckDBPyConnection, version: DatasetVersion) -> int:
    """Insert the staged rows (already sorted by key and valid time) and supersede the current
    rows they correct (append) or all current rows (replace); returns how many were superseded."""
    table = f"{SCHEMA}.{quote(version.dataset)}"
    names = ", ".join(quote(n) for n, _ in version.columns)
    db.execute(
        f"INSERT INTO {table} ({names}, _version, _loaded_at) SELECT {names}, ?, ? FROM _staged",
        [version.version, version.loaded_at],
    )
    if version.mode == "replace":
        done = db.execute(
            f"UPDATE {table} SET _superseded_at = ? WHERE _superseded_at IS NULL AND _version < ?",
            [version.loaded_at, version.version],
        ).fetchone()
    elif version.key_columns:
        key = [quote(c) for c in (*version.key_columns, version.valid_time_column)]
        match = " AND ".join(f"{table}.{c} = new.{c}" for c in key)
        done = db.execute(
            f"UPDATE {table} SET _superseded_at = ? FROM (SELECT {', '.join(key)} FROM {table} WHERE _version = ?) "
            f"AS new WHERE {table}._superseded_at IS NULL AND {table}._version < ? AND {match}",
            [version.loaded_at, version.version, version.version],
        ).fetchone()
    else:
        return 0
    return int(done[0]) if done else 0


def _insert_version(db: duckdb.DuckDBPyConnection, version: DatasetVersion) -> None:
    values = version_row(version)
    db.execute(f"INSERT INTO {_VERSIONS} ({VERSION_COLUMNS}) VALUES ({', '.join('?' * len(values))})", list(values))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]
