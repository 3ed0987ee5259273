"""Where four-eyes proposals are kept: the :class:`Proposal` value, the :class:`ProposalStore`
protocol and its SQLite backend (a table in the catalog file, like conversations and keys).

The store keeps rows and makes each decision a compare-and-set (:meth:`ProposalStore.transition`):
of two approvers racing, exactly one moves a proposal out of ``proposed``. Who may propose,
approve or break glass is decided by :mod:`strongroom.service.approvals`.

    store = SqliteProposalStore(settings.catalog_path)
    store.add(proposal)
    store.transition(proposal.id, "proposed", "approved", checker="bo", at=now) # True once
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol

from strongroom.config import Settings
from strongroom.errors import StoreError
from strongroom.store.sqlite_tables import SqliteTables

__all__ = [
    "Proposal",
    "ProposalStore",
    "SqliteProposalStore",
    "Status",
    "canonical",
    "change_hash",
    "open_proposal_store",
]

#: proposed -> approved -> applied (or failed: the change was no longer valid when applied);
#: proposed -> rejected | expired; break-glass: applied at once by an admin, awaiting review
Status = Literal["proposed", "approved", "applied", "failed", "rejected", "expired", "break-glass"]


def canonical(change: Mapping[str, Any]) -> str:
    """The change as canonical JSON (sorted keys, no spaces): what is hashed and kept."""
    return json.dumps(change, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def change_hash(change: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the change's canonical JSON."""
    return hashlib.sha256(canonical(change).encode()).hexdigest()


@dataclass(frozen=True)
class Proposal:
    """A change waiting for (or past) a second person's decision.

    ``maker``: the person who proposed it (an API key's owner, never the key); ``maker_principal``,
    ``maker_groups`` and ``maker_roles``: the principal as it proposed, which the change is
    applied as (so it is re-checked against what the maker could do). ``change``: the exact
    change; ``change_sha256``: the hash of its canonical JSON. ``break_glass``: applied by one
    admin without approval; ``reviewed_by``: the approver who reviewed that afterwards.
    ``maker_persons``: every person behind the maker's principal (for an API key, its owner and
    whoever created it); none of them may decide it. Empty for proposals kept before it was."""

    id: str
    kind: str
    change: Mapping[str, Any]
    change_sha256: str
    maker: str
    maker_principal: str
    maker_groups: frozenset[str]
    maker_roles: frozenset[str]
    reason: str
    created_at: datetime
    expires_at: datetime
    status: Status = "proposed"
    checker: str = ""
    decided_at: datetime | None = None
    detail: str = ""
    break_glass: bool = False
    reviewed_by: str = ""
    reviewed_at: datetime | None = None
    maker_persons: frozenset[str] = frozenset()

    def expired(self, now: datetime) -> bool:
        return self.status == "proposed" and now >= self.expires_at

    def describe(self) -> dict[str, object]:
        """The proposal as JSON-ready data (what the CLI and HTTP show)."""
        return {
            "id": self.id,
            "kind": self.kind,
            "change": dict(self.change),
            "change_sha256": self.change_sha256,
            "maker": self.maker,
            "reason": self.reason,
            "created_at": self.created_at.isoformat(),
            "expires_at": self.expires_at.isoformat(),
            "status": self.status,
            "checker": self.checker,
            "decided_at": self.decided_at.isoformat() if self.decided_at else None,
            "detail": self.detail,
            "break_glass": self.break_glass,
            "reviewed_by": self.reviewed_by,
            "reviewed_at": self.reviewed_at.isoformat() if self.reviewed_at else None,
        }


class ProposalStore(Protocol):
    """Proposals by id; each decision a compare-and-set. Safe to share between threads."""

    def add(self, proposal: Proposal) -> None:
        """Keep a new proposal (an id already there is a :class:`~strongroom.errors.StoreError`)."""
        ...

    def get(self, proposal_id: str) -> Proposal | None: ...

    def list(self, *, maker: str | None = None, status: Status | None = None) -> list[Proposal]:
        """Proposals, newest first: ``maker``'s only, or of one ``status``, if given."""
        ...

    def transition(
        self, proposal_id: str, before: Status, after: Status, *, checker: str, at: datetime, detail: str = ""
    ) -> bool:
        """Move a proposal from ``before`` to ``after`` (recording who and when); False, and
        nothing changed, if it was not in ``before`` (someone else decided first)."""
        ...

    def review(self, proposal_id: str, reviewer: str, at: datetime) -> bool:
        """Mark a break-glass change reviewed; False if it is not one or was reviewed already."""
        ...

    def close(self) -> None: ...


_SCHEMA = """
CREATE TABLE IF NOT EXISTS proposals (
    id TEXT PRIMARY KEY, kind TEXT NOT NULL, change TEXT NOT NULL, change_sha256 TEXT NOT NULL,
    maker TEXT NOT NULL, maker_principal TEXT NOT NULL, maker_groups TEXT NOT NULL, maker_roles TEXT NOT NULL,
    reason TEXT NOT NULL, created_at REAL NOT NULL, expires_at REAL NOT NULL, status TEXT NOT NULL,
    checker TEXT NOT NULL, decided_at REAL, detail TEXT NOT NULL, break_glass INTEGER NOT NULL,
    reviewed_by TEXT NOT NULL, reviewed_at REAL, maker_persons TEXT);
CREATE INDEX IF NOT EXISTS proposals_by_status ON proposals (status, created_at);
"""
_COLUMNS = (
    "id, kind, change, change_sha256, maker, maker_principal, maker_groups, maker_roles, reason, created_at, "
    "expires_at, status, checker, decided_at, detail, break_glass, reviewed_by, reviewed_at, maker_persons"
)


def _dt(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


def _row(p: Proposal) -> tuple[Any, ...]:
    return (
        p.id, p.kind, canonical(p.change), p.change_sha256, p.maker, p.maker_principal,
        json.dumps(sorted(p.maker_groups)), json.dumps(sorted(p.maker_roles)), p.reason,
        p.created_at.timestamp(), p.expires_at.timestamp(), p.status, p.checker,
        p.decided_at.timestamp() if p.decided_at else None, p.detail, int(p.break_glass),
        p.reviewed_by, p.reviewed_at.timestamp() if p.reviewed_at else None, json.dumps(sorted(p.maker_persons)),
    )  # fmt: skip


def _proposal(r: tuple[Any, ...]) -> Proposal:
    return Proposal(
        r[0], r[1], json.loads(r[2]), r[3], r[4], r[5], frozenset(json.loads(r[6])), frozenset(json.loads(r[7])),
        r[8], _dt(r[9]) or datetime.now(UTC), _dt(r[10]) or datetime.now(UTC), r[11], r[12], _dt(r[13]), r[14],
        bool(r[15]), r[16], _dt(r[17]), frozenset(json.loads(r[18])) if r[18] else frozenset(),
    )  # fmt: skip


class SqliteProposalStore:
    """The :class:`ProposalStore` in the catalog's SQLite file (one host; processes share it)."""

    def __init__(self, catalog: Path) -> None:
        self._tables = SqliteTables(catalog, _SCHEMA, "the proposal table")
        self._execute = self._tables.execute
        db = self._tables.db
        try:
            if "maker_persons" not in {row[1] for row in db.execute("PRAGMA table_info(proposals)")}:
                try:  # a table made before proposals kept the maker's persons (NULL: the maker only)
                    db.execute("ALTER TABLE proposals ADD COLUMN maker_persons TEXT")
                except sqlite3.OperationalError as exc:  # another process added it meanwhile
                    if "duplicate column" not in str(exc):
                        raise
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot open the proposal table in {catalog}: {exc}; check the path") from exc

    def close(self) -> None:
        self._tables.close()

    def add(self, proposal: Proposal) -> None:
        self._execute(f"INSERT INTO proposals ({_COLUMNS}) VALUES ({', '.join('?' * 19)})", _row(proposal))

    def get(self, proposal_id: str) -> Proposal | None:
        rows, _ = self._execute(f"SELECT {_COLUMNS} FROM proposals WHERE id = ?", (proposal_id,))
        return _proposal(rows[0]) if rows else None

    def list(self, *, maker: str | None = None, status: Status | None = None) -> list[Proposal]:
        where, params = [], []
        if maker is not None:
            where.append("maker = ?")
            params.append(maker)
        if status is not None:
            where.append("status = ?")
            params.append(status)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        rows, _ = self._execute(
            f"SELECT {_COLUMNS} FROM proposals {clause} ORDER BY created_at DESC, rowid DESC", tuple(params)
        )
        return [_proposal(r) for r in rows]

    def transition(
        self, proposal_id: str, before: Status, after: Status, *, checker: str, at: datetime, detail: str = ""
    ) -> bool:
        flag = ", break_glass = 1" if after == "break-glass" else ""
        _, changed = self._execute(
            f"UPDATE proposals SET status = ?, checker = ?, decided_at = ?, detail = ?{flag} "
            "WHERE id = ? AND status = ?",
            (after, checker, at.timestamp(), detail[:500], proposal_id, before),
        )
        return changed == 1

    def review(self, proposal_id: str, reviewer: str, at: datetime) -> bool:
        _, changed = self._execute(
            "UPDATE proposals SET reviewed_by = ?, reviewed_at = ? WHERE id = ? AND break_glass = 1 "
            "AND reviewed_by = ''",
            (reviewer, at.timestamp(), proposal_id),
        )
        return changed == 1


def open_proposal_store(settings: Settings) -> ProposalStore:
    """The proposal store of a deployment: a table in its SQLite catalog (one host)."""
    return SqliteProposalStore(settings.catalog_path)
