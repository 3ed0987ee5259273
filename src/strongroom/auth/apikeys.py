"""API keys for service accounts, kept as salted hashes only: the :class:`ApiKeyStore`
protocol, its SQLite backend (the catalog) and :func:`open_key_store`.

A key reads ``sr_<id>_<secret>``: the id finds the row, the secret is checked against
``sha256(salt + secret)`` in constant time. The secret has 256 bits of entropy, so a
fast salted hash is enough (slow hashing is for guessable passwords). The full key is
returned once, by :meth:`ApiKeyStore.create`, and never stored or logged. With
``Settings.store_url`` the keys live in PostgreSQL (:mod:`strongroom.auth.apikeys_postgres`),
shared by every replica, and a revocation reaches every replica's cache at once.

>>> keys = open_key_store(Settings(home=Path("/tmp/sr")))  # doctest: +SKIP
>>> key, secret = keys.create("etl-bot", frozenset({"research"}))  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from strongroom.errors import AuthenticationError, QueryError, StoreError
from strongroom.store.sqlite import open_catalog

if TYPE_CHECKING:
    pass

__all__ = [
    "KEY_PREFIX",
    "ApiKey",
    "ApiKeyStore",
    "KeyBackend",
    "KeyRow",
    "SqliteApiKeyStore",
]

KEY_PREFIX = "sr_"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT PRIMARY KEY, salt BLOB NOT NULL, hash BLOB NOT NULL, owner TEXT NOT NULL, groups TEXT NOT NULL,
    created_at TEXT NOT NULL, expires_at TEXT, revoked_at TEXT);
"""
#: a key as stored: (id, salt, hash, owner, groups as JSON, created_at, expires_at, revoked_at)
KeyRow = tuple[object, ...]


@dataclass(frozen=True)
class ApiKey:
    """What is known about a key; never its secret."""

    id: str
    owner: str
    groups: frozenset[str]
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None

    def active(self, now: datetime) -> bool:
        return self.revoked_at is None and (self.expires_at is None or now < self.expires_at)

    def status(self, now: datetime) -> str:
        """``active``, ``expired`` or ``revoked`` at ``now``, as key lists show it."""
        return "revoked" if self.revoked_at else ("active" if self.active(now) else "expired")


class ApiKeyStore(Protocol):
    """Create, list, revoke and check API keys; safe to share between threads.

    >>> key, secret = keys.create("etl-bot", frozenset({"research"}))  # doctest: +SKIP
    >>> keys.check(secret).owner                                       # doctest: +SKIP
    'etl-bot'
    """

    def create(self, owner: str, groups: frozenset[str], expires_at: datetime | None = None) -> tuple[ApiKey, str]:
        """A new key and its full secret string, which is shown once and not kept."""
        ...

    def list(self) -> list[ApiKey]:
        """Every key, revoked and expired ones too (never a secret)."""
        ...

    def revoke(self, key_id: str) -> bool:
        """Revoke a key; False when there is no such active key."""
        ...

    def check(self, presented: str) -> ApiKey:
        """The active key behind ``presented``, or :class:`~strongroom.errors.AuthenticationError`."""
        ...


class KeyBackend(ApiKeyStore, Protocol):
    """A key store as a deployment holds it: with a revocation stamp every replica can read
    and with its rows movable to another backend.

    :meth:`revocations` is a stamp that changes whenever any process (on PostgreSQL: any
    host) revokes a key, cheap enough to read on every request (the authenticator's cache
    of verified keys is voided when it changes).
    """

    def revocations(self) -> tuple[int, int]:
        """A stamp that changes whenever any process revokes a key."""
        ...

    def export_rows(self) -> tuple[KeyRow, ...]:
        """Every key as stored (salted hashes, never a secret), for moving a deployment."""
        ...

    def adopt(self, rows: Sequence[KeyRow]) -> int:
        """Take another store's keys as they are; a key already here only takes over a revocation."""
        ...

    def close(self) -> None:
        """Release the connection (and, on PostgreSQL, the revocation listener)."""
        ...


def _digest(salt: bytes, secret: str) -> bytes:
    return hashlib.sha256(salt + secret.encode()).digest()


def _when(value: object) -> datetime | None:
    return None if value is None else datetime.fromisoformat(str(value))


def new_key(owner: str, groups: frozenset[str], expires_at: datetime | None) -> tuple[KeyRow, ApiKey, str]:
    """A new key's row, what is known of it, and the full key string."""
    if not owner.strip():
        raise QueryError("a key needs an owner: who answers for it (a person or a service)")
    key_id, secret, salt = secrets.token_hex(6), secrets.token_urlsafe(32), secrets.token_bytes(16)
    now = datetime.now(UTC)
    if expires_at is not None and expires_at.tzinfo is None:
        expires_at = expires_at.replace(tzinfo=UTC)
    row: KeyRow = (
        key_id, salt, _digest(salt, secret), owner, json.dumps(sorted(groups)), now.isoformat(),
        expires_at.isoformat() if expires_at else None, None,
    )  # fmt: skip
    return row, ApiKey(key_id, owner, groups, now, expires_at, None), f"{KEY_PREFIX}{key_id}_{secret}"


def key_of(row: Sequence[object]) -> ApiKey:
    """An :class:`ApiKey` from ``(id, owner, groups, created_at, expires_at, revoked_at)``."""
    created = _when(row[3])
    assert created is not None
    return ApiKey(str(row[0]), str(row[1]), frozenset(json.loads(str(row[2]))), created, _when(row[4]), _when(row[5]))


def parse_presented(presented: str) -> tuple[str, str]:
    """The key id and secret of a presented key, or :class:`AuthenticationError`."""
    key_id, sep, secret = presented.removeprefix(KEY_PREFIX).partition("_")
    if not presented.startswith(KEY_PREFIX) or not sep or not key_id or not secret:
        raise invalid_key()
    return key_id, secret


def invalid_key() -> AuthenticationError:
    # the same message for every failure that could reveal whether a key id exists
    return AuthenticationError("the API key is not valid (unknown, wrong, revoked or expired)")


def checked(key_id: str, secret: str, row: Sequence[object] | None) -> ApiKey:
    """The key, if ``row`` (salt, hash, owner, groups, created_at, expires_at, revoked_at) matches the secret."""
    if row is None:
        _digest(b"\0" * 16, secret)  # same work whether or not the id exists
        raise invalid_key()
    salt, stored = bytes(row[0]), bytes(row[1])  # type: ignore[call-overload]
    if not hmac.compare_digest(_digest(salt, secret), stored):
        raise invalid_key()
    key = key_of((key_id, *row[2:]))
    if not key.active(datetime.now(UTC)):
        raise invalid_key()
    return key


_SELECT_LIST = "SELECT id, owner, groups, created_at, expires_at, revoked_at FROM api_keys ORDER BY created_at"
_SELECT_ONE = "SELECT salt, hash, owner, groups, created_at, expires_at, revoked_at FROM api_keys WHERE id = "


class SqliteApiKeyStore:
    """The :class:`ApiKeyStore` in the catalog's SQLite file (one host). A revocation
    appends to a log beside the catalog, whose size and time are the revocation stamp."""

    def __init__(self, catalog: Path) -> None:
        self._lock = threading.Lock()
        self._revoked_log = catalog.with_name(f"{catalog.name}.revocations")
        try:
            self._db = open_catalog(catalog, _SCHEMA, shared=True)
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot open the key table in {catalog}: {exc}; check the path") from exc

    def close(self) -> None:
        self._db.close()

    def create(self, owner: str, groups: frozenset[str], expires_at: datetime | None = None) -> tuple[ApiKey, str]:
        row, key, secret = new_key(owner, groups, expires_at)
        with self._lock:
            self._db.execute("INSERT INTO api_keys VALUES (?, ?, ?, ?, ?, ?, ?, ?)", row)
        return key, secret

    def list(self) -> list[ApiKey]:
        with self._lock:
            rows = self._db.execute(_SELECT_LIST).fetchall()
        return [key_of(r) for r in rows]

    def revoke(self, key_id: str) -> bool:
        now = datetime.now(UTC).isoformat()
        with self._lock:
            cur = self._db.execute(
                "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL", (now, key_id)
            )
            if cur.rowcount != 1:
                return False
            try:  # tells every process's cache of verified keys (Authenticator.cached) to forget
                with self._revoked_log.open("a") as fh:
                    fh.write(f"{now} {key_id}\n")
            except OSError as exc:
                raise StoreError(
                    f"key {key_id} is revoked, but {self._revoked_log} could not be written ({exc}): running "
                    "services may trust the key for up to STRONGROOM_API_KEY_CACHE_S more; fix the permissions"
                ) from exc
        return True

    def revocations(self) -> tuple[int, int]:
        """A stamp that changes whenever any process revokes a key in this catalog: the size
        and modification time of the revocation log beside it (one ``stat``, no table read)."""
        try:
            st = os.stat(self._revoked_log)
        except FileNotFoundError:
            return (0, 0)
        return (st.st_size, st.st_mtime_ns)

    def check(self, presented: str) -> ApiKey:
        key_id, secret = parse_presented(presented)
        with self._lock:
            row = self._db.execute(_SELECT_ONE + "?", (key_id,)).fetchone()
        return checked(key_id, secret, row)

    def export_rows(self) -> tuple[KeyRow, ...]:
        with self._lock:
            return tuple(tuple(r) for r in self._db.execute("SELECT * FROM api_keys ORDER BY id").fetchall())

    def adopt(self, rows: Sequence[KeyRow]) -> int:
        added = 0
        with self._lock, self._db:
            for row in rows:
                cur = self._db.execute("INSERT OR IGNORE INTO api_keys VALUES (?, ?, ?, ?, ?, ?, ?, ?)", row)
                added += cur.rowcount
                if row[7] is not None:
                    self._db.execute(
                        "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL", (row[7], row[0])
                    )
        return added
