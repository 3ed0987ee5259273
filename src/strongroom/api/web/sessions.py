"""Server-side browser sessions and pending sign-ins, in a SQLite file under the home.

The browser holds only a random session id (an HttpOnly cookie); the table holds its
SHA-256, never the id itself, so a copy of the file signs nobody in. A row carries who
signed in (name, groups, roles, how: exactly what the bearer-token path derives from the
token), the session's CSRF token and two times: when it began (the absolute timeout) and
when it was last used (the idle timeout). Every worker of one host opens the same file, so
a session started on one is honoured by all; replicas on several hosts need a shared home
(or sticky sessions). Signing out deletes the row: the cookie is dead at once, everywhere.

A pending sign-in (the OIDC authorization code flow) is a row keyed by the SHA-256 of a
second random cookie, holding the state, nonce and PKCE verifier; it is used once and
lives ten minutes at most.

>>> store = SessionStore(Path("/tmp/sr/web_sessions.sqlite3"))  # doctest: +SKIP
>>> sid, session = store.create(caller)  # doctest: +SKIP
>>> store.lookup(sid).csrf == session.csrf  # doctest: +SKIP
True
"""

from __future__ import annotations

import hashlib
import json
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, cast

from strongroom.auth import Caller, Role
from strongroom.types import Principal

__all__ = ["PendingLogin", "Session", "SessionStore"]

#: how long a started sign-in may take at the identity provider
PENDING_TTL_S = 600.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS web_sessions (
    id_sha256 TEXT PRIMARY KEY,
    csrf TEXT NOT NULL,
    name TEXT NOT NULL,
    groups TEXT NOT NULL,
    roles TEXT NOT NULL,
    method TEXT NOT NULL,
    key_id TEXT NOT NULL,
    created REAL NOT NULL,
    seen REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS web_pending (
    id_sha256 TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    nonce TEXT NOT NULL,
    verifier TEXT NOT NULL,
    next TEXT NOT NULL,
    created REAL NOT NULL
);
"""


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Session:
    """A signed-in browser: the caller it acts as, its CSRF token and its two clocks."""

    caller: Caller
    csrf: str
    created: float
    seen: float

    def csrf_ok(self, given: str | None) -> bool:
        """Whether ``given`` is this session's CSRF token (constant-time)."""
        return bool(given) and secrets.compare_digest(self.csrf, given or "")


@dataclass(frozen=True)
class PendingLogin:
    """A sign-in in progress at the identity provider."""

    state: str
    nonce: str
    verifier: str
    next: str


class SessionStore:
    """Sessions in one SQLite file; thread-safe. ``clock`` (POSIX seconds) is injectable for tests."""

    def __init__(
        self,
        path: Path,
        *,
        idle_s: float = 30 * 60,
        absolute_s: float = 12 * 3600,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = path
        self.idle_s = idle_s
        self.absolute_s = absolute_s
        self.clock = clock
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=10)
        path.chmod(0o600)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- sessions ----------------------------------------------------------------------------

    def create(self, caller: Caller) -> tuple[str, Session]:
        """A new session for ``caller``: its id (for the cookie; not stored) and the session."""
        sid = secrets.token_urlsafe(32)
        now = self.clock()
        session = Session(caller, secrets.token_urlsafe(32), now, now)
        p = caller.principal
        with self._lock:
            self._expire(now)
            self._db.execute(
                "INSERT INTO web_sessions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    _digest(sid),
                    session.csrf,
                    p.name,
                    json.dumps(sorted(p.groups)),
                    json.dumps(sorted(caller.roles)),
                    caller.method,
                    caller.key_id,
                    now,
                    now,
                ),
            )
        return sid, session

    def lookup(self, sid: str) -> Session | None:
        """The live session with id ``sid`` (its idle clock restarted), or None: unknown, signed
        out, idle too long or too old; an expired one is deleted."""
        if not sid:
            return None
        key = _digest(sid)
        now = self.clock()
        with self._lock:
            row = self._db.execute(
                "SELECT csrf, name, groups, roles, method, key_id, created, seen FROM web_sessions WHERE id_sha256 = ?",
                (key,),
            ).fetchone()
            if row is None:
                return None
            csrf, name, groups, roles, method, key_id, created, seen = row
            if now - seen >= self.idle_s or now - created >= self.absolute_s:
                self._db.execute("DELETE FROM web_sessions WHERE id_sha256 = ?", (key,))
                return None
            if now - seen >= 1.0:  # one write a second at most per session
                self._db.execute("UPDATE web_sessions SET seen = ? WHERE id_sha256 = ?", (now, key))
        role_set = cast(frozenset[Role], frozenset(json.loads(roles)))
        principal = Principal(name, frozenset(json.loads(groups)), frozenset(role_set), method, key_id)
        kind = cast(Literal["oidc", "api-key", "dev"], method)
        return Session(Caller(principal, role_set, kind, key_id), csrf, created, now)

    def delete(self, sid: str) -> bool:
        """Sign out: the session is gone for every worker. Whether there was one."""
        with self._lock:
            cur = self._db.execute("DELETE FROM web_sessions WHERE id_sha256 = ?", (_digest(sid),))
        return cur.rowcount > 0

    def _expire(self, now: float) -> None:
        self._db.execute(
            "DELETE FROM web_sessions WHERE seen <= ? OR created <= ?", (now - self.idle_s, now - self.absolute_s)
        )
        self._db.execute("DELETE FROM web_pending WHERE created <= ?", (now - PENDING_TTL_S,))

    # -- sign-ins in progress ----------------------------------------------------------------

    def begin(self, pending: PendingLogin) -> str:
        """Remember a started sign-in; the returned id goes into the browser's flow cookie."""
        flow = secrets.token_urlsafe(32)
        with self._lock:
            self._expire(self.clock())
            self._db.execute(
                "INSERT INTO web_pending VALUES (?, ?, ?, ?, ?, ?)",
                (_digest(flow), pending.state, pending.nonce, pending.verifier, pending.next, self.clock()),
            )
        return flow

    def finish(self, flow: str) -> PendingLogin | None:
        """The sign-in started with ``flow``, removed (it is good for one try), or None."""
        if not flow:
            return None
        key = _digest(flow)
        with self._lock:
            row = self._db.execute(
                "SELECT state, nonce, verifier, next, created FROM web_pending WHERE id_sha256 = ?", (key,)
            ).fetchone()
            self._db.execute("DELETE FROM web_pending WHERE id_sha256 = ?", (key,))
        if row is None or self.clock() - row[4] >= PENDING_TTL_S:
            return None
        return PendingLogin(row[0], row[1], row[2], row[3])
