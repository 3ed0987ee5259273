"""Datasets in PostgreSQL (schema ``strongroom_data``): the server backend.

Same semantics as :class:`~strongroom.data.duckdb.DuckDBDatasets`. A query, checked and
rewritten in the DuckDB dialect, is transpiled by sqlglot and runs in a ``READ ONLY``,
``REPEATABLE READ`` transaction (one snapshot for the versions and the rows) with
``statement_timeout`` set for that transaction and at most ``max_rows`` rows kept. psycopg's
extended protocol runs one statement per call, so a second statement never reaches the server.

The engine's own guard is a role: queries run ``SET LOCAL ROLE strongroom_data_reader``, a
``NOLOGIN`` role that may read the dataset tables and nothing else (no server files, no other
table of the database). The store creates it when it can (CREATEROLE, or a superuser);
otherwise an administrator creates it and grants it to the application's role, or queries run
as the application's role. Connect strongroom as an ordinary role, never a superuser: a
superuser session may switch back out of any role.

Loads are one transaction each (COPY of the staged rows, the supersession, the version row),
serialised across processes by an advisory lock.

>>> store = PostgresDatasets("postgresql://app@db/strongroom")  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg import errors, sql
from psycopg.conninfo import conninfo_to_dict

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
from strongroom.data.files import StagedFile, quote
from strongroom.data.scrub import VERSIONS_PLACE, Scrub, place, scrubbed_columns, scrubbed_rows
from strongroom.data.sql import check_select, rewrite
from strongroom.errors import ConfigError, IngestError, QueryError, StoreError

__all__ = ["READER_ROLE", "PostgresDatasets"]

#: the role queries run as (NOLOGIN; SELECT on the dataset tables only)
READER_ROLE = "strongroom_data_reader"
_LIMITS = QueryLimits()
_VERSIONS = f"{SCHEMA}._versions"
_LOAD_LOCK = 0x5D47A  # pg_advisory_xact_lock key of dataset loads
_POOL = 8  # idle query connections kept
_SCRUB_BATCH = 10_000  # rows read at a time while scrubbing
_PG_TYPES = {
    "BOOLEAN": "boolean",
    "SMALLINT": "smallint",
    "INTEGER": "integer",
    "BIGINT": "bigint",
    "REAL": "real",
    "DOUBLE": "double precision",
    "VARCHAR": "text",
    "DATE": "date",
    "TIMESTAMP": "timestamp",
    "TIMESTAMPTZ": "timestamptz",
}
Connection = psycopg.Connection[Any]


class PostgresDatasets:
    """The :class:`~strongroom.data.base.DatasetStore` in a PostgreSQL database."""

    def __init__(self, url: str, *, reader_role: str | None = READER_ROLE) -> None:
        self._url = url
        self._target, self._password = _describe(url)
        self._write = threading.Lock()
        self._pool_lock = threading.Lock()
        self._idle: list[Connection] = []
        self._closed = False
        self._writer = self._connect()
        try:
            self._prepare()
            self.reader_role = self._reader(reader_role) if reader_role else None
        except psycopg.Error as exc:
            self._writer.close()
            raise StoreError(
                f"cannot prepare schema {SCHEMA} in {self._target}: {self._clean(exc)}. The user needs CREATE "
                "rights on the database"
            ) from exc
        except BaseException:
            self._writer.close()
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
        """Load ``path`` as the next version of dataset ``name`` in one transaction; see
        :meth:`strongroom.data.duckdb.DuckDBDatasets.load` for the rules."""
        with self._write, self._transaction(f"load into dataset {name}") as db:
            db.execute("SELECT pg_advisory_xact_lock(%s)", (_LOAD_LOCK,))
            plan = plan_load(
                name, path, _newest(db, [name]).get(name), acl=frozenset(acl), valid_time_column=valid_time_column,
                key_columns=key_columns, mode=mode, loaded_by=loaded_by, loaded_at=loaded_at,
            )  # fmt: skip
            if plan.kept is not None:
                return plan.kept
            if plan.acl_only is not None:
                _insert_version(db, plan.acl_only)
                return plan.acl_only
            with plan.stage() as staged:
                version = plan.version(staged)
                if plan.latest is None:
                    self._create_dataset_table(db, version)
                superseded = _write_rows(db, version, staged)
            version = dataclasses.replace(version, superseded=superseded)
            _insert_version(db, version)
            return version

    def versions(self, name: str | None = None) -> list[DatasetVersion]:
        """Every version (of dataset ``name``), oldest first within a dataset."""
        where = "WHERE dataset = %s" if name is not None else ""
        with self._borrow() as db:
            rows = db.execute(
                f"SELECT {VERSION_COLUMNS} FROM {_VERSIONS} {where} ORDER BY dataset, version",
                (name,) if name is not None else None,
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
        """Run one checked SELECT (DuckDB dialect, transpiled) over the rows of ``allowed``
        datasets visible at (``as_of``, ``known_at``)."""
        as_of, known_at = aware(as_of, "as_of"), aware(known_at, "known_at")
        with self._borrow() as db, self._read_only(db, limits):
            newest = _newest(db, list(dict.fromkeys(allowed)))
            checked = check_select(sql, list(newest))
            views = {n: visible_rows(newest[n], as_of=as_of, known_at=known_at) for n in checked.datasets}
            executed = rewrite(checked, views, max_rows=limits.max_rows, dialect="postgres")
            seen = _newest(db, list(checked.datasets), known_at=known_at)
            columns, rows, elapsed_ms = self._run(db, executed, limits)
        return QueryResult(
            sql=sql,
            executed_sql=executed,
            columns=columns,
            rows=tuple(rows[: limits.max_rows]),
            truncated=len(rows) > limits.max_rows,
            datasets=visible_versions(seen.values(), checked.datasets, known_at),
            as_of=as_of,
            known_at=known_at,
            elapsed_ms=elapsed_ms,
            extra={"backend": "postgres"},
        )

    def scrub_text(self, scrub: Scrub, *, apply: bool, compact: bool = False) -> dict[str, int]:
        """:class:`~strongroom.data.scrub.TextScrubbing`: scrub every text value of every
        dataset (all versions) and of the version records, in one transaction under the load
        lock; with ``apply``, each changed table is then rewritten (``VACUUM FULL``: the dead
        rows, which still hold the old values, and the indexes over them are dropped)."""
        counts: dict[str, int] = {}
        changed: list[str] = []
        with self._write:
            with self._transaction("scrub the datasets") as db:
                db.execute("SELECT pg_advisory_xact_lock(%s)", (_LOAD_LOCK,))
                columns = db.execute(
                    "SELECT table_name, array_agg(column_name::text ORDER BY ordinal_position) "
                    "FROM information_schema.columns WHERE table_schema = %s "
                    "AND data_type IN ('text', 'character varying') GROUP BY table_name ORDER BY table_name",
                    (SCHEMA,),
                ).fetchall()
                for table, all_names in columns:
                    names = scrubbed_columns(table, all_names)
                    target = f"{SCHEMA}.{quote(table)}"
                    if not names:
                        continue
                    lock = " FOR UPDATE" if apply else ""
                    found = []  # only the rows that change are held: a server-side cursor reads the rest
                    with db.cursor(name="strongroom_scrub") as rows:
                        rows.execute(f"SELECT ctid::text, {', '.join(quote(n) for n in names)} FROM {target}{lock}")
                        while batch := rows.fetchmany(_SCRUB_BATCH):
                            found += scrubbed_rows(batch, names, scrub)
                    if apply and compact:
                        changed.append(target)
                    if not found:
                        continue
                    counts[VERSIONS_PLACE if table == "_versions" else place(table)] = len(found)
                    if apply:
                        changed.append(target)
                        for ctid, values in found:
                            sets = ", ".join(f"{quote(n)} = %s" for n in values)
                            db.execute(f"UPDATE {target} SET {sets} WHERE ctid = %s::tid", [*values.values(), ctid])
            try:
                for target in dict.fromkeys(changed):  # outside the transaction: VACUUM cannot run in one
                    self._writer.execute(f"VACUUM FULL {target}")
            except psycopg.Error as exc:
                raise StoreError(f"PostgreSQL could not rewrite the scrubbed datasets: {self._clean(exc)}") from exc
        return counts

    def close(self) -> None:
        with self._write, self._pool_lock:
            if self._closed:
                return
            self._closed = True
            for db in [self._writer, *self._idle]:
                db.close()
            self._idle.clear()

    # -- the engine --------------------------------------------------------------------------

    def _run_engine(self, sql: str, limits: QueryLimits = _LIMITS) -> list[tuple[object, ...]]:
        """Run ``sql`` as a checked query runs (read-only transaction, reader role, timeout, row
        limit) but WITHOUT the checker: for tests of what the engine itself refuses."""
        with self._borrow() as db, self._read_only(db, limits):
            return self._run(db, sql, limits)[1]

    def _run(self, db: Connection, statement: str, limits: QueryLimits) -> tuple[tuple[str, ...], list[Any], float]:
        if self.reader_role:
            db.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(self.reader_role)))
        start = time.perf_counter()
        cursor = db.execute(statement.encode())  # bytes: no placeholder parsing of the caller's % signs
        columns = tuple(d.name for d in cursor.description or ())
        rows = cursor.fetchmany(limits.max_rows + 1)
        return columns, rows, (time.perf_counter() - start) * 1000

    @contextmanager
    def _read_only(self, db: Connection, limits: QueryLimits) -> Iterator[None]:
        """A read-only snapshot with the time limit; the engine's errors become QueryError."""
        try:
            with db.transaction(force_rollback=True):
                db.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                timeout_ms = max(1, round(limits.timeout_s * 1000))  # 0 would mean no limit at all
                db.execute("SELECT set_config('statement_timeout', %s, true)", (f"{timeout_ms}ms",))
                yield
        except errors.QueryCanceled as exc:
            raise QueryError(
                f"the query ran past {limits.timeout_s:g} s and was stopped: filter by key or date, or aggregate "
                "before joining"
            ) from exc
        except psycopg.OperationalError as exc:
            raise StoreError(f"PostgreSQL at {self._target} failed: {self._clean(exc)}") from exc
        except psycopg.Error as exc:
            raise QueryError(f"the query failed: {_first_line(self._clean(exc))}") from exc

    # -- connections and setup ---------------------------------------------------------------

    def _connect(self) -> Connection:
        try:
            db = psycopg.connect(self._url, autocommit=True)
            db.execute("SET TimeZone = 'UTC'")
            return db
        except psycopg.Error as exc:
            raise StoreError(
                f"cannot connect to PostgreSQL at {self._target} for datasets: {self._clean(exc)}. Check that the "
                "server is running and the store URL (STRONGROOM_STORE_URL) is right"
            ) from exc

    @contextmanager
    def _borrow(self) -> Iterator[Connection]:
        with self._pool_lock:
            if self._closed:
                raise StoreError(f"the datasets in {self._target} are closed: open the store again")
            db = self._idle.pop() if self._idle else None
        if db is None or db.broken:
            db = self._connect()
        try:
            yield db
        except psycopg.Error as exc:
            raise StoreError(f"PostgreSQL at {self._target} failed: {_first_line(self._clean(exc))}") from exc
        finally:
            with self._pool_lock:
                if self._closed or db.broken or len(self._idle) >= _POOL:
                    db.close()
                else:
                    self._idle.append(db)

    @contextmanager
    def _transaction(self, action: str) -> Iterator[Connection]:
        if self._closed:
            raise StoreError(f"the datasets in {self._target} are closed: open the store again")
        if self._writer.broken:
            self._writer = self._connect()
        try:
            with self._writer.transaction():
                yield self._writer
        except psycopg.Error as exc:
            raise IngestError(
                f"PostgreSQL could not {action}: {_first_line(self._clean(exc))}; nothing was loaded"
            ) from exc

    def _prepare(self) -> None:
        with self._writer.transaction():
            self._writer.execute("SELECT pg_advisory_xact_lock(%s)", (_LOAD_LOCK,))
            self._writer.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
            self._writer.execute(
                f"""CREATE TABLE IF NOT EXISTS {_VERSIONS} (
                    dataset text NOT NULL, version integer NOT NULL, sha256 text NOT NULL,
                    loaded_at timestamptz NOT NULL, loaded_by text NOT NULL, row_count bigint NOT NULL,
                    acl text NOT NULL, valid_time_column text NOT NULL, key_columns text NOT NULL,
                    column_types text NOT NULL, source_name text NOT NULL, load_mode text NOT NULL,
                    superseded bigint NOT NULL, PRIMARY KEY (dataset, version))"""
            )

    def _reader(self, role: str) -> str | None:
        """``role`` if this connection can act as it (creating it and granting it to us when
        allowed), else None: queries then run as the application's role."""
        name = sql.Identifier(role)
        for statement in (
            sql.SQL(
                "DO $$ BEGIN CREATE ROLE {} NOLOGIN; EXCEPTION WHEN duplicate_object OR unique_violation THEN "
                "NULL; END $$"
            ).format(name),
            sql.SQL("GRANT {} TO CURRENT_USER").format(name),
            sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(sql.Identifier(SCHEMA), name),
        ):
            try:
                self._writer.execute(statement)
            except (errors.InsufficientPrivilege, errors.DuplicateObject, errors.InvalidGrantOperation):
                pass  # not allowed here, or done already: the check below decides
        member = self._writer.execute("SELECT pg_has_role(current_user, %s, 'MEMBER')", (role,)).fetchone()
        return role if member and member[0] else None

    def _create_dataset_table(self, db: Connection, version: DatasetVersion) -> None:
        table = f"{SCHEMA}.{quote(version.dataset)}"
        columns = ", ".join(f"{quote(n)} {_pg_type(t)}" for n, t in version.columns)
        db.execute(
            f"CREATE TABLE {table} ({columns}, _version integer NOT NULL, _loaded_at timestamptz NOT NULL, "
            "_superseded_at timestamptz)"
        )
        key = ", ".join(quote(c) for c in (*version.key_columns, version.valid_time_column))
        db.execute(f"CREATE INDEX ON {table} ({key})")
        db.execute(f"CREATE INDEX ON {table} (_version)")
        if self.reader_role:
            db.execute(sql.SQL("GRANT SELECT ON {} TO {}").format(sql.SQL(table), sql.Identifier(self.reader_role)))

    def _clean(self, exc: BaseException) -> str:
        text = str(exc).strip()
        return text.replace(self._password, "***") if self._password else text


def _newest(db: Connection, names: list[str], known_at: datetime | None = None) -> dict[str, DatasetVersion]:
    if not names:
        return {}
    when = "AND loaded_at <= %s" if known_at is not None else ""
    rows = db.execute(
        f"SELECT DISTINCT ON (dataset) {VERSION_COLUMNS} FROM {_VERSIONS} WHERE dataset = ANY(%s) {when} "
        "ORDER BY dataset, version DESC",
        (names, known_at) if known_at is not None else (names,),
    ).fetchall()
    return {v.dataset: v for v in map(version_from_row, rows)}


def _write_rows(db: Connection, version: DatasetVersion, staged: StagedFile) -> int:
    """COPY the staged rows in (sorted by key and valid time) and supersede what they correct
    (append) or every current row (replace); returns how many were superseded."""
    table = f"{SCHEMA}.{quote(version.dataset)}"
    names = ", ".join(quote(n) for n, _ in version.columns)
    stamp = (version.version, version.loaded_at)
    with db.cursor().copy(f"COPY {table} ({names}, _version, _loaded_at) FROM STDIN") as copy:
        for batch in staged.batches():
            for row in batch:
                copy.write_row((*row, *stamp))
    if version.mode == "replace":
        done = db.execute(
            f"UPDATE {table} SET _superseded_at = %s WHERE _superseded_at IS NULL AND _version < %s",
            (version.loaded_at, version.version),
        )
    elif version.key_columns:
        key = [quote(c) for c in (*version.key_columns, version.valid_time_column)]
        match = " AND ".join(f"old.{c} = new.{c}" for c in key)
        done = db.execute(
            f"UPDATE {table} AS old SET _superseded_at = %s FROM {table} AS new WHERE new._version = %s "
            f"AND old._superseded_at IS NULL AND old._version < %s AND {match}",
            (version.loaded_at, version.version, version.version),
        )
    else:
        return 0
    return max(done.rowcount, 0)


def _insert_version(db: Connection, version: DatasetVersion) -> None:
    values = version_row(version)
    db.execute(f"INSERT INTO {_VERSIONS} ({VERSION_COLUMNS}) VALUES ({', '.join(['%s'] * len(values))})", values)


def _pg_type(canonical: str) -> str:
    if canonical.startswith("DECIMAL"):
        return "numeric" + canonical.removeprefix("DECIMAL")
    return _PG_TYPES[canonical]


def _describe(url: str) -> tuple[str, str]:
    """``user@host:port/dbname`` of a connection string (for messages), and its password."""
    try:
        parts = conninfo_to_dict(url)
    except psycopg.Error:
        raise ConfigError("the PostgreSQL URL is malformed: write it as postgresql://user@host:port/dbname") from None
    host = parts.get("host") or "localhost"
    port = f":{parts['port']}" if parts.get("port") else ""
    user = f"{parts['user']}@" if parts.get("user") else ""
    return f"{user}{host}{port}/{parts.get('dbname') or ''}", str(parts.get("password") or "")


def _first_line(text: str) -> str:
    return (text.splitlines() or [""])[0][:300]
