"""Where the model registry is kept: the :class:`RegistryStore` protocol and its SQLite backend
(three tables in the catalog file, like proposals and conversations).

``registry_entries`` holds one row per ``NAME@VERSION``; ``registry_evidence`` the evaluations
attached to them (append-only); ``registry_stages`` every stage an entry entered, with when,
who and by which proposal (append-only: "what was in production on 3 March" reads it). A stage
move is one transaction and a compare-and-set on the entry's stage; a move into production
retires the version of the same name in production before it, in the same transaction.

    store = SqliteRegistryStore(settings.catalog_path)
    store.add(entry)
    store.move("chat", "2", "validated", "production", at=now, by="ana", proposal_id=p.id)  # True once
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, cast

from strongroom.config import Settings
from strongroom.errors import StoreError
from strongroom.governance.registry import Evidence, Lineage, ModelEntry, Stage, StageChange
from strongroom.store.sqlite_tables import SqliteTables

__all__ = ["RegistryStore", "SqliteRegistryStore", "open_registry_store"]


class RegistryStore(Protocol):
    """Registry entries, their evidence and stage history. Safe to share between threads."""

    def add(self, entry: ModelEntry) -> None:
        """Register a new entry (its stage and the first line of its history); an existing
        ``NAME@VERSION`` is a :class:`~strongroom.errors.StoreError`."""
        ...

    def get(self, name: str, version: str) -> ModelEntry | None:
        """One entry with its evidence and history."""
        ...

    def entries(self, name: str | None = None) -> list[ModelEntry]:
        """Every entry (of ``name``), by name and registration time, with evidence and history."""
        ...

    def add_evidence(self, name: str, version: str, evidence: Evidence, by: str) -> None: ...

    def move(
        self, name: str, version: str, before: Stage, after: Stage, *, at: datetime, by: str, proposal_id: str
    ) -> list[str]:
        """Move an entry from ``before`` to ``after`` (into production: retiring the version of
        ``name`` in production, in the same transaction). The refs moved (this one first), or
        ``[]`` and nothing changed if the entry was not in ``before``."""
        ...

    def close(self) -> None: ...


_SCHEMA = """
CREATE TABLE IF NOT EXISTS registry_entries (
    name TEXT NOT NULL, version TEXT NOT NULL, kind TEXT NOT NULL, owner TEXT NOT NULL, risk_tier TEXT NOT NULL,
    binding TEXT NOT NULL, lineage TEXT NOT NULL, card TEXT NOT NULL, stage TEXT NOT NULL,
    created_at REAL NOT NULL, created_by TEXT NOT NULL, PRIMARY KEY (name, version));
CREATE TABLE IF NOT EXISTS registry_evidence (
    id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, version TEXT NOT NULL, eval_set TEXT NOT NULL,
    eval_sha256 TEXT NOT NULL, metrics TEXT NOT NULL, recorded_at REAL NOT NULL, audit_seq INTEGER NOT NULL,
    recorded_by TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS registry_evidence_by_entry ON registry_evidence (name, version);
CREATE TABLE IF NOT EXISTS registry_stages (
    id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, version TEXT NOT NULL, stage TEXT NOT NULL,
    at REAL NOT NULL, by TEXT NOT NULL, proposal_id TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS registry_stages_by_entry ON registry_stages (name, version);
"""
_ENTRY = "name, version, kind, owner, risk_tier, binding, lineage, card, stage, created_at, created_by"


def _dt(value: float) -> datetime:
    return datetime.fromtimestamp(value, UTC)


class SqliteRegistryStore:
    """The :class:`RegistryStore` in the catalog's SQLite file (one host; processes share it)."""

    def __init__(self, catalog: Path) -> None:
        self._tables = SqliteTables(catalog, _SCHEMA, "the model registry")

    def close(self) -> None:
        self._tables.close()

    def _tx(self) -> AbstractContextManager[sqlite3.Connection]:
        """One transaction (written at once: BEGIN IMMEDIATE), under the lock."""
        return self._tables.transaction(refused="the model registry refused the change")

    def _rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        try:
            with self._tables.lock:
                return self._tables.db.execute(sql, params).fetchall()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"the model registry could not be read: {exc}") from exc

    def add(self, entry: ModelEntry) -> None:
        at = entry.created_at or datetime.now(UTC)
        exists = "SELECT 1 FROM registry_entries WHERE name = ? AND version = ?"
        with self._tx() as db:
            if db.execute(exists, (entry.name, entry.version)).fetchone():
                raise StoreError(f"{entry.ref} is registered already; register a new version")
            db.execute(
                f"INSERT INTO registry_entries ({_ENTRY}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (entry.name, entry.version, entry.kind, entry.owner, entry.risk_tier, entry.binding,
                 json.dumps(entry.lineage.as_dict(), sort_keys=True), entry.card, entry.stage, at.timestamp(),
                 entry.created_by),
            )  # fmt: skip
            db.execute(
                "INSERT INTO registry_stages (name, version, stage, at, by, proposal_id) VALUES (?, ?, ?, ?, ?, '')",
                (entry.name, entry.version, entry.stage, at.timestamp(), entry.created_by),
            )

    def _complete(self, rows: list[tuple[Any, ...]]) -> list[ModelEntry]:
        if not rows:
            return []
        evidence: dict[tuple[str, str], list[Evidence]] = {}
        history: dict[tuple[str, str], list[StageChange]] = {}
        names = sorted({r[0] for r in rows})
        marks = ", ".join("?" * len(names))
        for n, v, s, sha, metrics, at, seq in self._rows(
            "SELECT name, version, eval_set, eval_sha256, metrics, recorded_at, audit_seq FROM registry_evidence "
            f"WHERE name IN ({marks}) ORDER BY id",
            tuple(names),
        ):
            evidence.setdefault((n, v), []).append(Evidence(s, sha, json.loads(metrics), _dt(at), seq))
        for n, v, stage, at, by, pid in self._rows(
            "SELECT name, version, stage, at, by, proposal_id FROM registry_stages "
            f"WHERE name IN ({marks}) ORDER BY id",
            tuple(names),
        ):
            history.setdefault((n, v), []).append(StageChange(stage, _dt(at), by, pid))
        out = []
        for r in rows:
            key = (r[0], r[1])
            out.append(
                ModelEntry(
                    name=r[0], version=r[1], kind=r[2], owner=r[3], risk_tier=r[4], binding=r[5],
                    lineage=Lineage(**json.loads(r[6])), card=r[7], stage=cast(Stage, r[8]), created_at=_dt(r[9]),
                    created_by=r[10], evidence=tuple(evidence.get(key, ())), history=tuple(history.get(key, ())),
                )
            )  # fmt: skip
        return out

    def get(self, name: str, version: str) -> ModelEntry | None:
        rows = self._rows(f"SELECT {_ENTRY} FROM registry_entries WHERE name = ? AND version = ?", (name, version))
        found = self._complete(rows)
        return found[0] if found else None

    def entries(self, name: str | None = None) -> list[ModelEntry]:
        clause, params = ("WHERE name = ?", (name,)) if name is not None else ("", ())
        rows = self._rows(f"SELECT {_ENTRY} FROM registry_entries {clause} ORDER BY name, created_at, rowid", params)
        return self._complete(rows)

    def add_evidence(self, name: str, version: str, evidence: Evidence, by: str) -> None:
        with self._tx() as db:
            if not db.execute(
                "SELECT 1 FROM registry_entries WHERE name = ? AND version = ?", (name, version)
            ).fetchone():
                raise StoreError(f"{name}@{version} is not registered")
            db.execute(
                "INSERT INTO registry_evidence (name, version, eval_set, eval_sha256, metrics, recorded_at, "
                "audit_seq, recorded_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (name, version, evidence.eval_set, evidence.eval_sha256, json.dumps(dict(evidence.metrics)),
                 evidence.recorded_at.timestamp(), evidence.audit_seq, by),
            )  # fmt: skip

    def move(
        self, name: str, version: str, before: Stage, after: Stage, *, at: datetime, by: str, proposal_id: str
    ) -> list[str]:
        stamp = at.timestamp()
        history = "INSERT INTO registry_stages (name, version, stage, at, by, proposal_id) VALUES (?, ?, ?, ?, ?, ?)"
        with self._tx() as db:
            changed = db.execute(
                "UPDATE registry_entries SET stage = ? WHERE name = ? AND version = ? AND stage = ?",
                (after, name, version, before),
            ).rowcount
            if changed != 1:
                return []
            db.execute(history, (name, version, after, stamp, by, proposal_id))
            moved = [f"{name}@{version}"]
            if after == "production":
                for (old,) in db.execute(
                    "SELECT version FROM registry_entries WHERE name = ? AND stage = 'production' AND version != ?",
                    (name, version),
                ).fetchall():
                    db.execute(
                        "UPDATE registry_entries SET stage = 'retired' WHERE name = ? AND version = ?", (name, old)
                    )
                    db.execute(history, (name, old, "retired", stamp, by, proposal_id))
                    moved.append(f"{name}@{old}")
            return moved


def open_registry_store(settings: Settings) -> RegistryStore:
    """The model registry of a deployment: tables in its SQLite catalog (one host)."""
    return SqliteRegistryStore(settings.catalog_path)
