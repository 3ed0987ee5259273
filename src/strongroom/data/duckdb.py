"""Datasets in a DuckDB file in the home folder (``HOME/datasets.duckdb``): the embedded backend.

The engine is locked down on every connection, before any query can run:
``enable_external_access = false`` (no file, URL, ATTACH, COPY, extension or Python-object
access, for anyone) then ``lock_configuration = true`` (no ``SET`` can undo it). Files are read
by a separate private engine (:func:`strongroom.data.files.stage`) and handed over in memory.
Each query runs in a ``READ ONLY`` transaction of a read-only connection, on its own cursor,
under a guard that interrupts the engine past ``timeout_s``, and returns at most ``max_rows``
rows.

The file is held only while operations run (:class:`~strongroom.data.duckdb_file.DuckDBFile`):
queries share a read-only connection that is let go as soon as a load (of this or another
process) asks for the file, or after ``keep_open_s`` unused; a load opens the file read-write
for its own duration. So the service, ``strongroom data load`` and ``strongroom mcp`` use one
home at the same time: an operation that finds the file locked tries again for up to
``lock_wait_s`` (a load in another process), then says so. Loads are serialised; queries
from many threads run side by side.

>>> store = DuckDBDatasets(home / "datasets.duckdb")  # doctest: +SKIP
>>> store.load("prices", Path("prices.csv"), acl=frozenset({"research"}), valid_time_column="date",
...            key_columns=["ticker"])  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import os
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
    plan_load,
    version_from_row,
    version_row,
    visible_rows,
    visible_versions,
)
from strongroom.data.duckdb_file import ENGINE_CONFIG, DuckDBFile, first_line
from strongroom.data.files import quote
from strongroom.data.scrub import VERSIONS_PLACE, Scrub, place, scrubbed_columns, scrubbed_rows
from strongroom.data.sql import check_select, rewrite
from strongroom.errors import IngestError, QueryError, StoreError

__all__ = ["DuckDBDatasets"]

_FORMAT = "1"  # the layout of the tables below; a file of a later one is refused
_VERSIONS = f"{SCHEMA}._versions"
_LIMITS = QueryLimits()
_BATCH = 10_000  # rows read at a time while scrubbing


class DuckDBDatasets:
    """The :class:`~strongroom.data.base.DatasetStore` in one DuckDB file."""

    def __init__(
        self,
        path: Path,
        *,
        threads: int | None = None,
        lock_wait_s: float = 10.0,
        keep_open_s: float = 5.0,
        memory_limit_mb: int | None = 2048,
    ) -> None:
        """Open (or create) the datasets file ``path``. ``threads``: the engine's threads
        (None: DuckDB's default); ``lock_wait_s``: how long an operation waits for a file a
        load of another process holds; ``keep_open_s``: how long queries keep the file open
        unused (0: opened for each operation, ~20 ms); ``memory_limit_mb``: the engine's memory
        (a query that needs more is refused; None: DuckDB's default, 80% of the machine)."""
        self.path = path
        self._write = threading.Lock()  # one load at a time
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot open the datasets file {path}: {first_line(exc)}") from exc
        self._file = DuckDBFile(
            path, threads=threads, lock_wait_s=lock_wait_s, keep_open_s=keep_open_s, memory_limit_mb=memory_limit_mb
        )
        self._prepare()

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
        with self._write, self._writing() as db:
            plan = plan_load(
                name, path, self._latest(db, name), acl=frozenset(acl), valid_time_column=valid_time_column,
                key_columns=key_columns, mode=mode, loaded_by=loaded_by, loaded_at=loaded_at,
            )  # fmt: skip
            if plan.kept is not None:
                return plan.kept
            if plan.acl_only is not None:
                with _transaction(db, f"record the new ACL of dataset {name}"):
                    _insert_version(db, plan.acl_only)
                return plan.acl_only
            with plan.stage() as staged:
                version = plan.version(staged)
                with _transaction(db, f"load {staged.source} into dataset {name}"):
                    if plan.latest is None:
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
        with self._reading() as db:
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
        with self._reading() as db:
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
        """Let go of the file (after a running load and running queries end)."""
        with self._write:
            self._file.close()

    def scrub_text(self, scrub: Scrub, *, apply: bool, compact: bool = False) -> dict[str, int]:
        """:class:`~strongroom.data.scrub.TextScrubbing`: scrub every text value of every
        dataset (all versions) and of the version records. Without ``apply`` the file is only
        read, as queries read it. With ``apply``, under the write lock, the values change in one
        transaction and then (if one did, or ``compact``) the file is rewritten whole and put in
        place of the old one: an UPDATE and a CHECKPOINT leave the old values in blocks DuckDB
        frees but does not clear."""
        if not apply:
            with self._reading() as db:
                return _scrub(db, scrub, apply=False)
        with self._write, self._writing() as db:
            with _transaction(db, "scrub the datasets"):
                counts = _scrub(db, scrub, apply=True)
            if counts or compact:
                db.execute("CHECKPOINT")
                _rewrite(db, self.path)
        return counts

    @property
    def connections_opened(self) -> int:
        """How many times queries opened the file (for tests and benchmarks)."""
        return self._file.opened

    # -- the engine --------------------------------------------------------------------------

    def _run_engine(self, sql: str, limits: QueryLimits = _LIMITS) -> list[tuple[object, ...]]:
        """Run ``sql`` as the engine runs a checked query (read-only transaction, time guard, row
        limit) but WITHOUT the checker: for tests that show what the engine itself refuses.
        Never call it with a caller's SQL."""
        with self._reading() as db:
            db.execute("BEGIN TRANSACTION READ ONLY")
            try:
                return _run(db, sql, limits)[1]
            finally:
                _rollback(db)

    def _prepare(self) -> None:
        """Check the file's format; create the tables where there are none yet."""
        if self.path.exists():
            with self._reading() as db:
                if _format(db, self.path) is not None:
                    return
        with self._write, self._writing() as db:
            _create_tables(db, self.path)

    @contextmanager
    def _reading(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-only connection of its own; engine failures become StoreError."""
        with _engine_failures(self.path), self._file.reading() as db:
            yield db

    @contextmanager
    def _writing(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """The file opened read-write for one load; engine failures become StoreError."""
        with _engine_failures(self.path), self._file.writing() as db:
            yield db

    def _latest(self, db: duckdb.DuckDBPyConnection, name: str) -> DatasetVersion | None:
        return _newest(db, [name]).get(name)


def _scrub(db: duckdb.DuckDBPyConnection, scrub: Scrub, *, apply: bool) -> dict[str, int]:
    """Per place, the rows whose text ``scrub`` changes (changed with ``apply``)."""
    columns = db.execute(
        "SELECT table_name, list(column_name ORDER BY column_index) FROM duckdb_columns() "
        "WHERE database_name = current_database() AND schema_name = ? AND data_type = 'VARCHAR' "
        "GROUP BY table_name ORDER BY table_name",
        [SCHEMA],
    ).fetchall()
    counts: dict[str, int] = {}
    for table, all_names in columns:
        names = scrubbed_columns(table, all_names)
        if not names:
            continue
        target = f"{SCHEMA}.{quote(table)}"
        db.execute(f"SELECT rowid, {', '.join(quote(n) for n in names)} FROM {target}")
        changed = []  # only the rows that change are held, a batch of rows at a time
        while batch := db.fetchmany(_BATCH):
            changed += scrubbed_rows(batch, names, scrub)
        if not changed:
            continue
        counts[VERSIONS_PLACE if table == "_versions" else place(table)] = len(changed)
        if apply:
            for rowid, values in changed:
                sets = ", ".join(f"{quote(n)} = ?" for n in values)
                db.execute(f"UPDATE {target} SET {sets} WHERE rowid = ?", [*values.values(), rowid])
    return counts


def _rewrite(db: duckdb.DuckDBPyConnection, path: Path) -> None:
    """Copy every table of ``db`` (the file ``path``, open read-write) into a new file and put
    it in place of ``path``: the old file's freed blocks, which may still hold values changed
    since, go with it. ``db`` is closed right after by its owner and writes nothing more."""
    fresh_path = path.with_name(path.name + ".rewrite")
    fresh_path.unlink(missing_ok=True)
    fresh = duckdb.connect(str(fresh_path), config=dict(ENGINE_CONFIG))
    try:
        schemas = db.execute(
            "SELECT DISTINCT schema_name FROM duckdb_tables() WHERE database_name = current_database()"
        ).fetchall()
        for (schema,) in schemas:
            fresh.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(schema)}")
        tables = db.execute(
            "SELECT schema_name, table_name, sql FROM duckdb_tables() WHERE database_name = current_database() "
            "ORDER BY schema_name, table_name"
        ).fetchall()
        for schema, table, create in tables:
            fresh.execute(create)
            reader = db.sql(f"SELECT * FROM {quote(schema)}.{quote(table)} ORDER BY rowid").to_arrow_reader()
            fresh.register("_rows", reader)
            try:
                fresh.execute(f"INSERT INTO {quote(schema)}.{quote(table)} SELECT * FROM _rows")
            finally:
                fresh.unregister("_rows")
        for (create,) in db.execute(
            "SELECT sql FROM duckdb_indexes() WHERE database_name = current_database() AND sql IS NOT NULL"
        ).fetchall():
            fresh.execute(create)
        fresh.execute("CHECKPOINT")
    except BaseException:
        fresh.close()
        fresh_path.unlink(missing_ok=True)
        raise
    fresh.close()
    os.chmod(fresh_path, path.stat().st_mode & 0o777)
    os.replace(fresh_path, path)


@contextmanager
def _engine_failures(path: Path) -> Iterator[None]:
    try:
        yield
    except (duckdb.IOException, duckdb.InternalException, duckdb.FatalException) as exc:
        raise StoreError(f"the datasets file {path} failed: {first_line(exc)}") from exc


def _format(db: duckdb.DuckDBPyConnection, path: Path) -> str | None:
    """The file's format (None: no tables yet); a StoreError for one this code cannot read."""
    try:
        row = db.execute(f"SELECT value FROM {SCHEMA}._meta WHERE key = 'format'").fetchone()
    except duckdb.CatalogException:
        return None
    except duckdb.Error as exc:
        raise StoreError(f"cannot read the datasets file {path}: {first_line(exc)}") from exc
    if row is None:
        return None
    if row[0] != _FORMAT:
        raise StoreError(f"the datasets file {path} has format {row[0]}, newer than this strongroom's")
    return str(row[0])


def _create_tables(db: duckdb.DuckDBPyConnection, path: Path) -> None:
    try:
        db.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
        db.execute(f"CREATE TABLE IF NOT EXISTS {SCHEMA}._meta (key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL)")
        db.execute(f"INSERT INTO {SCHEMA}._meta VALUES ('format', ?) ON CONFLICT DO NOTHING", [_FORMAT])
        _format(db, path)
        db.execute(
            f"""CREATE TABLE IF NOT EXISTS {_VERSIONS} (
                dataset VARCHAR NOT NULL, version INTEGER NOT NULL, sha256 VARCHAR NOT NULL,
                loaded_at TIMESTAMPTZ NOT NULL, loaded_by VARCHAR NOT NULL, row_count BIGINT NOT NULL,
                acl VARCHAR NOT NULL, valid_time_column VARCHAR NOT NULL, key_columns VARCHAR NOT NULL,
                column_types VARCHAR NOT NULL, source_name VARCHAR NOT NULL, load_mode VARCHAR NOT NULL,
                superseded BIGINT NOT NULL, PRIMARY KEY (dataset, version))"""
        )
    except duckdb.Error as exc:
        raise StoreError(f"cannot prepare the datasets file {path}: {first_line(exc)}") from exc


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
        raise QueryError(f"the query needed more memory than the engine has: {first_line(exc)}; narrow it") from exc
    except (duckdb.IOException, duckdb.InternalException, duckdb.FatalException):
        raise
    except duckdb.Error as exc:
        raise QueryError(f"the query failed: {first_line(exc)}") from exc
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
        raise IngestError(f"could not {action}: {first_line(exc)}; nothing was loaded") from exc


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
