"""Ingestion jobs in a SQLite file: the bus with no server, for one host (and for tests).

``sqlite:///srv/strongroom/bus.sqlite3`` names the file (``sqlite://`` then the path, as
for the store; the folder is created). Every worker process on the host opens the same
file; SQLite's locks make each step one transaction, so two processes never take the same
message at once.

- ``publish``: a row in ``messages`` (WAL, ``synchronous=FULL``: a queued job survives a
  power cut).
- ``receive``: in one write transaction, the oldest row of the stream whose
  ``visible_at`` has passed, which then counts one more attempt and becomes invisible for
  ``reclaim_idle_s``. A consumer that dies holding it never settles it, so it becomes
  visible again and the next ``receive`` (of any process) takes it, with the attempt
  counted: a job that kills every worker still reaches ``max_attempts``.
- ``settle``: done deletes the row; retry makes it visible again at once (at the back of
  the stream) with its error; dead moves it, with its error, to ``dead_letters``. A retry
  or dead letter from a consumer whose hold expired (another took the job since) is
  ignored: the newer holder decides. A late done still counts: the version is stored.

Limits: one host (SQLite locks do not hold on network filesystems), one consumer group per
stream (``group`` is accepted and ignored), and a consumer waiting in ``receive`` polls the
file (every 50-200 ms) instead of being woken.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from strongroom.bus.base import Backlog, DeadLetter, Delivery, Outcome, parse_job
from strongroom.bus.job import IngestJob
from strongroom.errors import BusUnavailable, ConfigError
from strongroom.types import frozen_meta

__all__ = ["SqliteBus", "bus_path"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    stream TEXT NOT NULL,
    body TEXT NOT NULL,
    published REAL NOT NULL,
    visible_at REAL NOT NULL,      -- when it may be delivered: at once, or when a hold ends
    attempts INTEGER NOT NULL DEFAULT 0,
    consumer TEXT,                 -- who took it last
    last_error TEXT
);
CREATE INDEX IF NOT EXISTS messages_due ON messages (stream, visible_at, id);
CREATE TABLE IF NOT EXISTS dead_letters (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    stream TEXT NOT NULL,
    message_id TEXT NOT NULL,
    body TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    error TEXT NOT NULL,
    dead_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS dead_letters_stream ON dead_letters (stream, seq);
"""


def bus_path(url: str) -> Path:
    """The file a ``sqlite://PATH`` URL names (``sqlite:///srv/bus.sqlite3``: an absolute path)."""
    if not url.startswith("sqlite://") or not url.removeprefix("sqlite://"):
        raise ConfigError(f"not a SQLite bus URL: {url!r}; use sqlite:///path/to/bus.sqlite3")
    path = Path(url.removeprefix("sqlite://")).expanduser()
    if not path.is_absolute():  # relative to wherever each process started: two processes, two buses
        raise ConfigError(f"the SQLite bus URL {url!r} names a relative path; use sqlite:///absolute/path/bus.sqlite3")
    return path


class SqliteBus:
    """The :class:`strongroom.bus.Bus` protocol in a SQLite file (see the module's notes).

    >>> bus = SqliteBus("sqlite:///tmp/strongroom-bus.sqlite3", reclaim_idle_s=600)  # doctest: +SKIP
    """

    def __init__(
        self,
        url: str,
        *,
        stream: str = "strongroom:ingest",
        group: str = "workers",
        reclaim_idle_s: float = 60.0,
        max_attempts: int = 3,
        timeout_s: float = 30.0,
    ) -> None:
        if max_attempts < 1 or reclaim_idle_s <= 0:
            raise ConfigError("the bus needs max_attempts >= 1 and reclaim_idle_s > 0")
        self.path = bus_path(url)
        self.stream = stream
        self.group = group  # one group per stream here: every consumer shares the stream's jobs
        self.reclaim_idle_s = float(reclaim_idle_s)
        self.max_attempts = int(max_attempts)
        self._lock = threading.Lock()  # one connection, shared by the threads of this process
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # autocommit: every write below opens its own BEGIN IMMEDIATE transaction
            self._db = sqlite3.connect(self.path, timeout=timeout_s, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)  # idempotent, so two processes may run it at once
        except (sqlite3.Error, OSError) as exc:
            raise self._unavailable(exc) from exc

    def _unavailable(self, exc: BaseException) -> BusUnavailable:
        return BusUnavailable(
            f"cannot use the SQLite bus at {self.path} ({type(exc).__name__}: {exc}); check that the file "
            "is writable, on a local disk, and not locked by a stuck process"
        )

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, taken at once so that two processes never interleave."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield self._db
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                raise self._unavailable(exc) from exc

    def _read(self, sql: str, *args: Any) -> list[Any]:
        with self._lock:
            try:
                return self._db.execute(sql, args).fetchall()
            except sqlite3.Error as exc:
                raise self._unavailable(exc) from exc

    # -- the Bus protocol -------------------------------------------------------------------

    def publish(self, job: IngestJob) -> str:
        return self.publish_raw(job.to_json())

    def publish_raw(self, text: str) -> str:
        """Queue a message as it is, job or not (tools and tests use it for poison)."""
        now = time.time()
        with self._write() as db:
            cursor = db.execute(
                "INSERT INTO messages (stream, body, published, visible_at) VALUES (?, ?, ?, ?)",
                (self.stream, text, now, now),
            )
        return str(cursor.lastrowid)

    def receive(self, consumer: str, block_s: float) -> Delivery | None:
        deadline = time.monotonic() + max(block_s, 0.0)
        pause = 0.05
        while True:
            delivery = self._take(consumer)
            left = deadline - time.monotonic()
            if delivery is not None or left <= 0:
                return delivery
            time.sleep(min(pause, left))
            pause = min(pause * 2, 0.2)

    def _take(self, consumer: str) -> Delivery | None:
        now = time.time()
        with self._write() as db:  # the write lock is held from the read to the update
            row = db.execute(
                "SELECT id, body, attempts, last_error FROM messages WHERE stream = ? AND visible_at <= ? "
                "ORDER BY visible_at, id LIMIT 1",
                (self.stream, now),
            ).fetchone()
            if row is None:
                return None
            message_id, raw, attempts, error = row
            if not isinstance(attempts, int) or not isinstance(raw, str):
                what = f"the bus file {self.path} holds a malformed message (id {message_id})"
                raise BusUnavailable(f"{what}; restore the file from a backup")
            db.execute(
                "UPDATE messages SET attempts = ?, consumer = ?, visible_at = ? WHERE id = ?",
                (attempts + 1, consumer, now + self.reclaim_idle_s, message_id),
            )
        return Delivery(str(message_id), parse_job(raw), int(attempts) + 1, raw, error, consumer)

    def settle(self, delivery: Delivery, outcome: Outcome) -> None:
        key = (int(delivery.message_id), self.stream)
        latest = (*key, delivery.attempt)  # only the latest holder retries or gives up
        with self._write() as db:
            if outcome.kind == "done":
                db.execute("DELETE FROM messages WHERE id = ? AND stream = ?", key)
            elif outcome.kind == "hold":
                db.execute(
                    "UPDATE messages SET visible_at = ? WHERE id = ? AND stream = ? AND attempts = ?",
                    (time.time() + self.reclaim_idle_s, *latest),
                )
            elif outcome.kind == "retry":
                db.execute(
                    "UPDATE messages SET visible_at = ?, consumer = NULL, last_error = ? "
                    "WHERE id = ? AND stream = ? AND attempts = ?",
                    (time.time(), outcome.error, *latest),
                )
            elif db.execute("DELETE FROM messages WHERE id = ? AND stream = ? AND attempts = ?", latest).rowcount:
                db.execute(
                    "INSERT INTO dead_letters (stream, message_id, body, attempts, error, dead_at) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (self.stream, delivery.message_id, delivery.raw, delivery.attempt, outcome.error, time.time()),
                )

    def backlog(self) -> Backlog:
        (outstanding,) = self._read("SELECT COUNT(*) FROM messages WHERE stream = ?", self.stream)[0]
        errors = self._read(
            "SELECT id, last_error FROM messages WHERE stream = ? AND last_error IS NOT NULL", self.stream
        )
        dead = self._read(
            "SELECT message_id, body, attempts, error FROM dead_letters WHERE stream = ? ORDER BY seq", self.stream
        )
        if not all(isinstance(a, int) for _, _, a, _ in dead):
            raise BusUnavailable(f"the bus file {self.path} holds a malformed dead letter; restore it")
        return Backlog(
            int(outstanding),
            tuple(DeadLetter(str(m), str(body), a, str(e)) for m, body, a, e in dead),
            frozen_meta({str(i): e for i, e in errors}),
        )

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- this backend only ------------------------------------------------------------------

    def held(self) -> list[dict[str, Any]]:
        """Messages a consumer holds now: id, consumer, attempts, seconds until the hold ends."""
        now = time.time()
        rows = self._read(
            "SELECT id, consumer, attempts, visible_at FROM messages "
            "WHERE stream = ? AND attempts > 0 AND consumer IS NOT NULL AND visible_at > ? ORDER BY id",
            self.stream,
            now,
        )
        return [{"message_id": str(i), "consumer": c, "attempts": a, "hold_s": v - now} for i, c, a, v in rows]
