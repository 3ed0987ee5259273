"""Where research-agent runs are kept: each run's record and its events, so a run can be
listed, followed, replayed and resumed after the process that ran it died.

The :class:`RunStore` protocol (the rows, :class:`RunRows`, and the events,
:class:`RunEvents`) and its SQLite backend: tables in the catalog file, as conversations
keep theirs. The store keeps rows and decides nothing: who may read, cancel or resume a run
is decided by :mod:`strongroom.service.agent_runs`. A run's question and answer are kept
whole here (only the owner reads them back); the audit log keeps the question redacted.

    store = SqliteRunStore(settings.catalog_path)
    store.save(run)
    store.add_event(RunEvent(run.id, 1, "started", {"question": run.question}))
    [e.kind for e in store.events(run.id, after=0)]

A status changes with :meth:`RunRows.transition`, which applies only while the run is in
one of the states it names: two processes (the service and a CLI ``cancel``) never undo each
other's change.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from strongroom.agent.base import AgentLimits, RunEvent
from strongroom.config import Settings
from strongroom.errors import StoreError
from strongroom.store.sqlite import open_catalog

__all__ = [
    "ACTIVE",
    "FINISHED",
    "STATUSES",
    "AgentRun",
    "RunEvents",
    "RunRows",
    "RunStore",
    "SqliteRunStore",
    "open_run_store",
]

#: every status a run can have
STATUSES = ("queued", "running", "answered", "limit", "cancelled", "error", "interrupted")
#: a run in one of these may still change on its own
ACTIVE = ("queued", "running")
#: a run in one of these is over (``interrupted`` may be resumed)
FINISHED = ("answered", "limit", "cancelled", "error", "interrupted")


@dataclass(frozen=True)
class AgentRun:
    """One run of the research agent.

    ``owner``, ``groups``, ``roles``: its principal when it was created; ``question`` as asked
    (only the owner reads it back); ``as_of``/``known_at``: the instants its tools read at
    (ISO, fixed when it was created, never past that moment), ``clocks`` the clocks as asked
    and applied; ``status`` one of :data:`STATUSES`; ``result``: what it came to (JSON, see
    :func:`strongroom.service.agent_run_views.result_record`), None until it ends;
    ``cancel_requested``: a cancel asked while it ran (it stops at its next step);
    ``worker``: ``host:pid`` of the process running it (empty when none).
    """

    id: str
    owner: str
    groups: tuple[str, ...]
    roles: tuple[str, ...]
    question: str
    route: str
    as_of: str
    known_at: str
    limits: AgentLimits
    status: str
    created_at: datetime
    updated_at: datetime
    clocks: Mapping[str, object] = field(default_factory=dict)
    result: Mapping[str, Any] | None = None
    reason: str = ""
    cancel_requested: bool = False
    worker: str = ""


class RunRows(Protocol):
    """Each owner's runs."""

    def save(self, run: AgentRun) -> None:
        """Add a run, or replace the row of one with the same id."""
        ...

    def get(self, run_id: str) -> AgentRun | None:
        """The run ``run_id``; None if there is none."""
        ...

    def runs(self, owner: str | None = None, statuses: Sequence[str] = (), limit: int = 100) -> list[AgentRun]:
        """Runs newest first: ``owner``'s (None: everyone's), only in ``statuses`` if given."""
        ...

    def transition(self, run_id: str, allowed: Sequence[str], **changes: Any) -> AgentRun | None:
        """Apply ``changes`` (fields of :class:`AgentRun`) to run ``run_id`` only while its
        status is one of ``allowed``, in one statement; the run as changed, or None (no such
        run, or not in one of those states)."""
        ...


class RunEvents(Protocol):
    """The events of each run, by ``(run_id, seq)``."""

    def add_event(self, event: RunEvent) -> None:
        """Keep ``event``, replacing one with the same run and seq (a resumed run sends the
        events of a step it had not checkpointed again, under the same numbers)."""
        ...

    def events(self, run_id: str, after: int = 0, limit: int = 1000) -> list[RunEvent]:
        """Run ``run_id``'s events with ``seq > after``, in order, at most ``limit``."""
        ...


class RunStore(RunRows, RunEvents, Protocol):
    """Runs and their events; safe to share between threads. What the application layer holds."""

    def close(self) -> None: ...


_SCHEMA = """
CREATE TABLE IF NOT EXISTS agent_runs (
    id TEXT PRIMARY KEY, owner TEXT NOT NULL, groups_json TEXT NOT NULL, roles_json TEXT NOT NULL,
    question TEXT NOT NULL, route TEXT NOT NULL, as_of TEXT NOT NULL, known_at TEXT NOT NULL,
    clocks_json TEXT NOT NULL, limits_json TEXT NOT NULL, status TEXT NOT NULL,
    created_at REAL NOT NULL, updated_at REAL NOT NULL, result_json TEXT, reason TEXT NOT NULL,
    cancel_requested INTEGER NOT NULL, worker TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS agent_runs_by_owner ON agent_runs (owner, created_at);
CREATE INDEX IF NOT EXISTS agent_runs_by_status ON agent_runs (status);
CREATE TABLE IF NOT EXISTS agent_run_events (
    run_id TEXT NOT NULL REFERENCES agent_runs (id) ON DELETE CASCADE,
    seq INTEGER NOT NULL, kind TEXT NOT NULL, data_json TEXT NOT NULL, at REAL NOT NULL,
    PRIMARY KEY (run_id, seq));
"""
_COLUMNS = (
    "id, owner, groups_json, roles_json, question, route, as_of, known_at, clocks_json, limits_json, status, "
    "created_at, updated_at, result_json, reason, cancel_requested, worker"
)
# the fields transition() may change, and how each is written
_CHANGEABLE: dict[str, tuple[str, Callable[[Any], object]]] = {
    "status": ("status", str),
    "result": ("result_json", lambda v: None if v is None else _dumps(v)),
    "reason": ("reason", str),
    "cancel_requested": ("cancel_requested", int),
    "worker": ("worker", str),
}


def _dumps(value: object) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _row(run: AgentRun) -> tuple[Any, ...]:
    result = None if run.result is None else _dumps(run.result)
    return (
        run.id, run.owner, _dumps(list(run.groups)), _dumps(list(run.roles)), run.question, run.route,
        run.as_of, run.known_at, _dumps(dict(run.clocks)), _dumps(asdict(run.limits)), run.status,
        run.created_at.timestamp(), run.updated_at.timestamp(), result, run.reason, int(run.cancel_requested),
        run.worker,
    )  # fmt: skip


def _run(r: Sequence[Any]) -> AgentRun:
    return AgentRun(
        id=r[0],
        owner=r[1],
        groups=tuple(json.loads(r[2])),
        roles=tuple(json.loads(r[3])),
        question=r[4],
        route=r[5],
        as_of=r[6],
        known_at=r[7],
        clocks=json.loads(r[8]),
        limits=AgentLimits(**json.loads(r[9])),
        status=r[10],
        created_at=datetime.fromtimestamp(r[11], UTC),
        updated_at=datetime.fromtimestamp(r[12], UTC),
        result=None if r[13] is None else json.loads(r[13]),
        reason=r[14],
        cancel_requested=bool(r[15]),
        worker=r[16],
    )


class SqliteRunStore:
    """The :class:`RunStore` in the catalog's SQLite file (one host)."""

    def __init__(self, catalog: Path) -> None:
        self._lock = threading.Lock()
        try:
            self._db = open_catalog(catalog, _SCHEMA, shared=True)
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot open the agent run tables in {catalog}: {exc}; check the path") from exc

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        try:
            with self._lock:
                return self._db.execute(sql, tuple(params)).fetchall()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"the agent run tables could not be used: {exc}") from exc

    def save(self, run: AgentRun) -> None:
        marks = ", ".join("?" * 17)
        self._execute(f"INSERT OR REPLACE INTO agent_runs ({_COLUMNS}) VALUES ({marks})", _row(run))

    def get(self, run_id: str) -> AgentRun | None:
        rows = self._execute(f"SELECT {_COLUMNS} FROM agent_runs WHERE id = ?", (run_id,))
        return _run(rows[0]) if rows else None

    def runs(self, owner: str | None = None, statuses: Sequence[str] = (), limit: int = 100) -> list[AgentRun]:
        where, params = [], []
        if owner is not None:
            where.append("owner = ?")
            params.append(owner)
        if statuses:
            where.append(f"status IN ({', '.join('?' * len(statuses))})")
            params.extend(statuses)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        sql = f"SELECT {_COLUMNS} FROM agent_runs {clause} ORDER BY created_at DESC, rowid DESC LIMIT ?"
        return [_run(r) for r in self._execute(sql, [*params, max(0, limit)])]

    def transition(self, run_id: str, allowed: Sequence[str], **changes: Any) -> AgentRun | None:
        unknown = set(changes) - set(_CHANGEABLE)
        if unknown or not allowed:
            raise ValueError(f"transition: cannot change {sorted(unknown)}; allowed states are required")
        sets = ["updated_at = ?"]
        params: list[Any] = [datetime.now(UTC).timestamp()]
        for name, value in changes.items():
            column, write = _CHANGEABLE[name]
            sets.append(f"{column} = ?")
            params.append(write(value))
        marks = ", ".join("?" * len(allowed))
        sql = f"UPDATE agent_runs SET {', '.join(sets)} WHERE id = ? AND status IN ({marks}) RETURNING {_COLUMNS}"
        rows = self._execute(sql, [*params, run_id, *allowed])
        return _run(rows[0]) if rows else None

    def add_event(self, event: RunEvent) -> None:
        row = (event.run_id, event.seq, event.kind, _dumps(dict(event.data)), datetime.now(UTC).timestamp())
        self._execute("INSERT OR REPLACE INTO agent_run_events VALUES (?, ?, ?, ?, ?)", row)

    def events(self, run_id: str, after: int = 0, limit: int = 1000) -> list[RunEvent]:
        rows = self._execute(
            "SELECT run_id, seq, kind, data_json FROM agent_run_events WHERE run_id = ? AND seq > ? "
            "ORDER BY seq LIMIT ?",
            (run_id, after, max(0, limit)),
        )
        return [RunEvent(r[0], r[1], r[2], json.loads(r[3])) for r in rows]


def open_run_store(settings: Settings) -> RunStore:
    """The run store of a deployment: tables in its SQLite catalog (one host)."""
    return SqliteRunStore(settings.catalog_path)
