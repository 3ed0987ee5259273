"""Where a run's checkpoints live, so a run can resume after its process died.

:func:`open_checkpointer` opens one of LangGraph's savers:

- a path: SQLite (``langgraph-checkpoint-sqlite``'s ``SqliteSaver``), by default
  ``HOME/agent_checkpoints.sqlite3`` (:func:`default_checkpoint_path`); in WAL mode with
  ``synchronous=NORMAL`` (a committed step survives the process being killed);
- ``postgresql://...`` (or a libpq ``key=value`` string): PostgreSQL
  (``langgraph-checkpoint-postgres``' ``PostgresSaver``, imported only then;
  ``pip install 'strongroom[postgres]'``);
- ``memory``: in this process only (tests, benchmarks; nothing survives a restart).

Both database savers are synchronous and guard their one connection with a lock (so the
SQLite connection is opened with ``check_same_thread=False``, as ``SqliteSaver`` expects).
The graph is async, so :class:`AgentCheckpointer` wraps a saver and runs its calls in a
worker thread: the event loop is never blocked on disk or network.
"""

from __future__ import annotations

import asyncio
import builtins
import os
import re
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
)
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.sqlite import SqliteSaver

from strongroom.config import Settings
from strongroom.errors import ConfigError, StoreError
from strongroom.store.row_text import compact_sqlite, open_secure

__all__ = [
    "CHECKPOINT_FILE",
    "AgentCheckpointer",
    "checkpoint_target",
    "default_checkpoint_path",
    "erase_threads",
    "open_checkpointer",
]

_CONNINFO = re.compile(r"^\s*(?:host|hostaddr|port|dbname|user|password|service|sslmode)\s*=")
#: the SQLite file of a home folder's agent checkpoints
CHECKPOINT_FILE = "agent_checkpoints.sqlite3"


def default_checkpoint_path(home: str | os.PathLike[str]) -> Path:
    """The SQLite file of the agent's checkpoints in a home folder."""
    return Path(home) / CHECKPOINT_FILE


def checkpoint_target(settings: Settings) -> str:
    """Where a deployment keeps its agent checkpoints: its PostgreSQL store when it has one,
    else a SQLite file in its home (what :func:`open_checkpointer` and :func:`erase_threads` take)."""
    if settings.store_url.startswith(("postgresql://", "postgres://")):
        return settings.store_url
    return str(default_checkpoint_path(settings.home))


class AgentCheckpointer(BaseCheckpointSaver[Any]):
    """A LangGraph checkpointer around a synchronous saver: the async methods the graph calls
    run the saver's sync methods in a worker thread (``threaded=False`` calls them inline,
    for the in-memory saver). ``close`` closes the saver's connection.

        checkpointer = open_checkpointer(default_checkpoint_path(home))
        runner = AgentRunner(gateway, toolbox, checkpointer=checkpointer)
        ...
        checkpointer.close()
    """

    def __init__(
        self,
        inner: BaseCheckpointSaver[Any],
        *,
        threaded: bool = True,
        close: Callable[[], None] | None = None,
        name: str = "",
    ) -> None:
        super().__init__(serde=inner.serde)
        self.inner = inner
        self.threaded = threaded
        self.name = name or type(inner).__name__
        self._close = close

    def __repr__(self) -> str:
        return f"AgentCheckpointer({self.name})"

    async def _call(self, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        if self.threaded:
            return await asyncio.to_thread(fn, *args, **kw)
        return fn(*args, **kw)

    # -- the sync interface: the saver's own

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return self.inner.get_tuple(config)

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        return self.inner.put(config, checkpoint, metadata, new_versions)

    def put_writes(
        self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str, task_path: str = ""
    ) -> None:
        self.inner.put_writes(config, writes, task_id, task_path)

    def delete_thread(self, thread_id: str) -> None:
        self.inner.delete_thread(thread_id)

    def get_next_version(self, current: Any, channel: None) -> Any:
        return self.inner.get_next_version(current, channel)

    # -- the async interface the graph uses: the same, off the event loop

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        result: CheckpointTuple | None = await self._call(self.inner.get_tuple, config)
        return result

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        result: RunnableConfig = await self._call(self.inner.put, config, checkpoint, metadata, new_versions)
        return result

    async def aput_writes(
        self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str, task_path: str = ""
    ) -> None:
        await self._call(self.inner.put_writes, config, writes, task_id, task_path)

    async def adelete_thread(self, thread_id: str) -> None:
        await self._call(self.inner.delete_thread, thread_id)

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        def read() -> builtins.list[CheckpointTuple]:
            return builtins.list(self.inner.list(config, filter=filter, before=before, limit=limit))

        for item in await self._call(read):
            yield item

    # -- strongroom's own

    def delete(self, run_id: str) -> None:
        """Forget a run's checkpoints (it can no longer be resumed)."""
        self.inner.delete_thread(run_id)

    def close(self) -> None:
        """Close the saver's connection (idempotent)."""
        close, self._close = self._close, None
        if close is not None:
            close()

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        return self.inner.list(config, filter=filter, before=before, limit=limit)


def _sqlite(path: Path) -> AgentCheckpointer:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # check_same_thread=False: SqliteSaver serialises every use of it with its own lock,
        # and the calls come from worker threads.
        conn = sqlite3.connect(path, check_same_thread=False, timeout=30.0)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        saver = SqliteSaver(conn)
        with saver.lock:
            saver.setup()
    except (OSError, sqlite3.Error) as exc:
        raise StoreError(
            f"could not open the agent's checkpoints at {path}: {exc}; check that the folder exists and is writable"
        ) from exc
    return AgentCheckpointer(saver, close=conn.close, name=f"sqlite:{path}")


def _postgres(url: str) -> AgentCheckpointer:
    try:
        import psycopg
        from langgraph.checkpoint.postgres import PostgresSaver
        from psycopg.rows import dict_row
    except ImportError as exc:
        raise ConfigError(
            "agent checkpoints in PostgreSQL need psycopg and langgraph-checkpoint-postgres: "
            "pip install 'strongroom[postgres]'"
        ) from exc
    try:
        # autocommit and dict rows are what PostgresSaver expects of its connection
        conn = psycopg.connect(url, autocommit=True, prepare_threshold=0, row_factory=dict_row)
    except psycopg.Error as exc:
        raise StoreError(f"could not connect to PostgreSQL for the agent's checkpoints: {exc}; check the URL") from exc
    try:
        saver = PostgresSaver(conn)
        saver.setup()
    except psycopg.Error as exc:
        conn.close()
        raise StoreError(f"could not set up the agent's checkpoint tables in PostgreSQL: {exc}") from exc
    return AgentCheckpointer(saver, close=conn.close, name="postgresql")


def open_checkpointer(target: str | os.PathLike[str]) -> AgentCheckpointer:
    """Open the checkpoints at ``target``: a SQLite file's path, a ``postgresql://`` URL (or
    a libpq ``key=value`` connection string) or ``memory`` (see the module's docstring).
    Close it when done."""
    text = os.fspath(target)
    if text == "memory":
        return AgentCheckpointer(InMemorySaver(), threaded=False, name="memory")
    if text.startswith(("postgresql://", "postgres://")) or (isinstance(target, str) and _CONNINFO.match(text)):
        return _postgres(text)
    if "://" in text:
        raise ConfigError(
            f"agent checkpoints can be a file path, a postgresql:// URL or 'memory', not {text.split('://')[0]}://"
        )
    return _sqlite(Path(text))


# -- erasure: a thread whose saved state holds erased text is deleted whole ----------------------

_SQLITE_BLOBS = ("SELECT thread_id, checkpoint, metadata FROM checkpoints", "SELECT thread_id, value, NULL FROM writes")
_PG_BLOBS = (
    "SELECT thread_id, convert_to(checkpoint::text || metadata::text, 'UTF8'), NULL FROM checkpoints",
    "SELECT thread_id, blob, NULL FROM checkpoint_blobs",
    "SELECT thread_id, blob, NULL FROM checkpoint_writes",
)
_PG_TABLES = ("checkpoints", "checkpoint_blobs", "checkpoint_writes")


def _holding(rows: Iterable[tuple[Any, ...]], holds: Callable[[bytes], bool]) -> set[str]:
    found: set[str] = set()
    for thread, *blobs in rows:
        if thread not in found and any(holds(bytes(b)) for b in blobs if isinstance(b, bytes | memoryview)):
            found.add(str(thread))
    return found


def erase_threads(target: str | os.PathLike[str], holds: Callable[[bytes], bool], *, apply: bool) -> list[str]:
    """The runs (thread ids) whose saved steps at ``target`` (as :func:`open_checkpointer`
    takes it) hold bytes for which ``holds`` is true; with ``apply``, every checkpoint and
    write of those threads is deleted (a serialised state cannot be edited safely, so the
    run can no longer be resumed) and the store compacted so the old bytes are gone: a
    SQLite file is vacuumed and its write-ahead log emptied (even when no thread matched:
    steps deleted before may lie in free pages), PostgreSQL's tables rewritten
    (``VACUUM FULL``). ``holds`` sees each serialised value (msgpack or JSON bytes, where
    strings are UTF-8). ``memory``: nothing is kept across processes, nothing to do."""
    text = os.fspath(target)
    if text == "memory":
        return []
    if text.startswith(("postgresql://", "postgres://")) or (isinstance(target, str) and _CONNINFO.match(text)):
        return _erase_postgres(text, holds, apply=apply)
    return _erase_sqlite(Path(text), holds, apply=apply)


def _erase_sqlite(path: Path, holds: Callable[[bytes], bool], *, apply: bool) -> list[str]:
    if not path.is_file():
        return []
    db = open_secure(path)
    try:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not {"checkpoints", "writes"} <= tables:
            return []
        found: set[str] = set()
        for query in _SQLITE_BLOBS:  # streamed: a row at a time, never the whole table
            found |= _holding(db.execute(query), holds)
        if apply:
            db.execute("BEGIN IMMEDIATE")
            for thread in sorted(found):
                db.execute("DELETE FROM checkpoints WHERE thread_id = ?", (thread,))
                db.execute("DELETE FROM writes WHERE thread_id = ?", (thread,))
            db.execute("COMMIT")
            compact_sqlite(db, path)
        return sorted(found)
    except sqlite3.Error as exc:
        raise StoreError(f"could not erase from the agent's checkpoints at {path}: {exc}") from exc
    finally:
        db.close()


def _erase_postgres(url: str, holds: Callable[[bytes], bool], *, apply: bool) -> list[str]:
    import psycopg  # the postgres extra, as for the saver

    try:
        with psycopg.connect(url) as db:
            exists = db.execute("SELECT to_regclass('checkpoint_writes') IS NOT NULL").fetchone()
            if not exists or not exists[0]:
                return []
            found: set[str] = set()
            for query in _PG_BLOBS:
                with db.cursor(name="strongroom_erase_threads") as rows:  # server-side: read in batches
                    rows.execute(query)
                    found |= _holding(rows, holds)
            if not apply:
                return sorted(found)
            for table in _PG_TABLES:
                db.execute(f"DELETE FROM {table} WHERE thread_id = ANY(%s)", (sorted(found),))
            db.commit()
            db.autocommit = True
            if found:
                for table in _PG_TABLES:
                    db.execute(f"VACUUM FULL {table}")
            return sorted(found)
    except psycopg.Error as exc:
        raise StoreError(f"could not erase from the agent's checkpoints in PostgreSQL: {exc}") from exc
