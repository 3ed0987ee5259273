"""API keys for service accounts, kept in the catalog as salted hashes only.

A key reads ``sr_<id>_<secret>``: the id finds the row, the secret is checked against
``sha256(salt + secret)`` in constant time. The secret has 256 bits of entropy, so a
fast salted hash is enough (slow hashing is for guessable passwords). The full key is
returned once, by :meth:`ApiKeyStore.create`, and never stored or logged.

>>> keys = ApiKeyStore(Path("/tmp/sr/catalog.sqlite3"))  # doctest: +SKIP
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

from strongroom.auth.oidc import AuthenticationError
from strongroom.errors import StoreError
from strongroom.store.sqlite import open_catalog

__all__ = ["KEY_PREFIX", "ApiKey", "ApiKeyStore"]

KEY_PREFIX = "sr_"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT PRIMARY KEY, salt BLOB NOT NULL, hash BLOB NOT NULL, owner TEXT NOT NULL, groups TEXT NOT NULL,
    created_at TEXT NOT NULL, expires_at TEXT, revoked_at TEXT);
"""


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


def _digest(salt: bytes, secret: str) -> bytes:
    return hashlib.sha256(salt + secret.encode()).digest()


def _when(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


class ApiKeyStore:
    """Create, list, revoke and check API keys; safe to share between threads."""

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
        """A new key and its full secret string, which is shown once and not kept."""
        if not owner.strip():
            raise ValueError("a key needs an owner")
        key_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        salt = secrets.token_bytes(16)
        now = datetime.now(UTC)
        if expires_at is not None and expires_at.tzinfo is None:
            expires_at = expires_at.replace(tzinfo=UTC)
        with self._lock:
            self._db.execute(
                "INSERT INTO api_keys VALUES (?, ?, ?, ?, ?, ?, ?, NULL)",
                (
                    key_id,
                    salt,
                    _digest(salt, secret),
                    owner,
                    json.dumps(sorted(groups)),
                    now.isoformat(),
                    expires_at.isoformat() if expires_at else None,
                ),
            )
        return ApiKey(key_id, owner, groups, now, expires_at, None), f"{KEY_PREFIX}{key_id}_{secret}"

    def list(self) -> list[ApiKey]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, owner, groups, created_at, expires_at, revoked_at FROM api_keys ORDER BY created_at"
            ).fetchall()
        return [
            ApiKey(r[0], r[1], frozenset(json.loads(r[2])), datetime.fromisoformat(r[3]), _when(r[4]), _when(r[5]))
            for r in rows
        ]

    def revoke(self, key_id: str) -> bool:
        """Revoke a key; False when there is no such active key."""
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
        """The key behind ``presented``, or :class:`AuthenticationError` (same message for every failure
        that could reveal whether a key id exists)."""
        invalid = AuthenticationError("the API key is not valid (unknown, wrong, revoked or expired)")
        key_id, sep, secret = presented.removeprefix(KEY_PREFIX).partition("_")
        if not presented.startswith(KEY_PREFIX) or not sep or not key_id or not secret:
            raise invalid
        with self._lock:
            row = self._db.execute(
                "SELECT salt, hash, owner, groups, created_at, expires_at, revoked_at FROM api_keys WHERE id = ?",
                (key_id,),
            ).fetchone()
        if row is None:
            _digest(b"\0" * 16, secret)  # same work whether or not the id exists
            raise invalid
        if not hmac.compare_digest(_digest(row[0], secret), row[1]):
            raise invalid
        key = ApiKey(
            key_id, row[2], frozenset(json.loads(row[3])), datetime.fromisoformat(row[4]), _when(row[5]), _when(row[6])
        )
        if not key.active(datetime.now(UTC)):
            raise invalid
        return key

    def export_rows(self) -> tuple[tuple[object, ...], ...]:
        """Every key as stored (salted hashes, never a secret), for moving a deployment."""
        with self._lock:
            return tuple(tuple(r) for r in self._db.execute("SELECT * FROM api_keys ORDER BY id").fetchall())

    def adopt(self, rows: Sequence[tuple[object, ...]]) -> int:
        """Take another store's keys as they are (the same secrets keep working); a key
        already here only takes over a revocation. Returns how many keys were added."""
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
