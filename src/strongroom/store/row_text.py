"""Text in rows: find the rows of a SQLite file or a PostgreSQL database whose text (or JSON)
columns hold something, and scrub it out of them in place (or delete those rows), leaving no
old text behind in the file.

The caller says what to look for with two functions (strongroom's erasure passes the ones of
:class:`strongroom.governance.erasure.Needles`): ``scrub(text)`` returns the text without it,
so a row "holds it" when scrubbing changes one of its values. A JSON column is parsed and every
string in it (keys included) is scrubbed, then written back as JSON; one that does not parse is
scrubbed as text.

SQLite: the file is opened with ``PRAGMA secure_delete=ON`` (a changed or deleted row's old
bytes are zeroed, not left in free pages), and :func:`compact_sqlite` then runs ``VACUUM`` and
``PRAGMA wal_checkpoint(TRUNCATE)``: no free page keeps an old value, and the write-ahead log,
which holds copies of earlier pages, is emptied. PostgreSQL: the rows are updated by ``ctid``
in one transaction, then each changed table is rewritten with ``VACUUM FULL`` (its dead tuples,
which still hold the old text, are dropped with the old table file).

    spec = Rows("conversations.turns", "conversation_turns", text=("question",), json=("answer",))
    sqlite_rows(catalog, [spec], scrub, apply=False)   # {"conversations.turns": 3}
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from strongroom.errors import StoreError

__all__ = ["Rows", "Scrub", "compact_sqlite", "open_secure", "postgres_rows", "scrub_cell", "sqlite_rows"]

#: text -> the same text with what is sought replaced
Scrub = Callable[[str], str]
_BATCH = 5_000  # rows read at a time


@dataclass(frozen=True)
class Rows:
    """Where to look: the text and JSON columns of one table, reported as ``place``.
    ``delete``: a row that holds it is deleted instead of scrubbed (a row that cannot be
    used with its text replaced, such as a queued job or a signed-in session)."""

    place: str
    table: str
    text: tuple[str, ...] = ()
    json: tuple[str, ...] = ()
    delete: bool = False
    #: SQLite only: more ``column = expression`` assignments made on a changed row (e.g. a
    #: pending proposal, whose change no longer matches its hash, set to ``failed``)
    also: str = ""

    @property
    def columns(self) -> tuple[str, ...]:
        return (*self.text, *self.json)


def _scrub_json(value: Any, scrub: Scrub) -> Any:
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {scrub(str(k)): _scrub_json(v, scrub) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub_json(v, scrub) for v in value]
    return value


def scrub_cell(value: object, scrub: Scrub, *, is_json: bool) -> object:
    """``value`` scrubbed: text as text, JSON text parsed, scrubbed and dumped again (sorted
    keys, as strongroom's stores write it); a value that is neither is returned as it is."""
    if isinstance(value, bytes | bytearray | memoryview):
        value = bytes(value).decode("utf-8", "replace")
    if not isinstance(value, str):
        return value
    if is_json:
        try:
            parsed = json.loads(value)
        except ValueError:
            return scrub(value)
        scrubbed = _scrub_json(parsed, scrub)
        return value if scrubbed == parsed and scrub(value) == value else json.dumps(scrubbed, sort_keys=True)
    return scrub(value)


def _changes(spec: Rows, row: Sequence[object], scrub: Scrub) -> dict[str, object]:
    """The columns of ``row`` (in ``spec.columns`` order) that scrubbing changes, with their new values."""
    out: dict[str, object] = {}
    for i, name in enumerate(spec.columns):
        new = scrub_cell(row[i], scrub, is_json=name in spec.json)
        if new != row[i]:
            out[name] = new
    return out


# -- SQLite ----------------------------------------------------------------------------------


def open_secure(path: Path) -> sqlite3.Connection:
    """An existing SQLite file opened read-write (never created), autocommit, with
    ``secure_delete`` on, for changes that must leave no old bytes behind."""
    try:
        db = sqlite3.connect(f"file:{path}?mode=rw", uri=True, timeout=60.0, isolation_level=None)
        db.execute("PRAGMA secure_delete=ON")
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open {path} to erase from it: {exc}") from exc
    return db


def _tables(db: sqlite3.Connection) -> set[str]:
    return {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def sqlite_rows(path: Path, specs: Sequence[Rows], scrub: Scrub, *, apply: bool) -> dict[str, int]:
    """Per place, how many rows of the SQLite file ``path`` hold what ``scrub`` removes (a
    table that is not there counts none); with ``apply`` they are scrubbed (or deleted) in one
    transaction, then the file is compacted (:func:`compact_sqlite`) even where no row changed
    (text deleted before may still lie in free pages). A missing file: nothing, untouched."""
    if not path.is_file():
        return {}
    counts: dict[str, int] = {}
    try:
        with closing(open_secure(path)) as db:
            present = _tables(db)
            if apply:
                db.execute("BEGIN IMMEDIATE")
            try:
                for spec in specs:
                    if spec.table not in present:
                        continue
                    counts[spec.place] = counts.get(spec.place, 0) + _sqlite_table(db, spec, scrub, apply=apply)
            except BaseException:
                if apply:
                    db.execute("ROLLBACK")
                raise
            if apply:
                db.execute("COMMIT")
                compact_sqlite(db, path)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot erase from {path}: {exc}; try again when no process is writing to it") from exc
    return counts


def _sqlite_table(db: sqlite3.Connection, spec: Rows, scrub: Scrub, *, apply: bool) -> int:
    names = ", ".join(_quote(c) for c in spec.columns)
    table = _quote(spec.table)
    found = 0
    for rowid, changes in _sqlite_changes(db, spec, scrub, f"SELECT rowid, {names} FROM {table}"):
        found += 1
        if not apply:
            continue
        if spec.delete:
            db.execute(f"DELETE FROM {table} WHERE rowid = ?", (rowid,))
        else:
            sets = ", ".join([*(f"{_quote(c)} = ?" for c in changes), *([spec.also] if spec.also else [])])
            db.execute(f"UPDATE {table} SET {sets} WHERE rowid = ?", (*changes.values(), rowid))
    return found


def _sqlite_changes(
    db: sqlite3.Connection, spec: Rows, scrub: Scrub, select: str
) -> Iterator[tuple[int, dict[str, object]]]:
    """The rowid and changes of each row that holds it, reading the table a batch of rows at
    a time in rowid order (a change keeps a row's rowid, so none is read twice)."""
    last: int | None = None
    while True:
        after = "" if last is None else f" WHERE rowid > {int(last)}"
        batch = db.execute(f"{select}{after} ORDER BY rowid LIMIT {_BATCH}").fetchall()
        if not batch:
            return
        last = batch[-1][0]
        for rowid, *row in batch:
            if changes := _changes(spec, row, scrub):
                yield rowid, changes


def compact_sqlite(db: sqlite3.Connection, path: Path, *, tries: int = 50) -> None:
    """``VACUUM`` the file (no free page keeps old bytes), then empty its write-ahead log
    (``wal_checkpoint(TRUNCATE)``, tried again while a reader of another connection holds it)."""
    db.execute("VACUUM")
    for _ in range(tries):
        busy, _log, _done = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        if not busy:
            return
        time.sleep(0.1)
    raise StoreError(
        f"{path}'s write-ahead log could not be emptied (a reader kept it busy); run the erasure again "
        "when the service is idle"
    )


# -- PostgreSQL ------------------------------------------------------------------------------


def postgres_rows(url: str, specs: Sequence[Rows], scrub: Scrub, *, apply: bool) -> dict[str, int]:
    """As :func:`sqlite_rows`, for tables (in the connection's search path) of the PostgreSQL
    database ``url``; a changed table is then rewritten (``VACUUM FULL``)."""
    import psycopg  # the postgres extra; only deployments with a PostgreSQL store get here

    counts: dict[str, int] = {}
    changed: list[str] = []
    try:
        with psycopg.connect(url) as db:
            for spec in specs:
                exists = db.execute("SELECT to_regclass(%s) IS NOT NULL", (spec.table,)).fetchone()
                if not exists or not exists[0]:
                    continue
                n = _postgres_table(db, spec, scrub, apply=apply)
                counts[spec.place] = counts.get(spec.place, 0) + n
                if n and apply:
                    changed.append(spec.table)
            db.commit()
            db.autocommit = True
            for table in dict.fromkeys(changed):
                db.execute(f"VACUUM FULL {_quote(table)}")
    except psycopg.Error as exc:
        raise StoreError(f"cannot erase from the PostgreSQL tables: {str(exc).splitlines()[0][:300]}") from exc
    return counts


def _postgres_table(db: Any, spec: Rows, scrub: Scrub, *, apply: bool) -> int:
    names = ", ".join(f"{_quote(c)}::text" for c in spec.columns)
    table = _quote(spec.table)
    lock = " FOR UPDATE" if apply else ""
    found: list[tuple[str, dict[str, object]]] = []  # only the rows that change are held
    with db.cursor(name="strongroom_row_text") as rows:
        rows.execute(f"SELECT ctid::text, {names} FROM {table}{lock}")
        while batch := rows.fetchmany(_BATCH):
            found += [(ctid, changes) for ctid, *row in batch if (changes := _changes(spec, row, scrub))]
    if not apply:
        return len(found)
    for ctid, changes in found:
        if spec.delete:
            db.execute(f"DELETE FROM {table} WHERE ctid = %s::tid", (ctid,))
        else:
            sets = ", ".join(f"{_quote(c)} = %s{'::jsonb' if c in spec.json else ''}" for c in changes)
            db.execute(f"UPDATE {table} SET {sets} WHERE ctid = %s::tid", (*changes.values(), ctid))
    return len(found)
