"""Where legal holds and retention policies are kept: the :class:`HoldStore` protocol and its
SQLite backend (two tables in the catalog file, like proposals and conversations).

A hold is never deleted: releasing it stamps ``released_at``/``released_by`` (a
compare-and-set, so a hold is released once). A retention policy is a row by name; setting
one again replaces it. Who may place, release or set is decided by
:mod:`strongroom.service.retention`; what a hold covers and what has expired by
:mod:`strongroom.governance`.

    store = open_hold_store(settings)
    store.add(hold)
    hold_on(store.active(), version)      # the hold that keeps ``version``, or None
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from strongroom.config import Settings
from strongroom.governance.holds import Hold
from strongroom.governance.retention import RetentionPolicy
from strongroom.store.sqlite_tables import SqliteTables
from strongroom.types import frozen_meta

__all__ = ["HoldStore", "SqliteHoldStore", "open_hold_store"]


class HoldStore(Protocol):
    """Legal holds by id and retention policies by name. Safe to share between threads."""

    def add(self, hold: Hold) -> None:
        """Keep a new hold (an id already there is a :class:`~strongroom.errors.StoreError`)."""
        ...

    def get(self, hold_id: str) -> Hold | None: ...

    def holds(self, *, active_only: bool = False) -> list[Hold]:
        """Holds, oldest first (only the unreleased ones with ``active_only``)."""
        ...

    def active(self) -> list[Hold]:
        """The holds in force (not released), oldest first."""
        ...

    def release(self, hold_id: str, by: str, at: datetime) -> bool:
        """Release an active hold; False, and nothing changed, if it is not active."""
        ...

    def policies(self) -> list[RetentionPolicy]:
        """Retention policies, by name."""
        ...

    def set_policy(self, policy: RetentionPolicy) -> RetentionPolicy | None:
        """Keep ``policy`` (replacing one of its name); returns the one replaced."""
        ...

    def remove_policy(self, policy_id: str) -> RetentionPolicy | None:
        """Remove a policy; returns it, or None if there was none."""
        ...

    def close(self) -> None: ...


_SCHEMA = """
CREATE TABLE IF NOT EXISTS legal_holds (
    id TEXT PRIMARY KEY, matter_id TEXT NOT NULL, creator TEXT NOT NULL, reason TEXT NOT NULL,
    created_at REAL NOT NULL, document_id TEXT NOT NULL, source TEXT NOT NULL, query TEXT NOT NULL,
    released_at REAL, released_by TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS retention_policies (
    id TEXT PRIMARY KEY, policy TEXT NOT NULL);
"""
_COLUMNS = "id, matter_id, creator, reason, created_at, document_id, source, query, released_at, released_by"


def _hold(r: tuple[Any, ...]) -> Hold:
    return Hold(
        id=r[0], matter_id=r[1], creator=r[2], reason=r[3], created_at=datetime.fromtimestamp(r[4], UTC),
        document_id=r[5], source=r[6], query=frozen_meta(json.loads(r[7])),
        released_at=None if r[8] is None else datetime.fromtimestamp(r[8], UTC), released_by=r[9],
    )  # fmt: skip


class SqliteHoldStore:
    """The :class:`HoldStore` in the catalog's SQLite file (one host; processes share it)."""

    def __init__(self, catalog: Path) -> None:
        self._tables = SqliteTables(catalog, _SCHEMA, "the legal hold tables")
        self._execute = self._tables.execute

    def close(self) -> None:
        self._tables.close()

    def add(self, hold: Hold) -> None:
        row = (
            hold.id, hold.matter_id, hold.creator, hold.reason, hold.created_at.timestamp(), hold.document_id,
            hold.source, json.dumps(dict(hold.query), sort_keys=True),
            hold.released_at.timestamp() if hold.released_at else None, hold.released_by,
        )  # fmt: skip
        self._execute(f"INSERT INTO legal_holds ({_COLUMNS}) VALUES ({', '.join('?' * 10)})", row)

    def get(self, hold_id: str) -> Hold | None:
        rows, _ = self._execute(f"SELECT {_COLUMNS} FROM legal_holds WHERE id = ?", (hold_id,))
        return _hold(rows[0]) if rows else None

    def holds(self, *, active_only: bool = False) -> list[Hold]:
        clause = "WHERE released_at IS NULL" if active_only else ""
        rows, _ = self._execute(f"SELECT {_COLUMNS} FROM legal_holds {clause} ORDER BY created_at, rowid")
        return [_hold(r) for r in rows]

    def active(self) -> list[Hold]:
        return self.holds(active_only=True)

    def release(self, hold_id: str, by: str, at: datetime) -> bool:
        _, changed = self._execute(
            "UPDATE legal_holds SET released_at = ?, released_by = ? WHERE id = ? AND released_at IS NULL",
            (at.timestamp(), by, hold_id),
        )
        return changed == 1

    def policies(self) -> list[RetentionPolicy]:
        rows, _ = self._execute("SELECT policy FROM retention_policies ORDER BY id")
        return [RetentionPolicy.from_dict(json.loads(r[0])) for r in rows]

    def _swap(self, policy_id: str, data: str | None) -> RetentionPolicy | None:
        """Replace (or, ``data`` None, remove) the policy ``policy_id`` in one transaction; the old one."""
        with self._tables.transaction("the retention policy table") as db:
            old = db.execute("SELECT policy FROM retention_policies WHERE id = ?", (policy_id,)).fetchall()
            db.execute("DELETE FROM retention_policies WHERE id = ?", (policy_id,))
            if data is not None:
                db.execute("INSERT INTO retention_policies (id, policy) VALUES (?, ?)", (policy_id, data))
        return RetentionPolicy.from_dict(json.loads(old[0][0])) if old else None

    def set_policy(self, policy: RetentionPolicy) -> RetentionPolicy | None:
        return self._swap(policy.id, json.dumps(policy.describe(), sort_keys=True))

    def remove_policy(self, policy_id: str) -> RetentionPolicy | None:
        return self._swap(policy_id, None)


def open_hold_store(settings: Settings) -> HoldStore:
    """The legal hold and retention policy store of a deployment: tables in its SQLite catalog (one host)."""
    return SqliteHoldStore(settings.catalog_path)
