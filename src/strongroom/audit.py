"""A hash-chained, append-only audit log in the catalog's SQLite file (table ``audit``).

Each record holds the hash of the one before it, and its own hash covers its content
and that link::

    hash[n] = sha256(canonical_json({"prev": hash[n-1], "at": time, **record}))

so editing a record breaks its hash, deleting one breaks the link of the next (to a hash
that no longer exists), and moving one breaks a link to a hash that exists elsewhere.
:meth:`AuditLog.verify` walks the chain and says where. Triggers refuse UPDATE and DELETE
on the table, so tampering takes a deliberate act on the file, which ``verify`` reveals.

>>> log = AuditLog(Path("/tmp/sr/catalog.sqlite3"))  # doctest: +SKIP
>>> log.append(AuditEvent(principal="ana", groups=("research",), action="search", query="revenue"))
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from strongroom.errors import StoreError
from strongroom.store.sqlite import open_catalog

__all__ = ["GENESIS", "AuditEvent", "AuditLog", "AuditProblem", "VerifyReport", "answer_hash"]

#: the "previous hash" of the first record
GENESIS = "0" * 64

_SCHEMA = """
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY, at TEXT NOT NULL, prev TEXT NOT NULL, hash TEXT NOT NULL, body TEXT NOT NULL);
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
"""


def answer_hash(text: str) -> str:
    """The SHA-256 of an answer's text, as kept in the audit record (not the text itself)."""
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class AuditEvent:
    """What one request did. Never holds a token, a key or a secret."""

    principal: str
    groups: tuple[str, ...]
    action: str
    outcome: str = "ok"
    auth: str = ""
    request_id: str = ""
    query: str = ""
    filters: dict[str, object] = field(default_factory=dict)
    target: str = ""
    chunks: tuple[tuple[str, str], ...] = ()
    generator: str = ""
    answer_sha256: str = ""
    detail: str = ""


def _canonical(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def _hash(prev: str, at: str, body: dict[str, object]) -> str:
    return hashlib.sha256(_canonical({"prev": prev, "at": at, **body})).hexdigest()


@dataclass(frozen=True)
class AuditProblem:
    """One break in the chain, at record ``seq``."""

    seq: int
    kind: Literal["edited", "deleted", "reordered"]
    message: str


@dataclass(frozen=True)
class VerifyReport:
    records: int
    problems: tuple[AuditProblem, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


class AuditLog:
    """Append and verify audit records; safe to share between threads."""

    def __init__(self, catalog: Path) -> None:
        self._lock = threading.Lock()
        try:
            self._db = open_catalog(catalog, _SCHEMA, shared=True)
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot open the audit log in {catalog}: {exc}; check the path") from exc

    def close(self) -> None:
        self._db.close()

    def append(self, event: AuditEvent) -> int:
        """Append a record chained to the last one; returns its ``seq``."""
        return self.append_many([event])[0]

    def append_many(self, events: Sequence[AuditEvent]) -> list[int]:
        """Append records chained in order, in one transaction (a group commit: the service
        writes the records of concurrent requests together); returns their ``seq``s."""
        # a shallow dict: asdict's deep copy took 56 µs a record, and JSON sees the same values
        bodies = [{f.name: getattr(event, f.name) for f in fields(event)} for event in events]
        at = datetime.now(UTC).isoformat()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                last = self._db.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
                seq, prev = (0, GENESIS) if last is None else (int(last[0]), str(last[1]))
                rows = []
                for body in bodies:
                    seq += 1
                    digest = _hash(prev, at, body)
                    rows.append((seq, at, prev, digest, _canonical(body).decode()))
                    prev = digest
                self._db.executemany("INSERT INTO audit VALUES (?, ?, ?, ?, ?)", rows)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        return [row[0] for row in rows]

    def _rows(self, since: datetime | None = None) -> Iterator[tuple[int, str, str, str, str]]:
        if since is not None:
            since = since.astimezone(UTC) if since.tzinfo else since.replace(tzinfo=UTC)
        with self._lock:
            if since is None:
                rows = self._db.execute("SELECT seq, at, prev, hash, body FROM audit ORDER BY rowid").fetchall()
            else:
                rows = self._db.execute(
                    "SELECT seq, at, prev, hash, body FROM audit WHERE at >= ? ORDER BY seq", (since.isoformat(),)
                ).fetchall()
        for r in rows:
            yield int(r[0]), str(r[1]), str(r[2]), str(r[3]), str(r[4])

    def chain(self) -> list[tuple[int, str, str, str, str]]:
        """The raw records (seq, at, prev, hash, body) in storage order, for a migration."""
        return list(self._rows())

    def adopt(self, records: Sequence[tuple[int, str, str, str, str]]) -> int:
        """Append another log's raw records verbatim (same hashes), so the chain verifies
        where it was copied to. Records already here (same seq and hash) are skipped, so a
        migration can be run again; a different record at a seq is an error. Returns how
        many were added."""
        added = 0
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                have = dict(self._db.execute("SELECT seq, hash FROM audit").fetchall())
                for seq, at, prev, digest, body in records:
                    if seq in have:
                        if have[seq] != digest:
                            raise StoreError(
                                f"the target audit log already has a different record {seq}; "
                                "migrate into an empty store"
                            )
                        continue
                    self._db.execute("INSERT INTO audit VALUES (?, ?, ?, ?, ?)", (seq, at, prev, digest, body))
                    added += 1
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        return added

    def records(self, since: datetime | None = None) -> list[dict[str, object]]:
        """Records (oldest first) at or after ``since``, each with seq, at, prev and hash."""
        out: list[dict[str, object]] = []
        for seq, at, prev, digest, body in self._rows(since):
            out.append({"seq": seq, "at": at, **json.loads(body), "prev": prev, "hash": digest})
        return out

    def export(self, out: Path | None = None, since: datetime | None = None) -> Sequence[str]:
        """JSON lines for a SIEM; written to ``out`` when given, and returned."""
        lines = [json.dumps(r, sort_keys=True, default=str) for r in self.records(since)]
        if out is not None:
            out.write_text("".join(f"{line}\n" for line in lines))
        return lines

    def verify(self) -> VerifyReport:
        """Walk the chain in storage order and report every edited, deleted or reordered record."""
        rows = list(self._rows())
        problems: list[AuditProblem] = []
        by_hash = {digest: seq for seq, _, _, digest, _ in rows}
        prev_hash, prev_seq = GENESIS, 0
        for seq, at, prev, digest, body in rows:
            try:
                content = json.loads(body)
            except ValueError:
                content = None
            if not isinstance(content, dict) or _hash(prev, at, content) != digest:
                problems.append(AuditProblem(seq, "edited", f"record {seq}: its content does not match its hash"))
            elif prev != prev_hash:
                if prev in by_hash:
                    problems.append(
                        AuditProblem(
                            seq,
                            "reordered",
                            f"record {seq} is out of place: it was written right after record "
                            f"{by_hash[prev]}, but follows record {prev_seq}",
                        )
                    )
                else:
                    problems.append(
                        AuditProblem(
                            seq,
                            "deleted",
                            f"a record before {seq} is missing (or was rewritten): record {seq} "
                            f"does not link to record {prev_seq}",
                        )
                    )
            prev_hash, prev_seq = digest, seq
        return VerifyReport(len(rows), tuple(problems))
