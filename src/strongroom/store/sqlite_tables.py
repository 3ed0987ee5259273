"""A service's own tables in the catalog's SQLite file (legal holds, proposals, the model registry):
one connection shared by the threads of a process (a lock serialises them), every SQLite error a
:class:`StoreError` that names the tables."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from strongroom.errors import StoreError
from strongroom.store.sqlite import open_catalog

__all__ = ["SqliteTables"]


class SqliteTables:
    """``schema``'s tables in ``catalog``, called ``what`` in errors (e.g. "the proposal table")."""

    def __init__(self, catalog: Path, schema: str, what: str) -> None:
        self.lock = threading.Lock()
        self.what = what
        try:
            self.db = open_catalog(catalog, schema, shared=True)
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot open {what} in {catalog}: {exc}; check the path") from exc

    def close(self) -> None:
        self.db.close()

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> tuple[list[tuple[Any, ...]], int]:
        """One statement under the lock: its rows and its row count."""
        try:
            with self.lock:
                cur = self.db.execute(sql, params)
                return cur.fetchall(), cur.rowcount
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.what} could not be used: {exc}") from exc

    @contextmanager
    def transaction(self, what: str = "", *, refused: str = "") -> Iterator[sqlite3.Connection]:
        """One transaction under the lock, written at once (BEGIN IMMEDIATE: other processes wait);
        rolled back if the block raises. ``what``: the tables' name in its errors, if not the default;
        ``refused``: the error for a broken constraint, if not the same."""
        try:
            with self.lock, self.db:
                self.db.execute("BEGIN IMMEDIATE")
                yield self.db
        except sqlite3.DatabaseError as exc:
            integrity = refused and isinstance(exc, sqlite3.IntegrityError)
            raise StoreError(f"{refused if integrity else f'{what or self.what} could not be used'}: {exc}") from exc
