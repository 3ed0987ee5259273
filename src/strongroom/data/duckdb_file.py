"""One DuckDB file shared by several processes: held only while an operation runs.

DuckDB lets one process open a file for writing, or any number open it read-only, never both.
The service holds the datasets for queries while ``strongroom data load`` or ``strongroom mcp``
run in processes of their own, so :class:`DuckDBFile` never holds the file for long:

- **reads** use one read-only connection kept open between operations (opening a DuckDB file
  costs ~20 ms, three times a point query), each operation on its own cursor. It is closed
  as soon as no operation uses it and either a writer has asked for the file or nothing used
  it for ``keep_open_s`` seconds; the next read opens it again and sees what was loaded.
- **writes** (loads) open a read-write connection of their own and close it when done. A
  writer first asks for the file by touching ``<file>.write`` (the *want* mark) and keeps it
  fresh while it waits: readers in every process then let go of the file, and open no new
  connection while the mark is fresh (a mark a crashed writer left goes stale in seconds).
- **a locked file** (a load running in another process, or a process that is not strongroom)
  is tried again with a short backoff for up to ``lock_wait_s`` seconds, then a
  :class:`~strongroom.errors.StoreError` says what to do.

Every connection is locked down before it is used: ``enable_external_access = false`` (no
file, URL, ATTACH, COPY or extension access) from the start, then ``TimeZone = 'UTC'`` and
``lock_configuration = true`` (no ``SET`` can undo them).

>>> shared = DuckDBFile(home / "datasets.duckdb")  # doctest: +SKIP
>>> with shared.reading() as db:  # doctest: +SKIP
...     db.execute("SELECT 42").fetchall()
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from strongroom.errors import StoreError

__all__ = ["ENGINE_CONFIG", "DuckDBFile"]

#: the engine settings of every connection (a query may not change them: see the module)
ENGINE_CONFIG: dict[str, str | bool | int | float | list[str]] = {
    "enable_external_access": False,
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "allow_community_extensions": False,
}
_FRESH_S = 2.0  # a want mark older than this was left by a writer that no longer waits
_BACKOFF_S = (0.005, 0.1)  # first and longest pause between two tries of a locked file
_WATCH_S = 0.05  # how often an idle read connection looks for a writer's want mark
_BUSY = ("lock", "different configuration")  # DuckDB's words for a file another connection holds


class DuckDBFile:
    """Connections to the DuckDB file ``path``, held only while operations run (see the module).

    ``threads``: the engine's threads (None: DuckDB's default); ``lock_wait_s``: how long an
    operation waits for a file another process holds; ``keep_open_s``: how long the read
    connection stays open unused (0: closed after every operation); ``memory_limit_mb``: the
    engine's memory (a query past it fails; None: DuckDB's default, 80% of the machine).
    """

    def __init__(
        self,
        path: Path,
        *,
        threads: int | None = None,
        lock_wait_s: float = 10.0,
        keep_open_s: float = 5.0,
        memory_limit_mb: int | None = 2048,
    ) -> None:
        if lock_wait_s < 0 or keep_open_s < 0:
            raise ValueError("lock_wait_s and keep_open_s must be 0 or more")
        self.path = path
        self.want = path.with_name(path.name + ".write")
        self.lock_wait_s = lock_wait_s
        self.keep_open_s = keep_open_s
        self._config = dict(ENGINE_CONFIG)
        if threads:
            self._config["threads"] = threads
        if memory_limit_mb:
            self._config["memory_limit"] = f"{memory_limit_mb}MB"
        self._state = threading.Condition()
        self._reader: duckdb.DuckDBPyConnection | None = None  # guarded by _state
        self._users = 0  # cursors of _reader in use
        self._last_used = 0.0
        self._writing = False  # a load of this object holds (or waits for) the file
        self._opening = False  # a read of this object is opening _reader
        self._closed = False
        self._opened = 0  # read connections opened (for tests and benchmarks)

    @property
    def opened(self) -> int:
        """How many times a read connection was opened (each costs ~20 ms)."""
        return self._opened

    @contextmanager
    def reading(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A cursor of the shared read-only connection, for one operation."""
        cursor = self._acquire()
        try:
            yield cursor
        finally:
            cursor.close()
            self._release()

    @contextmanager
    def writing(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-write connection of its own, for one load: waits for this object's reads to
        end and for other processes to let go of the file (up to ``lock_wait_s``)."""
        deadline = time.monotonic() + self.lock_wait_s
        with self._state:
            while self._writing:  # one load at a time (DuckDBDatasets serialises them already)
                self._wait(deadline, "a load in this process")
            self._writing = True
            try:
                while self._users or self._opening:
                    self._wait(deadline, "queries in this process")
            except BaseException:
                self._writing = False
                self._state.notify_all()
                raise
            self._drop_reader()
        db: duckdb.DuckDBPyConnection | None = None
        try:
            db = self._open(read_only=False, deadline=deadline, pause=time.sleep)
            yield db
        finally:
            if db is not None:
                db.close()
            self._unmark()
            with self._state:
                self._writing = False
                self._state.notify_all()

    def close(self) -> None:
        """Let go of the file; operations after this are refused. Waits for running reads."""
        with self._state:
            self._closed = True
            while self._users:
                self._state.wait()
            self._drop_reader()

    # -- reading -----------------------------------------------------------------------------

    def _acquire(self) -> duckdb.DuckDBPyConnection:
        deadline = time.monotonic() + self.lock_wait_s
        with self._state:
            while True:
                if self._closed:
                    raise StoreError(f"the datasets file {self.path} is closed: open the store again")
                if self._writing:
                    self._wait(deadline, "a load in this process")
                    continue
                if self._reader is not None and self._wanted():
                    if self._users == 0:
                        self._drop_reader()
                    self._wait(deadline, "a load in another process", pause=True)
                    continue
                if self._reader is None:
                    if self._opening or self._wanted():
                        self._wait(deadline, "a load in another process", pause=True)
                        continue
                    self._opening = True
                    try:  # waits on _state between tries, so other threads may release meanwhile
                        reader = self._open(read_only=True, deadline=deadline, pause=self._state.wait)
                    finally:
                        self._opening = False
                        self._state.notify_all()
                    self._reader = reader
                    self._opened += 1
                    if self.keep_open_s > 0:
                        threading.Thread(target=self._watch, args=(reader,), daemon=True).start()
                self._users += 1
                try:
                    return self._reader.cursor()
                except BaseException:
                    self._users -= 1
                    raise

    def _release(self) -> None:
        with self._state:
            self._users -= 1
            self._last_used = time.monotonic()
            if self._users == 0 and (self.keep_open_s == 0 or self._closed or self._wanted()):
                self._drop_reader()
            self._state.notify_all()

    def _watch(self, reader: duckdb.DuckDBPyConnection) -> None:
        """Close ``reader`` once it is unused and a writer wants the file or it stayed unused
        for ``keep_open_s``; ends when it is closed."""
        with self._state:
            while self._reader is reader:
                if self._users == 0 and (time.monotonic() - self._last_used >= self.keep_open_s or self._wanted()):
                    self._drop_reader()
                    return
                self._state.wait(_WATCH_S)

    def _drop_reader(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None
            self._state.notify_all()

    def _wait(self, deadline: float, holder: str, *, pause: bool = False) -> None:
        """Wait (holding nothing) for the state to change, or ``pause`` a short while; past the
        deadline, a StoreError naming ``holder``."""
        left = deadline - time.monotonic()
        if left <= 0:
            raise StoreError(
                f"the datasets file {self.path} stayed in use by {holder} for {self.lock_wait_s:g} s: try again "
                "when the load has finished, or wait longer (dataset_lock_wait_s, STRONGROOM_DATASET_LOCK_WAIT_S)"
            )
        self._state.wait(min(left, _BACKOFF_S[1]) if pause else left)

    # -- the writer's mark ----------------------------------------------------------------------

    def _wanted(self) -> bool:
        """Whether a writer (of any process) waits for the file now."""
        try:
            age = time.time() - self.want.stat().st_mtime
        except OSError:
            return False
        return -_FRESH_S < age < _FRESH_S

    def _mark(self) -> None:
        try:
            self.want.touch()
        except OSError:
            pass  # a read-only folder: readers let go when idle instead

    def _unmark(self) -> None:
        try:
            self.want.unlink(missing_ok=True)
        except OSError:
            pass

    # -- opening -----------------------------------------------------------------------------

    def _open(self, *, read_only: bool, deadline: float, pause: Callable[[float], object]) -> duckdb.DuckDBPyConnection:
        """A locked-down connection, the file tried again (``pause`` in between, growing) while
        another connection holds it."""
        wait = _BACKOFF_S[0]
        while True:
            if not read_only:
                self._mark()
            try:
                db = duckdb.connect(str(self.path), read_only=read_only, config=self._config)
            except (duckdb.IOException, duckdb.ConnectionException) as exc:
                if not any(word in str(exc) for word in _BUSY):
                    raise StoreError(f"cannot open the datasets file {self.path}: {first_line(exc)}") from exc
                left = deadline - time.monotonic()
                if left <= 0:
                    raise StoreError(
                        f"the datasets file {self.path} stayed locked for {self.lock_wait_s:g} s ({first_line(exc)}): "
                        "a load may still be running, so try again when it has finished. If no strongroom process "
                        "is loading, stop the process that holds the file; to share datasets between many "
                        "processes, keep them in PostgreSQL (STRONGROOM_STORE_URL)"
                    ) from exc
                pause(min(wait, left))
                wait = min(wait * 2, _BACKOFF_S[1])
                continue
            except (duckdb.Error, OSError) as exc:
                raise StoreError(f"cannot open the datasets file {self.path}: {first_line(exc)}") from exc
            try:
                _lock_down(db, self.path)
            except BaseException:
                db.close()
                raise
            return db


def _lock_down(db: duckdb.DuckDBPyConnection, path: Path) -> None:
    # Settings are global to the database instance, which connections of one process share:
    # once locked, no connection can change them, and a later connection finds them set.
    try:
        row = db.execute("SELECT current_setting('lock_configuration')").fetchone()
        if not (row and row[0]):
            db.execute("SET GLOBAL TimeZone = 'UTC'")
            db.execute("SET GLOBAL lock_configuration = true")
        row = db.execute("SELECT current_setting('enable_external_access')").fetchone()
    except duckdb.Error as exc:
        raise StoreError(f"cannot prepare the datasets file {path}: {first_line(exc)}") from exc
    if not row or row[0]:
        raise StoreError(f"the datasets file {path} is open with file access allowed; restart the process")


def first_line(exc: BaseException) -> str:
    """The first line of an engine's message, cut to 300 characters."""
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]
