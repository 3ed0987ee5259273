"""API keys for service accounts, kept as salted hashes only: the :class:`ApiKeyStore`
protocol, its SQLite backend (the catalog) and :func:`open_key_store`.

A key reads ``sr_<id>_<secret>``: the id finds the row, the secret is checked against
``sha256(salt + secret)`` in constant time. The secret has 256 bits of entropy, so a
fast salted hash is enough (slow hashing is for guessable passwords). The full key is
returned once, by :meth:`ApiKeyStore.create`, and never stored or logged. With
``Settings.store_url`` the keys live in PostgreSQL (:mod:`strongroom.auth.apikeys_postgres`),
shared by every replica, and a revocation reaches every replica's cache at once.

Each key records who created it (``created_by``): the persons behind the principal that made
it, who saw its secret once and so answer for it too. Four-eyes counts them as the key's
persons (:mod:`strongroom.service.approvals`), so an admin cannot make herself a checker by
giving a key to a made-up owner. Keys made before this was recorded have ``created_by``
NULL (unknown; an empty set here).

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
    created_at TEXT NOT NULL, expires_at TEXT, revoked_at TEXT, created_by TEXT);
"""
#: a key as stored: (id, salt, hash, owner, groups as JSON, created_at, expires_at, revoked_at,
#: created_by as JSON or NULL); an exported row of an older store may lack ``created_by``
KeyRow = tuple[object, ...]
#: the stored columns, in :data:`KeyRow` order (a table made before ``created_by`` gets it appended)
COLUMNS = "id, salt, hash, owner, groups, created_at, expires_at, revoked_at, created_by"


@dataclass(frozen=True)
class ApiKey:
    """What is known about a key; never its secret."""

    id: str
    owner: str
    groups: frozenset[str]
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    #: the persons behind the principal that created the key (who saw its secret); empty: unknown
    created_by: frozenset[str] = frozenset()

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

    def create(
        self,
        owner: str,
        groups: frozenset[str],
        expires_at: datetime | None = None,
        *,
        created_by: frozenset[str] = frozenset(),
    ) -> tuple[ApiKey, str]:
        """A new key and its full secret string, which is shown once and not kept; ``created_by``:
        the persons behind whoever creates it (empty: unknown)."""
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


def new_key(
    owner: str, groups: frozenset[str], expires_at: datetime | None, created_by: frozenset[str] = frozenset()
) -> tuple[KeyRow, ApiKey, str]:
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
        json.dumps(sorted(created_by)) if created_by else None,
    )  # fmt: skip
    key = ApiKey(key_id, owner, groups, now, expires_at, None, frozenset(created_by))
    return row, key, f"{KEY_PREFIX}{key_id}_{secret}"


def full_row(row: Sequence[object]) -> KeyRow:
    """An exported row with every column: one from an older store gets ``created_by`` unknown."""
    return (*row, None) if len(row) == 8 else tuple(row)


def key_of(row: Sequence[object]) -> ApiKey:
    """An :class:`ApiKey` from ``(id, owner, groups, created_at, expires_at, revoked_at, created_by)``."""
    created = _when(row[3])
    assert created is not None
    by = frozenset(json.loads(str(row[6]))) if len(row) > 6 and row[6] is not None else frozenset[str]()
    groups = frozenset(json.loads(str(row[2])))
    return ApiKey(str(row[0]), str(row[1]), groups, created, _when(row[4]), _when(row[5]), by)


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
    """The key, if ``row`` (salt, hash, owner, groups, created_at, expires_at, revoked_at, created_by)
    matches the secret."""
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


_SELECT_LIST = (
    "SELECT id, owner, groups, created_at, expires_at, revoked_at, created_by FROM api_keys ORDER BY created_at"
)
_SELECT_ONE = (
    "SELECT salt, hash, owner, groups, created_at, expires_at, revoked_at, created_by FROM api_keys WHERE id = "
)


class KeyCreation:
    """The backend-independent half of :meth:`ApiKeyStore.create`: a backend stores the new row."""

    def create(
        self,
        owner: str,
        groups: frozenset[str],
        expires_at: datetime | None = None,
        *,
        created_by: frozenset[str] = frozenset(),
    ) -> tuple[ApiKey, str]:
        """A new key and its full secret string, which is shown once and not kept."""
        row, key, secret = new_key(owner, groups, expires_at, created_by)
        self._insert(row)
        return key, secret

    def _insert(self, row: KeyRow) -> None:
        raise NotImplementedError


class SqliteApiKeyStore(KeyCreation):
    """The :class:`ApiKeyStore` in the catalog's SQLite file (one host). A revocation
    appends to a log beside the catalog, whose size and time are the revocation stamp."""

    def __init__(self, catalog: Path) -> None:
        self._lock = threading.Lock()
        self._revoked_log = catalog.with_name(f"{catalog.name}.revocations")
        try:
            self._db = open_catalog(catalog, _SCHEMA, shared=True)
            self._migrate()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot open the key table in {catalog}: {exc}; check the path") from exc

    def _migrate(self) -> None:
        """A table made before keys recorded their creator: add ``created_by`` (NULL: unknown)."""
        if "created_by" not in {row[1] for row in self._db.execute("PRAGMA table_info(api_keys)")}:
            try:
                self._db.execute("ALTER TABLE api_keys ADD COLUMN created_by TEXT")
            except sqlite3.OperationalError as exc:  # another process added it meanwhile
                if "duplicate column" not in str(exc):
                    raise

    def close(self) -> None:
        self._db.close()

    def _insert(self, row: KeyRow) -> None:
        with self._lock:
            self._db.execute(f"INSERT INTO api_keys ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", row)

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
            return tuple(tuple(r) for r in self._db.execute(f"SELECT {COLUMNS} FROM api_keys ORDER BY id").fetchall())

    def adopt(self, rows: Sequence[KeyRow]) -> int:
        added = 0
        with self._lock, self._db:
            for row in map(full_row, rows):
                cur = self._db.execute(
                    f"INSERT OR IGNORE INTO api_keys ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", row
                )
                added += cur.rowcount
                if row[7] is not None:
                    self._db.execute(
                        "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL", (row[7], row[0])
                    )
        return added
