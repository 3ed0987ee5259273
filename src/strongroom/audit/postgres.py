"""The audit log in PostgreSQL (``Settings.store_url``): one chain for every replica.

An append takes a transaction-scoped advisory lock, reads the head, inserts the records
after it and a signed checkpoint of the new head, and commits; so appends from any number
of processes and hosts form one chain, with no fork and no gap (seq is the primary key and
is never drawn from a sequence). The checkpoint goes to this host's anchor file after the
commit, and its copy in ``audit_checkpoints`` lets any replica holding the (shared) key
see that the records other replicas appended are anchored too.

The tables are made by strongroom on first use (not by the store's Alembic revisions: the
audit log opens without the store, e.g. ``strongroom audit verify``); triggers refuse
UPDATE, DELETE and TRUNCATE on them, but for the one update an erasure makes: a format-3
record's ``erasable`` and ``erasable_salt`` set to NULL, all else unchanged. A table made by
an older strongroom gains the erasable columns on open. After an erasure the rows no longer
hold the text; the dead row versions that still do are removed by the next VACUUM
(autovacuum, or the operator's ``VACUUM audit_log``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from typing import Any

import psycopg
import psycopg.errors

from strongroom.audit.anchor import Anchor, Checkpoint
from strongroom.audit.log import COLUMNS, PAGE, ChainedLog, chain_rows, record_of, refuse_unerasable
from strongroom.audit.records import GENESIS, AuditEvent, AuditHead, AuditRecord, event_parts
from strongroom.errors import StoreError
from strongroom.store.postgres_schema import connect, describe_url, redact

__all__ = ["AUDIT_LOCK", "PostgresAuditLog"]

AUDIT_LOCK = 0x5352_4155_4449_54  # advisory lock key ("SRAUDIT"): one append at a time, on every host
_SCHEMA = """
CREATE TABLE IF NOT EXISTS audit_log (
    seq bigint PRIMARY KEY, at text NOT NULL, prev text NOT NULL, hash text NOT NULL, body text NOT NULL,
    format smallint NOT NULL, erasable text, erasable_salt text, erasable_sha256 text);
ALTER TABLE audit_log ADD COLUMN IF NOT EXISTS erasable text, ADD COLUMN IF NOT EXISTS erasable_salt text,
    ADD COLUMN IF NOT EXISTS erasable_sha256 text;
CREATE INDEX IF NOT EXISTS audit_log_at ON audit_log (at);
CREATE TABLE IF NOT EXISTS audit_checkpoints (
    n bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, seq bigint NOT NULL, hash text NOT NULL, at text NOT NULL,
    key_id text NOT NULL, sig text NOT NULL);
CREATE OR REPLACE FUNCTION strongroom_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS
    $$ BEGIN RAISE EXCEPTION 'the audit log is append-only'; END $$;
CREATE OR REPLACE FUNCTION strongroom_audit_erase_only() RETURNS trigger LANGUAGE plpgsql AS
    $$ BEGIN
        IF OLD.format >= 3 AND NEW.erasable IS NULL AND NEW.erasable_salt IS NULL
            AND (NEW.seq, NEW.at, NEW.prev, NEW.hash, NEW.body, NEW.format, NEW.erasable_sha256)
                IS NOT DISTINCT FROM (OLD.seq, OLD.at, OLD.prev, OLD.hash, OLD.body, OLD.format, OLD.erasable_sha256)
        THEN RETURN NEW; END IF;
        RAISE EXCEPTION 'the audit log is append-only';
    END $$;
CREATE OR REPLACE TRIGGER audit_log_append_only BEFORE DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION strongroom_audit_append_only();
CREATE OR REPLACE TRIGGER audit_log_erase_only BEFORE UPDATE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION strongroom_audit_erase_only();
CREATE OR REPLACE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION strongroom_audit_append_only();
CREATE OR REPLACE TRIGGER audit_checkpoints_append_only BEFORE UPDATE OR DELETE ON audit_checkpoints
    FOR EACH ROW EXECUTE FUNCTION strongroom_audit_append_only();
"""
_COLUMNS = COLUMNS


class PostgresAuditLog(ChainedLog):
    """The :class:`~strongroom.audit.AuditLog` in a PostgreSQL database; one connection,
    used by one call at a time.

    >>> log = PostgresAuditLog("postgresql://app@db/strongroom", anchor=anchor_for(settings))  # doctest: +SKIP
    """

    def __init__(self, url: str, *, anchor: Anchor | None = None) -> None:
        self.anchor = anchor
        self._url = url
        self._target, self._password = describe_url(url)
        self._lock = threading.Lock()
        self._db = self._connect()
        self._exists = self._table_exists()
        if self._exists:
            self._create(force=True)  # the guards, in case someone dropped them

    def _connect(self) -> psycopg.Connection[Any]:
        return connect(self._url, purpose=" for the audit log")

    def _run(self, action: str, fn: Any) -> Any:
        """``fn(db)`` under the lock, reconnecting once when the connection broke."""
        with self._lock:
            if self._db.broken or self._db.closed:
                self._db = self._connect()
            try:
                return fn(self._db)
            except psycopg.Error as exc:
                raise StoreError(
                    f"PostgreSQL at {self._target} failed to {action} the audit log: {redact(exc, self._password)}"
                ) from exc

    def close(self) -> None:
        with self._lock:
            self._db.close()
        if self.anchor is not None:
            self.anchor.close()

    def _table_exists(self) -> bool:
        row = self._db.execute("SELECT to_regclass('audit_log') IS NOT NULL").fetchone()
        return bool(row and row[0])

    def _exists_now(self) -> bool:
        return bool(self._run("read", lambda db: self._table_exists()))

    def _create(self, *, force: bool = False) -> None:
        if self._exists and not force:
            return
        with self._db.transaction():
            self._db.execute("SELECT pg_advisory_xact_lock(%s)", (AUDIT_LOCK,))
            self._db.execute(_SCHEMA)
        self._exists = True

    @staticmethod
    def _head(db: psycopg.Connection[Any]) -> AuditHead:
        row = db.execute("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
        return AuditHead(0, GENESIS) if row is None else AuditHead(int(row[0]), str(row[1]))

    def head(self) -> AuditHead:
        return self._run("read", lambda db: self._head(db) if self._table_exists() else AuditHead(0, GENESIS))  # type: ignore[no-any-return]

    def append_many(self, events: Sequence[AuditEvent]) -> list[int]:
        """Append records chained in order in one transaction, serialised with every other
        process's appends, with a signed checkpoint of the new head."""
        if not events:
            return []
        parts = [event_parts(event) for event in events]

        def append(db: psycopg.Connection[Any]) -> tuple[list[int], Checkpoint | None]:
            try:
                return attempt(db)
            except psycopg.errors.UndefinedTable:  # dropped while we ran: made again, verify tells
                self._exists = False
                return attempt(db)

        def attempt(db: psycopg.Connection[Any]) -> tuple[list[int], Checkpoint | None]:
            self._create()
            with db.transaction():
                db.execute("SELECT pg_advisory_xact_lock(%s)", (AUDIT_LOCK,))
                stamp = db.execute("SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', "
                                   "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"+00:00\"')").fetchone()  # fmt: skip
                assert stamp is not None
                rows = chain_rows(self._head(db), str(stamp[0]), parts)
                with db.cursor() as cur, cur.copy(f"COPY audit_log ({_COLUMNS}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
                checkpoint = self._checkpoint(db, AuditHead(rows[-1][0], rows[-1][3]))
            return [row[0] for row in rows], checkpoint

        seqs, checkpoint = self._run("append to", append)
        if checkpoint is not None and self.anchor is not None:
            self.anchor.write(checkpoint)  # after the commit: it never names a record that is not there
        return seqs  # type: ignore[no-any-return]

    def _checkpoint(self, db: psycopg.Connection[Any], head: AuditHead) -> Checkpoint | None:
        """Sign ``head`` and keep a copy in the database (inside the caller's transaction)."""
        if self.anchor is None:
            return None
        cp = self.anchor.sign(head)
        db.execute(
            "INSERT INTO audit_checkpoints (seq, hash, at, key_id, sig) VALUES (%s, %s, %s, %s, %s)",
            (cp.seq, cp.hash, cp.at, cp.key_id, cp.sig),
        )
        return cp

    def _page(self, after_seq: int, size: int) -> list[AuditRecord]:
        def fetch(db: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
            if not self._table_exists():
                return []
            return db.execute(
                f"SELECT {_COLUMNS} FROM audit_log WHERE seq > %s ORDER BY seq LIMIT %s", (after_seq, size)
            ).fetchall()

        rows: list[tuple[Any, ...]] = self._run("read", fetch)
        return [record_of(r) for r in rows]

    def _first_at(self, since: str) -> int | None:
        def first(db: psycopg.Connection[Any]) -> int | None:
            if not self._table_exists():
                return None
            row = db.execute("SELECT seq FROM audit_log WHERE at >= %s ORDER BY at, seq LIMIT 1", (since,)).fetchone()
            return None if row is None else int(row[0])

        return self._run("read", first)  # type: ignore[no-any-return]

    def _stored_checkpoints(self) -> Iterator[Checkpoint]:
        after = 0
        while True:

            def fetch(db: psycopg.Connection[Any], a: int = after) -> list[tuple[Any, ...]]:
                if db.execute("SELECT to_regclass('audit_checkpoints') IS NOT NULL").fetchone() != (True,):
                    return []
                return db.execute(
                    "SELECT n, seq, hash, at, key_id, sig FROM audit_checkpoints WHERE n > %s ORDER BY n LIMIT %s",
                    (a, PAGE * 10),
                ).fetchall()

            rows: list[tuple[Any, ...]] = self._run("read", fetch)
            for r in rows:
                yield Checkpoint(int(r[1]), str(r[2]), str(r[3]), str(r[4]), str(r[5]))
            if len(rows) < PAGE * 10:
                return
            after = int(rows[-1][0])

    def _checkpoint_head(self) -> None:
        assert self.anchor is not None

        def checkpoint(db: psycopg.Connection[Any]) -> Checkpoint | None:
            with db.transaction():
                db.execute("SELECT pg_advisory_xact_lock(%s)", (AUDIT_LOCK,))
                return self._checkpoint(db, self._head(db))

        cp: Checkpoint | None = self._run("checkpoint", checkpoint)
        if cp is not None:
            self.anchor.write(cp)

    def _adopt(self, batch: list[AuditRecord]) -> int:
        if not batch:
            return 0

        def adopt(db: psycopg.Connection[Any]) -> int:
            self._create()
            with db.transaction():
                db.execute("SELECT pg_advisory_xact_lock(%s)", (AUDIT_LOCK,))
                seqs = [r.seq for r in batch]
                have = dict(
                    db.execute(
                        "SELECT seq, hash FROM audit_log WHERE seq BETWEEN %s AND %s", (min(seqs), max(seqs))
                    ).fetchall()
                )
                for r in batch:
                    if r.seq in have and have[r.seq] != r.hash:
                        raise StoreError(
                            f"the target audit log already has a different record {r.seq}; migrate into an empty store"
                        )
                new = [r for r in batch if r.seq not in have]
                if new:
                    with db.cursor() as cur, cur.copy(f"COPY audit_log ({_COLUMNS}) FROM STDIN") as copy:
                        for r in new:
                            copy.write_row(tuple(r))
            return len(new)

        return self._run("adopt into", adopt)  # type: ignore[no-any-return]

    def _erase(self, seqs: list[int]) -> None:
        def erase(db: psycopg.Connection[Any]) -> None:
            if not self._table_exists():
                refuse_unerasable(seqs, {})
            with db.transaction():
                db.execute("SELECT pg_advisory_xact_lock(%s)", (AUDIT_LOCK,))
                rows = db.execute("SELECT seq, format FROM audit_log WHERE seq = ANY(%s)", (seqs,)).fetchall()
                refuse_unerasable(seqs, {int(r[0]): int(r[1]) for r in rows})
                db.execute(
                    "UPDATE audit_log SET erasable = NULL, erasable_salt = NULL "
                    "WHERE seq = ANY(%s) AND erasable IS NOT NULL",
                    (seqs,),
                )

        self._run("erase in", erase)
