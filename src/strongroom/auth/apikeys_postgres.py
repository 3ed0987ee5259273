"""API keys in PostgreSQL (``Settings.store_url``): one key table for every replica.

A revocation commits with a ``NOTIFY strongroom_api_keys``; every store holds a listening
connection on a thread of its own, which bumps the revocation stamp the moment the
notification arrives, so each replica's cache of verified keys is voided at once. While
that connection is down the stamp changes on every read (the cache is off), and after it
reconnects it changes once more (a notification may have been missed meanwhile).
"""

from __future__ import annotations

import itertools
import logging
import secrets
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import psycopg

from strongroom.auth.apikeys import (
    _SELECT_LIST,
    _SELECT_ONE,
    COLUMNS,
    ApiKey,
    KeyCreation,
    KeyRow,
    checked,
    full_row,
    key_of,
    parse_presented,
)
from strongroom.errors import StoreError
from strongroom.store.postgres_schema import connect, describe_url, redact

__all__ = ["CHANNEL", "PostgresApiKeyStore"]

log = logging.getLogger("strongroom.auth")
CHANNEL = "strongroom_api_keys"
_LOCK = 0x5352_4B45_5953  # advisory lock key ("SRKEYS") for making the table
_SCHEMA = """
CREATE TABLE IF NOT EXISTS api_keys (
    id text PRIMARY KEY, salt bytea NOT NULL, hash bytea NOT NULL, owner text NOT NULL, groups text NOT NULL,
    created_at text NOT NULL, expires_at text, revoked_at text, created_by text);
ALTER TABLE api_keys ADD COLUMN IF NOT EXISTS created_by text;
"""


class PostgresApiKeyStore(KeyCreation):
    """The :class:`~strongroom.auth.apikeys.ApiKeyStore` in PostgreSQL; one connection for
    calls (used one at a time) and one that listens for revocations."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._target, self._password = describe_url(url)
        self._lock = threading.Lock()
        self._stamp_lock = threading.Lock()
        self._generation = 0  # bumped on every revocation heard (and after a reconnect)
        self._listening = False
        self._blind = itertools.count(1)  # while not listening: a new stamp on every read
        self._closing = False
        self._wake = f"wake:{secrets.token_hex(8)}"
        self._db = self._connect()
        try:
            with self._db.transaction():
                self._db.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK,))
                self._db.execute(_SCHEMA)
            self._listener = self._listen()  # before returning: no revocation from now on is missed
        except psycopg.Error as exc:
            self._db.close()
            raise StoreError(f"cannot prepare the key table in {self._target}: {self._clean(exc)}") from exc
        self._thread = threading.Thread(target=self._hear, name="strongroom-key-revocations", daemon=True)
        self._thread.start()

    def _clean(self, exc: BaseException) -> str:
        return redact(exc, self._password)

    def _connect(self) -> psycopg.Connection[Any]:
        return connect(self._url, purpose=" for the API keys")

    def _listen(self) -> psycopg.Connection[Any]:
        conn = psycopg.connect(self._url, autocommit=True)
        conn.execute(f"LISTEN {CHANNEL}")
        self._listening = True
        return conn

    def _bump(self) -> None:
        with self._stamp_lock:
            self._generation += 1

    def _hear(self) -> None:
        """The listener thread: bump the stamp on each revocation, reconnect when the connection drops."""
        backoff = 0.5
        while not self._closing:
            try:
                for note in self._listener.notifies(timeout=5.0):
                    if note.payload == self._wake:
                        return
                    if not note.payload.startswith("wake:"):
                        self._bump()
                backoff = 0.5
            except psycopg.Error as exc:
                if self._closing:
                    return
                self._listening = False
                log.warning("lost the connection that hears key revocations (%s); API keys are not cached "
                            "until it is back", self._clean(exc))  # fmt: skip
                self._listener.close()
                while not self._closing:
                    try:
                        self._listener = self._listen()
                        self._bump()  # a revocation may have gone unheard meanwhile
                        break
                    except psycopg.Error:
                        threading.Event().wait(backoff)
                        backoff = min(backoff * 2, 10.0)

    def revocations(self) -> tuple[int, int]:
        """A stamp that changes as soon as any process on any host revokes a key (no database
        read: the listener keeps it); while not listening, a new one on every call."""
        if not self._listening:
            return (-1, next(self._blind))
        return (self._generation, 0)

    def close(self) -> None:
        self._closing = True
        try:
            with self._lock:
                self._db.execute("SELECT pg_notify(%s, %s)", (CHANNEL, self._wake))
        except psycopg.Error:
            pass
        self._thread.join(timeout=10)
        self._listener.close()
        with self._lock:
            self._db.close()

    def _run(self, action: str, sql: str, params: Sequence[object] = ()) -> Any:
        with self._lock:
            if self._db.broken or self._db.closed:
                self._db = self._connect()
            try:
                return self._db.execute(sql, params)
            except psycopg.Error as exc:
                raise StoreError(f"PostgreSQL at {self._target} failed to {action}: {self._clean(exc)}") from exc

    def _insert(self, row: KeyRow) -> None:
        self._run("store a key", f"INSERT INTO api_keys ({COLUMNS}) VALUES ({', '.join(['%s'] * 9)})", row)

    def list(self) -> list[ApiKey]:
        return [key_of(r) for r in self._run("list the keys", _SELECT_LIST).fetchall()]

    def revoke(self, key_id: str) -> bool:
        """Revoke a key, and tell every replica (committed with the revocation)."""
        now = datetime.now(UTC).isoformat()
        with self._lock:
            try:
                with self._db.transaction():
                    cur = self._db.execute(
                        "UPDATE api_keys SET revoked_at = %s WHERE id = %s AND revoked_at IS NULL", (now, key_id)
                    )
                    if cur.rowcount != 1:
                        return False
                    self._db.execute("SELECT pg_notify(%s, %s)", (CHANNEL, key_id))
            except psycopg.Error as exc:
                raise StoreError(
                    f"PostgreSQL at {self._target} failed to revoke key {key_id}: {self._clean(exc)}"
                ) from exc
        self._bump()  # this process at once, before its own notification comes back
        return True

    def check(self, presented: str) -> ApiKey:
        """The key behind ``presented``, or :class:`AuthenticationError`."""
        key_id, secret = parse_presented(presented)
        row = self._run("check a key", _SELECT_ONE + "%s", (key_id,)).fetchone()
        return checked(key_id, secret, row)

    def export_rows(self) -> tuple[KeyRow, ...]:
        """Every key as stored (salted hashes, never a secret), for moving a deployment."""
        rows = self._run("export the keys", f"SELECT {COLUMNS} FROM api_keys ORDER BY id").fetchall()
        return tuple((r[0], bytes(r[1]), bytes(r[2]), *r[3:]) for r in rows)

    def adopt(self, rows: Sequence[KeyRow]) -> int:
        """Take another store's keys as they are; a key already here only takes over a revocation."""
        added = 0
        with self._lock:
            try:
                with self._db.transaction():
                    for row in map(full_row, rows):
                        cur = self._db.execute(
                            f"INSERT INTO api_keys ({COLUMNS}) VALUES ({', '.join(['%s'] * 9)}) "
                            "ON CONFLICT (id) DO NOTHING",
                            row,
                        )
                        added += cur.rowcount
                        if row[7] is not None:
                            revoked = self._db.execute(
                                "UPDATE api_keys SET revoked_at = %s WHERE id = %s AND revoked_at IS NULL",
                                (row[7], row[0]),
                            )
                            if revoked.rowcount:
                                self._db.execute("SELECT pg_notify(%s, %s)", (CHANNEL, str(row[0])))
            except psycopg.Error as exc:
                raise StoreError(f"PostgreSQL at {self._target} failed to take the keys: {self._clean(exc)}") from exc
        return added
