"""Where conversations are kept: each user's questions, the answers as they were returned,
feedback on them and share links. The :class:`ConversationStore` protocol and its SQLite
backend (tables in the catalog file, like the key table); PostgreSQL can follow the same
five methods (the owner's rows, :class:`ConversationRows`, and the link lookup, :class:`ShareLinks`).

The store keeps rows; it decides nothing. Who may see a conversation, open a link or give
feedback is decided by :mod:`strongroom.service.conversations`, and an answer's document
text is shown again only after its citations are re-checked there.

    store = SqliteConversationStore(settings.catalog_path)
    store.save(Conversation(new_id(), "ana", "Apple net sales", now()))
    [c.title for c in store.conversations("ana")]
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol

from strongroom.config import Settings
from strongroom.errors import StoreError
from strongroom.store.sqlite import open_catalog

__all__ = [
    "Conversation",
    "ConversationRows",
    "ConversationStore",
    "Feedback",
    "Rating",
    "Share",
    "ShareLinks",
    "SqliteConversationStore",
    "Thread",
    "Turn",
    "new_id",
    "now",
    "open_conversation_store",
]

Rating = Literal["up", "down"]


def new_id() -> str:
    """An unguessable id (conversation, turn, share token): 24 random bytes, URL-safe."""
    return secrets.token_urlsafe(24)


def now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Conversation:
    id: str
    owner: str
    title: str
    created_at: datetime


@dataclass(frozen=True)
class Turn:
    """One question and its answer. ``question``: as the user asked it; ``query``: what was
    retrieved for it (the follow-up with its context); ``answer``: the answer's JSON as it was
    returned; ``as_of``/``known_at``: the clocks as asked (None: now); ``audit_seq``: the seq of
    the ask's audit record."""

    id: str
    conversation_id: str
    question: str
    query: str
    answer: Mapping[str, Any]
    as_of: str | None
    known_at: str | None
    audit_seq: int | None
    created_at: datetime


@dataclass(frozen=True)
class Feedback:
    """A rating of one turn's answer by its owner; ``audit_seq``: the answer's audit record."""

    turn_id: str
    owner: str
    rating: Rating
    comment: str
    created_at: datetime
    audit_seq: int | None


@dataclass(frozen=True)
class Share:
    """A link to a conversation, pinned to the instant ``as_of`` (ISO) its citations are checked at."""

    token: str
    conversation_id: str
    created_by: str
    as_of: str
    created_at: datetime


@dataclass(frozen=True)
class Thread:
    """A conversation with its turns (oldest first) and the feedback on them, by turn id."""

    conversation: Conversation
    turns: tuple[Turn, ...]
    feedback: Mapping[str, Feedback] = field(default_factory=dict)


class ConversationRows(Protocol):
    """Each owner's conversations with their turns, feedback and links."""

    def save(self, item: Conversation | Turn | Feedback | Share) -> None:
        """Add a conversation (or retitle one: only its title changes), a turn or a share link;
        a feedback replaces its owner's earlier one. A turn, feedback or link whose conversation
        (or turn) is not there is a :class:`~strongroom.errors.StoreError`, and nothing is kept."""
        ...

    def conversations(self, owner: str) -> list[Conversation]:
        """``owner``'s conversations, newest first."""
        ...

    def load(self, conversation_id: str) -> Thread | None:
        """A conversation with its turns and feedback; None if there is none."""
        ...

    def delete(self, conversation_id: str) -> bool:
        """Remove a conversation with its turns, feedback and links; whether it existed."""
        ...


class ShareLinks(Protocol):
    """Share links found by their token: the one read made for someone other than the owner."""

    def shared(self, token: str) -> Share | None:
        """The share link ``token``; None if there is none (or its conversation was deleted)."""
        ...


class ConversationStore(ConversationRows, ShareLinks, Protocol):
    """Conversations, turns, feedback and share links; safe to share between threads. What
    the application layer holds; :class:`strongroom.testing.conversation_contract.ConversationStoreContract`
    checks a backend.

    >>> store.save(Conversation("c1", "ana", "net sales", now()))  # doctest: +SKIP
    >>> store.load("c1").conversation.owner  # doctest: +SKIP
    'ana'
    """

    def close(self) -> None: ...


_SCHEMA = """
CREATE TABLE IF NOT EXISTS conversations (
    id TEXT PRIMARY KEY, owner TEXT NOT NULL, title TEXT NOT NULL, created_at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS conversations_by_owner ON conversations (owner, created_at);
CREATE TABLE IF NOT EXISTS conversation_turns (
    id TEXT PRIMARY KEY,
    conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    question TEXT NOT NULL, query TEXT NOT NULL, answer TEXT NOT NULL,
    as_of TEXT, known_at TEXT, audit_seq INTEGER, created_at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS conversation_turns_by_conversation ON conversation_turns (conversation_id);
CREATE TABLE IF NOT EXISTS conversation_feedback (
    turn_id TEXT NOT NULL REFERENCES conversation_turns (id) ON DELETE CASCADE,
    owner TEXT NOT NULL, rating TEXT NOT NULL CHECK (rating IN ('up', 'down')),
    comment TEXT NOT NULL, created_at REAL NOT NULL, audit_seq INTEGER,
    PRIMARY KEY (turn_id, owner));
CREATE TABLE IF NOT EXISTS conversation_shares (
    token TEXT PRIMARY KEY,
    conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    created_by TEXT NOT NULL, as_of TEXT NOT NULL, created_at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS conversation_shares_by_conversation ON conversation_shares (conversation_id);
"""


def _ts(value: datetime) -> float:
    return value.timestamp()


def _dt(value: float) -> datetime:
    return datetime.fromtimestamp(value, UTC)


class SqliteConversationStore:
    """The :class:`ConversationStore` in the catalog's SQLite file (one host)."""

    def __init__(self, catalog: Path) -> None:
        self._lock = threading.Lock()
        try:
            self._db = open_catalog(catalog, _SCHEMA, shared=True)
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot open the conversation tables in {catalog}: {exc}; check the path") from exc

    def close(self) -> None:
        self._db.close()

    def _execute(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        try:
            with self._lock:
                return self._db.execute(sql, params).fetchall()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"the conversation tables could not be used: {exc}") from exc

    def save(self, item: Conversation | Turn | Feedback | Share) -> None:
        if isinstance(item, Conversation):
            row: tuple[Any, ...] = (item.id, item.owner, item.title, _ts(item.created_at))
            upsert = "ON CONFLICT (id) DO UPDATE SET title = excluded.title"
            self._execute(f"INSERT INTO conversations VALUES (?, ?, ?, ?) {upsert}", row)
        elif isinstance(item, Turn):
            answer = json.dumps(dict(item.answer), sort_keys=True)
            row = (item.id, item.conversation_id, item.question, item.query, answer)
            row += (item.as_of, item.known_at, item.audit_seq, _ts(item.created_at))
            self._execute("INSERT INTO conversation_turns VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", row)
        elif isinstance(item, Feedback):
            row = (item.turn_id, item.owner, item.rating, item.comment, _ts(item.created_at), item.audit_seq)
            self._execute("INSERT OR REPLACE INTO conversation_feedback VALUES (?, ?, ?, ?, ?, ?)", row)
        else:
            row = (item.token, item.conversation_id, item.created_by, item.as_of, _ts(item.created_at))
            self._execute("INSERT INTO conversation_shares VALUES (?, ?, ?, ?, ?)", row)

    def conversations(self, owner: str) -> list[Conversation]:
        rows = self._execute(
            "SELECT id, owner, title, created_at FROM conversations WHERE owner = ? "
            "ORDER BY created_at DESC, rowid DESC",
            (owner,),
        )
        return [Conversation(r[0], r[1], r[2], _dt(r[3])) for r in rows]

    def load(self, conversation_id: str) -> Thread | None:
        head = self._execute("SELECT id, owner, title, created_at FROM conversations WHERE id = ?", (conversation_id,))
        if not head:
            return None
        turns = self._execute(
            "SELECT id, conversation_id, question, query, answer, as_of, known_at, audit_seq, created_at "
            "FROM conversation_turns WHERE conversation_id = ? ORDER BY created_at, rowid",
            (conversation_id,),
        )
        feedback = self._execute(
            "SELECT f.turn_id, f.owner, f.rating, f.comment, f.created_at, f.audit_seq FROM conversation_feedback f "
            "JOIN conversation_turns t ON t.id = f.turn_id WHERE t.conversation_id = ?",
            (conversation_id,),
        )
        r = head[0]
        return Thread(
            Conversation(r[0], r[1], r[2], _dt(r[3])),
            tuple(Turn(t[0], t[1], t[2], t[3], json.loads(t[4]), t[5], t[6], t[7], _dt(t[8])) for t in turns),
            {f[0]: Feedback(f[0], f[1], f[2], f[3], _dt(f[4]), f[5]) for f in feedback},
        )

    def shared(self, token: str) -> Share | None:
        rows = self._execute(
            "SELECT token, conversation_id, created_by, as_of, created_at FROM conversation_shares WHERE token = ?",
            (token,),
        )
        if not rows:
            return None
        r = rows[0]
        return Share(r[0], r[1], r[2], r[3], _dt(r[4]))

    def delete(self, conversation_id: str) -> bool:
        with self._lock:
            try:
                cur = self._db.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,))
            except sqlite3.DatabaseError as exc:
                raise StoreError(f"the conversation tables could not be used: {exc}") from exc
            return cur.rowcount > 0


def open_conversation_store(settings: Settings) -> ConversationStore:
    """The conversation store of a deployment: tables in its SQLite catalog (one host)."""
    return SqliteConversationStore(settings.catalog_path)
