"""Reading a dataset's file: CSV or Parquet into checked, typed rows sorted by key and valid time.

Both backends load through :func:`stage`. It reads the file with DuckDB's own CSV sniffer and
Parquet reader in a private in-memory engine (the only engine here that may open a file, and it
only ever runs the SQL below), checks it, and holds the rows for the backend to copy:

- column names are lower-cased and must be letters, digits and underscores (at most 63), so
  they mean the same unquoted in DuckDB and PostgreSQL; the bookkeeping names are refused;
- each column has one of the scalar types in :data:`COLUMN_TYPES` (narrower ones are widened);
- the valid-time column is a date or timestamp, and it and the key columns are never empty;
- no two rows share a key (key columns and valid time): a load holds one row per key;
- a dataset that exists keeps its columns: a file must have the same names, and its values
  are cast to the dataset's types (a value that does not fit is refused).

Rows come out sorted by (key columns, valid time), so a backend that stores them in that order
lets its zone maps (or index) skip to one instrument.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb

from strongroom.data.base import DATASET_NAME
from strongroom.data.duckdb_file import first_line
from strongroom.errors import CorruptDocument, IngestError, UnsupportedFormat

__all__ = [
    "BOOKKEEPING",
    "COLUMN_NAME",
    "COLUMN_TYPES",
    "TIME_TYPES",
    "StagedFile",
    "check_dataset_name",
    "column_name",
    "file_sha256",
    "quote",
    "stage",
]

#: a column's name once loaded (lower case)
COLUMN_NAME = r"^[a-z_][a-z0-9_]{0,62}$"
#: columns every dataset table has besides the user's
BOOKKEEPING = ("_version", "_loaded_at", "_superseded_at")
#: the column types a dataset may hold (DECIMAL with its precision and scale)
COLUMN_TYPES = (
    *("BOOLEAN", "SMALLINT", "INTEGER", "BIGINT", "REAL", "DOUBLE", "VARCHAR"),
    *("DATE", "TIMESTAMP", "TIMESTAMPTZ"),
)
#: the types a valid-time column may have
TIME_TYPES = frozenset({"DATE", "TIMESTAMP", "TIMESTAMPTZ"})
SUFFIXES = {".csv": "CSV", ".parquet": "Parquet"}
_RESERVED = ("pg_", "duckdb_", "sqlite_", "information_schema", "strongroom_")
_WIDEN = {
    "TINYINT": "SMALLINT",
    "UTINYINT": "SMALLINT",
    "USMALLINT": "INTEGER",
    "UINTEGER": "BIGINT",
    "FLOAT": "REAL",
    "TIMESTAMP_S": "TIMESTAMP",
    "TIMESTAMP_MS": "TIMESTAMP",
    "TIMESTAMP_NS": "TIMESTAMP",
    "TIMESTAMP WITH TIME ZONE": "TIMESTAMPTZ",
}
_DECIMAL = re.compile(r"^DECIMAL\(\d+,\d+\)$")


def quote(name: str) -> str:
    """``name`` as a double-quoted SQL identifier (DuckDB and PostgreSQL)."""
    return '"' + name.replace('"', '""') + '"'


def check_dataset_name(name: str) -> None:
    """Refuse a dataset name that is not :data:`~strongroom.data.base.DATASET_NAME` or that
    starts like a system catalog (``pg_``, ``duckdb_``, ...)."""
    if not isinstance(name, str) or not re.fullmatch(DATASET_NAME, name):
        raise IngestError(
            f"bad dataset name {str(name)[:80]!r}: use lower-case letters, digits and underscores, "
            "starting with a letter (at most 63), e.g. daily_prices"
        )
    if name.startswith(_RESERVED):
        raise IngestError(f"bad dataset name {name!r}: names starting {', '.join(_RESERVED)} are reserved")


def column_name(name: str, *, source: str = "the file") -> str:
    """A column's loaded name (lower case), or an IngestError saying how to rename it."""
    lowered = name.lower()
    if not re.fullmatch(COLUMN_NAME, lowered):
        raise IngestError(
            f"{source}: column {name[:80]!r} is not a usable name: rename it to letters, digits and "
            "underscores (at most 63, not starting with a digit), e.g. close_price"
        )
    if lowered in BOOKKEEPING:
        raise IngestError(f"{source}: column {name!r} is reserved for strongroom's bookkeeping: rename it")
    return lowered


@dataclass
class StagedFile:
    """A checked file, held in a private engine until the backend has copied it."""

    source: str
    sha256: str
    rows: int
    columns: tuple[tuple[str, str], ...]
    valid_time_column: str
    key_columns: tuple[str, ...]
    _engine: duckdb.DuckDBPyConnection

    def arrow_stream(self) -> _ArrowStream:
        """The rows, sorted, as an Arrow C stream (what DuckDB's ``from_arrow`` reads)."""
        return _ArrowStream(self._engine.cursor().sql("SELECT * FROM staged"))

    def batches(self, size: int = 10_000) -> Iterator[list[tuple[object, ...]]]:
        """The rows, sorted, as Python tuples in batches (for PostgreSQL's COPY)."""
        cursor = self._engine.cursor()
        try:
            cursor.execute("SELECT * FROM staged")
            while batch := cursor.fetchmany(size):
                yield batch
        finally:
            cursor.close()


class _ArrowStream:
    # DuckDB refuses a relation of another engine as a table, but reads any object that
    # exports the Arrow C stream protocol, without pyarrow.
    def __init__(self, relation: duckdb.DuckDBPyRelation) -> None:
        self._relation = relation

    def __arrow_c_stream__(self, requested_schema: object = None) -> object:
        return self._relation.__arrow_c_stream__(requested_schema)


@contextmanager
def stage(
    path: Path,
    *,
    valid_time_column: str,
    key_columns: Sequence[str] = (),
    existing: Sequence[tuple[str, str]] | None = None,
    sha256: str | None = None,
) -> Iterator[StagedFile]:
    """Read and check ``path`` (see the module's rules); ``existing``: the dataset's columns if
    it has been loaded before; ``sha256``: the file's, if the caller has it already. Raises
    :class:`~strongroom.errors.IngestError` (or a subclass)."""
    source = path.name
    kind = SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise UnsupportedFormat(f"{source}: a dataset is loaded from a .csv or .parquet file, not {path.suffix!r}")
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise IngestError(f"{source}: cannot read the file ({exc.strerror}); check the path") from exc
    if size == 0:
        raise CorruptDocument(f"{source} is empty: nothing to load")
    valid_time = column_name(valid_time_column, source="valid_time_column")
    keys = tuple(column_name(k, source="key_columns") for k in key_columns)
    if valid_time in keys:
        raise IngestError(
            f"{valid_time!r} is the valid-time column: leave it out of key_columns (it is always part of the key)"
        )
    if len(set(keys)) != len(keys):
        raise IngestError(f"key_columns name a column twice: {list(keys)}")
    digest = sha256 or file_sha256(path)
    spill = tempfile.mkdtemp(prefix="strongroom-stage-")
    engine = duckdb.connect(
        ":memory:",
        config={"autoinstall_known_extensions": False, "autoload_known_extensions": False, "temp_directory": spill},
    )
    try:
        try:
            readable = _as_named(path, Path(spill))
            columns, rows = _prepare(engine, path, kind, existing, valid_time, keys, readable)
        except duckdb.Error as exc:
            raise CorruptDocument(f"{source}: cannot read it as {kind}: {first_line(exc)}; check the file") from exc
        yield StagedFile(
            source=source,
            sha256=digest,
            rows=rows,
            columns=tuple((n, t) for _, n, t in columns),
            valid_time_column=valid_time,
            key_columns=keys,
            _engine=engine,
        )
    finally:
        engine.close()
        shutil.rmtree(spill, ignore_errors=True)


def _as_named(path: Path, folder: Path) -> Path:
    """``path`` under a name DuckDB's readers take literally: they expand ``*``, ``?``, ``[...]``
    and ``{a,b}`` in a path, so a file named ``p[0-9].csv`` would load the rows of ``p7.csv``
    (and ``q*.csv`` those of every ``q...csv``) under its own name and content hash."""
    if not any(c in str(path) for c in "*?[]{}"):
        return path
    link = folder / f"file{path.suffix.lower()}"
    try:
        link.symlink_to(path.resolve())
    except OSError as exc:
        raise IngestError(f"{path.name}: cannot read a file whose path holds * ? [ ] {{ }}; rename it") from exc
    return link


def _prepare(
    engine: duckdb.DuckDBPyConnection,
    path: Path,
    kind: str,
    existing: Sequence[tuple[str, str]] | None,
    valid_time: str,
    keys: tuple[str, ...],
    readable: Path,
) -> tuple[list[tuple[str, str, str]], int]:
    """Read the file (at ``readable``: see :func:`_as_named`) into the table ``staged``, checked,
    cast and sorted; its columns and rows."""
    source = path.name
    engine.execute("SET TimeZone = 'UTC'")  # a naive timestamp cast to TIMESTAMPTZ means UTC
    relation = _read(engine, readable, kind, source)
    columns = _columns(relation, source, existing)
    relation.create_view("source_file")
    if not engine.execute("SELECT 1 FROM source_file LIMIT 1").fetchall():  # before types: all text when empty
        raise CorruptDocument(f"{source} has no rows: nothing to load")
    _check_roles(columns, source, valid_time, keys)
    select = ", ".join(f"CAST({quote(raw)} AS {_sql_type(t)}) AS {quote(n)}" for raw, n, t in columns)
    order = ", ".join(quote(c) for c in (*keys, valid_time))
    try:
        engine.execute(f"CREATE TABLE staged AS SELECT {select} FROM source_file ORDER BY {order}")
    except duckdb.Error as exc:
        problem = first_line(exc)
        raise IngestError(f"{source}: a value does not fit its column, or a line is malformed: {problem}") from exc
    return columns, _check_rows(engine, source, valid_time, keys)


def _read(engine: duckdb.DuckDBPyConnection, path: Path, kind: str, source: str) -> duckdb.DuckDBPyRelation:
    try:
        if kind == "CSV":
            return engine.read_csv(str(path), header=True)
        return engine.read_parquet(str(path))
    except duckdb.Error as exc:
        raise CorruptDocument(f"{source}: cannot read it as {kind}: {first_line(exc)}; check the file") from exc


def _columns(
    relation: duckdb.DuckDBPyRelation, source: str, existing: Sequence[tuple[str, str]] | None
) -> list[tuple[str, str, str]]:
    """(name in the file, loaded name, type) of each column, in the dataset's order."""
    found: dict[str, tuple[str, str]] = {}
    for raw, duck_type in zip(relation.columns, relation.types, strict=True):
        name = column_name(raw, source=source)
        if name in found:
            raise IngestError(f"{source}: two columns are named {name!r} (names are not case-sensitive): rename one")
        found[name] = (raw, _canonical(str(duck_type), name, source))
    if existing is None:
        return [(raw, name, t) for name, (raw, t) in found.items()]
    wanted = [n for n, _ in existing]
    missing = [n for n in wanted if n not in found]
    extra = [n for n in found if n not in wanted]
    if missing or extra:
        problems = "; ".join(
            part
            for part in (
                f"it lacks {', '.join(missing)}" if missing else "",
                f"it has {', '.join(extra)}, which the dataset does not" if extra else "",
            )
            if part
        )
        raise IngestError(
            f"{source} does not have the dataset's columns ({problems}); the dataset's columns are "
            f"{', '.join(wanted)}: load a file with those, or load it as another dataset"
        )
    return [(found[n][0], n, t) for n, t in existing]


def _canonical(duck_type: str, name: str, source: str) -> str:
    upper = duck_type.upper()
    upper = _WIDEN.get(upper, upper)
    if upper in COLUMN_TYPES or _DECIMAL.match(upper):
        return upper
    raise IngestError(
        f"{source}: column {name!r} has type {duck_type}, which a dataset cannot hold: use numbers, text, "
        "booleans, dates or timestamps (write other values as text)"
    )


def _sql_type(canonical: str) -> str:
    return "TIMESTAMP WITH TIME ZONE" if canonical == "TIMESTAMPTZ" else canonical


def _check_roles(columns: list[tuple[str, str, str]], source: str, valid_time: str, keys: tuple[str, ...]) -> None:
    types = {name: t for _, name, t in columns}
    for role, name in (("valid-time", valid_time), *(("key", k) for k in keys)):
        if name not in types:
            raise IngestError(
                f"{source} has no {role} column {name!r}; its columns are {', '.join(types)}: name one of them"
            )
    if types[valid_time] not in TIME_TYPES:
        raise IngestError(
            f"{source}: the valid-time column {valid_time!r} holds {types[valid_time]}, not dates: write it as "
            "YYYY-MM-DD (or an ISO timestamp) in every row"
        )


def _check_rows(engine: duckdb.DuckDBPyConnection, source: str, valid_time: str, keys: tuple[str, ...]) -> int:
    # fetchall, not fetchone: DuckDB keeps a half-read result open on the connection
    ((rows,),) = engine.execute("SELECT count(*) FROM staged").fetchall()
    if rows == 0:
        raise CorruptDocument(f"{source} has no rows: nothing to load")
    for name in (valid_time, *keys):
        ((empty,),) = engine.execute(f"SELECT count(*) FROM staged WHERE {quote(name)} IS NULL").fetchall()
        if empty:
            raise IngestError(f"{source}: column {name!r} is empty in {empty} rows; every row needs it")
    if keys:
        key = ", ".join(quote(c) for c in (*keys, valid_time))
        found = engine.execute(f"SELECT {key} FROM staged GROUP BY ALL HAVING count(*) > 1 LIMIT 1").fetchall()
        if found:
            twice = found[0]
            shown = ", ".join(f"{c}={v!s}" for c, v in zip((*keys, valid_time), twice, strict=True))
            raise IngestError(f"{source}: more than one row has the key ({shown}); a load holds one row per key")
    return int(rows)


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file's bytes (hex); an unreadable file is an IngestError."""
    digest = hashlib.sha256()
    try:
        with path.open("rb") as f:
            while block := f.read(1 << 20):
                digest.update(block)
    except OSError as exc:
        raise IngestError(f"{path.name}: cannot read the file ({exc.strerror}); check the path") from exc
    return digest.hexdigest()
