"""The audit log in the catalog's SQLite file (table ``audit``): the embedded default.

Records are committed with ``synchronous=FULL`` on this connection (an ``fsync`` of the
WAL per group commit), so a record the service acknowledged survives a power loss, and a
checkpoint never names a record the database lost. A catalog written by an older
strongroom gains the ``format`` and erasable columns in place (its records keep their
format and verify).

The triggers refuse every UPDATE and DELETE but one: setting a format-3 record's
``erasable`` and ``erasable_salt`` to NULL, all else unchanged (:meth:`SqliteAuditLog.erase`).
The connection runs with ``secure_delete`` on, so the bytes an erasure (or a page split)
frees are overwritten with zeros, and an erasure ends with a WAL checkpoint that truncates
the WAL: the erased text is then in neither file.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path

from strongroom.audit.anchor import Anchor
from strongroom.audit.log import COLUMNS, ChainedLog, chain_rows, now, record_of, refuse_unerasable
from strongroom.audit.records import GENESIS, AuditEvent, AuditHead, AuditRecord, event_parts
from strongroom.errors import StoreError
from strongroom.store.sqlite import open_catalog

__all__ = ["SqliteAuditLog"]

log = logging.getLogger(__name__)

_TABLE = """
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY, at TEXT NOT NULL, prev TEXT NOT NULL, hash TEXT NOT NULL, body TEXT NOT NULL,
    format INTEGER NOT NULL DEFAULT 1, erasable TEXT, erasable_salt TEXT, erasable_sha256 TEXT);
"""
_ERASABLE_COLUMNS = ("erasable", "erasable_salt", "erasable_sha256")
#: the one update allowed: a format-3 record's erasable part and salt set to NULL, all else unchanged
_ERASE_ONLY = (
    "OLD.format >= 3 AND NEW.erasable IS NULL AND NEW.erasable_salt IS NULL AND NEW.seq IS OLD.seq "
    "AND NEW.at IS OLD.at AND NEW.prev IS OLD.prev AND NEW.hash IS OLD.hash AND NEW.body IS OLD.body "
    "AND NEW.format IS OLD.format AND NEW.erasable_sha256 IS OLD.erasable_sha256"
)
_GUARDS = f"""
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit WHEN NOT ({_ERASE_ONLY})
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE INDEX IF NOT EXISTS audit_at ON audit (at);
"""
_COLUMNS = COLUMNS
_INSERT = f"INSERT INTO audit ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"


class SqliteAuditLog(ChainedLog):
    """The :class:`~strongroom.audit.AuditLog` in a catalog file. Without ``anchor`` it
    writes no checkpoints and verifies the chain alone (tests, migration sources).

    >>> log = SqliteAuditLog(Path("/tmp/sr/catalog.sqlite3"), anchor=Anchor(anchor_path, key_path))  # doctest: +SKIP
    """

    def __init__(self, catalog: Path, *, anchor: Anchor | None = None) -> None:
        self.anchor = anchor
        self._lock = threading.Lock()
        try:
            self._db = open_catalog(catalog, "", shared=True)
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA secure_delete=ON")  # freed bytes are zeroed: erased text leaves the file
            self._exists = self._table_exists()
            if self._exists:
                self._migrate()
                self._db.executescript(_GUARDS)
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot open the audit log in {catalog}: {exc}; check the path") from exc
        self._catalog = catalog

    def close(self) -> None:
        with self._lock:
            self._db.close()
        if self.anchor is not None:
            self.anchor.close()

    def _migrate(self) -> None:
        """A table made by an older strongroom: add the format and erasable columns, and
        replace an update guard that allows no erasure, in place."""
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(audit)")}
        added = [
            ("format", "INTEGER NOT NULL DEFAULT 1"),
            *((name, "TEXT") for name in _ERASABLE_COLUMNS),
        ]
        for name, kind in added:
            if name not in columns:
                try:
                    self._db.execute(f"ALTER TABLE audit ADD COLUMN {name} {kind}")
                except sqlite3.OperationalError as exc:  # another process added it meanwhile
                    if "duplicate column" not in str(exc):
                        raise
        row = self._db.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = 'audit_no_update'"
        ).fetchone()
        if row is not None and "erasable" not in str(row[0]):
            self._db.execute("DROP TRIGGER IF EXISTS audit_no_update")

    def _table_exists(self) -> bool:
        return (
            self._db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'audit'").fetchone()
            is not None
        )

    def _exists_now(self) -> bool:
        with self._lock:
            return self._table_exists()

    def _create(self) -> None:
        """Made on the first write, so that a log someone dropped reads as dropped, not as empty
        (and made again if someone drops it while we run: verify tells from the checkpoints)."""
        if not self._exists or not self._table_exists():
            self._db.executescript(_TABLE + _GUARDS)
            self._exists = True

    def _head(self) -> AuditHead:
        row = self._db.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
        return AuditHead(0, GENESIS) if row is None else AuditHead(int(row[0]), str(row[1]))

    def head(self) -> AuditHead:
        with self._lock:
            return self._head() if self._table_exists() else AuditHead(0, GENESIS)

    def append_many(self, events: Sequence[AuditEvent]) -> list[int]:
        """Append records chained in order, in one transaction (a group commit: the service
        writes the records of concurrent requests together), then checkpoint the head."""
        if not events:
            return []
        parts = [event_parts(event) for event in events]
        with self._lock:
            self._create()
            self._db.execute("BEGIN IMMEDIATE")
            try:
                rows = chain_rows(self._head(), now(), parts)
                self._db.executemany(_INSERT, rows)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
            if self.anchor is not None:
                self.anchor.checkpoint(AuditHead(rows[-1][0], rows[-1][3]))
        return [row[0] for row in rows]

    def _page(self, after_seq: int, size: int) -> list[AuditRecord]:
        with self._lock:
            if not self._table_exists():
                return []
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM audit WHERE seq > ? ORDER BY seq LIMIT ?", (after_seq, size)
            ).fetchall()
        return [record_of(r) for r in rows]

    def _first_at(self, since: str) -> int | None:
        with self._lock:
            if not self._table_exists():
                return None
            # times rise with seq (one writer at a time), so the first by time is the first by seq
            row = self._db.execute("SELECT seq FROM audit WHERE at >= ? ORDER BY at, seq LIMIT 1", (since,)).fetchone()
        return None if row is None else int(row[0])

    def _checkpoint_head(self) -> None:
        assert self.anchor is not None
        with self._lock:
            self.anchor.checkpoint(self._head())

    def _adopt(self, batch: list[AuditRecord]) -> int:
        if not batch:
            return 0
        with self._lock:
            self._create()
            self._db.execute("BEGIN IMMEDIATE")
            try:
                seqs = [r.seq for r in batch]
                have = dict(
                    self._db.execute(
                        "SELECT seq, hash FROM audit WHERE seq BETWEEN ? AND ?", (min(seqs), max(seqs))
                    ).fetchall()
                )
                new = [tuple(r) for r in batch if _unseen(r, have)]
                self._db.executemany(_INSERT, new)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        return len(new)

    def _erase(self, seqs: list[int]) -> None:
        with self._lock:
            if not self._table_exists():
                refuse_unerasable(seqs, {})
            self._db.execute("BEGIN IMMEDIATE")
            try:
                formats: dict[int, int] = {}
                for i in range(0, len(seqs), 500):
                    chunk = seqs[i : i + 500]
                    marks = ", ".join("?" * len(chunk))
                    query = f"SELECT seq, format FROM audit WHERE seq IN ({marks})"
                    formats.update((int(s), int(f)) for s, f in self._db.execute(query, chunk))
                refuse_unerasable(seqs, formats)
                self._db.executemany(
                    "UPDATE audit SET erasable = NULL, erasable_salt = NULL WHERE seq = ? AND erasable IS NOT NULL",
                    [(s,) for s in seqs],
                )
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
            self._truncate_wal()

    def _truncate_wal(self) -> None:
        """Copy the WAL into the database and truncate it, so the pages that held the erased
        text (written there when the records were appended) are gone from the WAL too. Waits
        at most 10 s for other connections' reads to end (appends wait meanwhile)."""
        (timeout,) = self._db.execute("PRAGMA busy_timeout").fetchone()
        self._db.execute("PRAGMA busy_timeout = 10000")
        try:
            busy = self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        finally:
            self._db.execute(f"PRAGMA busy_timeout = {int(timeout)}")
        if busy is not None and busy[0]:
            log.warning(
                "the WAL of %s could not be truncated after an erasure (other connections kept reading); "
                "the erased text may remain in it until a checkpoint truncates it (erase again to retry)",
                self._catalog,
            )


def _unseen(record: AuditRecord, have: dict[int, str]) -> bool:
    if record.seq not in have:
        return True
    if have[record.seq] != record.hash:
        raise StoreError(
            f"the target audit log already has a different record {record.seq}; migrate into an empty store"
        )
    return False
