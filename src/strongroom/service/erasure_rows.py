"""Erasure of an identifier from the application's own rows: everything the platform keeps
besides the document store and the audit log (which :mod:`strongroom.service.erasure` erases
itself), so that an erasure reaches every copy.

Each place (its name in the counts), where it is, and what becomes of a row that holds the
identifier:

- ``conversations``: the catalog's conversation titles; scrubbed.
- ``conversations.turns``: each question, retrieval query and answer JSON (claims,
  citations, quotes); scrubbed.
- ``conversations.feedback``: feedback comments; scrubbed.
- ``agent_runs``: a run's question, result JSON, reason and clocks; scrubbed.
- ``agent_runs.events``: each step's JSON; scrubbed.
- ``agent_checkpoints``: LangGraph's saved steps (``HOME/agent_checkpoints.sqlite3``, or the
  PostgreSQL store); the run's whole thread is deleted (counted in runs).
- ``proposals``: a four-eyes change, its reason and detail; scrubbed, and a pending one set
  to ``failed`` (its change no longer matches its hash, so it could never be applied).
- ``jobs``: the store's ingestion job log (the catalog, or PostgreSQL); scrubbed.
- ``web_sessions``: ``HOME/web_sessions.sqlite3``, sessions and pending sign-ins; deleted
  (that browser is signed out).
- ``bus.messages``, ``bus.dead_letters``: each SQLite bus file (``bus_urls``, and any bus
  file under the home); deleted (a queued job about erased content is not run).
- ``datasets.<name>``, ``datasets.versions``: ``HOME/datasets.duckdb`` or PostgreSQL schema
  ``strongroom_data``, every version's rows and the loaded file's name; scrubbed in place.

Scrubbed: each case-insensitive occurrence (in every form
:class:`~strongroom.governance.erasure.Needles` matches) becomes ``[erased]``, in place.
A LangGraph checkpoint is a serialised state that cannot be edited safely, so a run whose
saved steps hold the identifier loses them: an ``interrupted`` run becomes ``error`` (its
reason says why) and can no longer be resumed; a queued or running run is asked to cancel
(erase again once it has ended: it may have saved a step meanwhile).

No old text stays in a file: each SQLite file is changed with ``secure_delete`` on, then
vacuumed and its write-ahead log emptied (even with no row changed, since rows deleted
earlier may lie in free pages); the DuckDB file is rewritten whole when a value changed or
its bytes still hold the identifier; changed PostgreSQL tables are rewritten (``VACUUM FULL``).

Not covered here: Redis Streams and Kafka buses (their messages expire with the stream's
retention; use the SQLite bus, or trim the stream), PostgreSQL's write-ahead log and backups
(they age out with the server's retention), user names (owner columns: they name a
principal, not a data subject; a session is deleted whole), and the governance records that
must outlive an erasure: legal holds (their reason and query), retention policies, the model
registry and API key labels.

    counts = find_rows(settings, ["jane quixote"])    # {"conversations.turns": 2, ...}
    erase_rows(settings, ["jane quixote"])            # the same counts, now erased
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from strongroom.agent.checkpoint import CHECKPOINT_FILE, checkpoint_target, erase_threads
from strongroom.bus.local import bus_path
from strongroom.config import Settings
from strongroom.data import open_datasets
from strongroom.data.scrub import TextScrubbing
from strongroom.errors import QueryError
from strongroom.governance.erasure import Needles
from strongroom.service.agent_run_store import open_run_store
from strongroom.store.row_text import Rows, postgres_rows, sqlite_rows

__all__ = ["CHECKPOINTS_PLACE", "NOT_RESUMABLE", "erase_rows", "find_rows"]

#: the place of the agent's checkpoints in the counts (threads, i.e. runs)
CHECKPOINTS_PLACE = "agent_checkpoints"
#: the reason an interrupted run whose checkpoints were erased gives
NOT_RESUMABLE = "its saved steps held erased text and were deleted by an erasure; it cannot be resumed"
WEB_SESSIONS_FILE = "web_sessions.sqlite3"
DATASETS_FILE = "datasets.duckdb"

_PENDING_FAILED = "status = CASE WHEN status IN ('proposed', 'approved') THEN 'failed' ELSE status END"
_JOBS = Rows("jobs", "jobs", json=("request", "report"))
_CATALOG = (
    Rows("conversations", "conversations", text=("title",)),
    Rows("conversations.turns", "conversation_turns", text=("question", "query"), json=("answer",)),
    Rows("conversations.feedback", "conversation_feedback", text=("comment",)),
    Rows("agent_runs", "agent_runs", text=("question", "reason"), json=("result_json", "clocks_json")),
    Rows("agent_runs.events", "agent_run_events", json=("data_json",)),
    Rows("proposals", "proposals", text=("reason", "detail"), json=("change",), also=_PENDING_FAILED),
    _JOBS,
)
_WEB = (
    Rows("web_sessions", "web_sessions", text=("name", "groups", "roles", "key_id"), delete=True),
    Rows("web_sessions", "web_pending", text=("next",), delete=True),
)
_BUS = (
    Rows("bus.messages", "messages", text=("body", "last_error"), delete=True),
    Rows("bus.dead_letters", "dead_letters", text=("body", "error"), delete=True),
)
_SQLITE_SUFFIXES = (".sqlite3", ".sqlite", ".db")
_SQLITE_MAGIC = b"SQLite format 3\x00"


class _Matcher:
    """What the stores are given: scrub text, and tell whether serialised bytes hold a needle."""

    def __init__(self, needles: Needles | Sequence[str]) -> None:
        if isinstance(needles, Needles):
            self.needles: tuple[Needles, ...] = (needles,)
        elif isinstance(needles, str):  # one identifier, not its characters
            self.needles = (Needles.of(needles),)
        else:
            self.needles = tuple(Needles.of(n) for n in dict.fromkeys(needles))
        if not self.needles:
            raise QueryError("no identifier to erase was given")

    def scrub(self, text: str) -> str:
        for needles in self.needles:
            text = needles.scrub(text)
        return text

    def holds(self, data: bytes) -> bool:
        """Whether ``data`` holds a needle: as raw bytes (UTF-8 inside msgpack or JSON), or
        as UTF-8 text with its undecodable bytes replaced (any letter case)."""
        text = data.decode("utf-8", "replace")
        return any(n.count_bytes(data) or n.count(text) for n in self.needles)


def find_rows(settings: Settings, needles: Needles | Sequence[str], *, bus_urls: Sequence[str] = ()) -> dict[str, int]:
    """Per place (see the module), how many rows hold any of ``needles`` (case-insensitive;
    an identifier, or its :class:`Needles`); changes nothing. ``bus_urls``: SQLite bus URLs
    outside the home (the service's ``bus_url``); bus files under the home are found."""
    return _rows(settings, _Matcher(needles), bus_urls, apply=False)


def erase_rows(settings: Settings, needles: Needles | Sequence[str], *, bus_urls: Sequence[str] = ()) -> dict[str, int]:
    """Remove every occurrence of ``needles`` from the places :func:`find_rows` searches;
    per place, how many rows were changed (scrubbed, deleted, or for the checkpoints: runs
    whose saved steps were deleted). Afterwards :func:`find_rows` finds none, and no file
    keeps the old text in free space."""
    return _rows(settings, _Matcher(needles), bus_urls, apply=True)


def _rows(settings: Settings, matcher: _Matcher, bus_urls: Sequence[str], *, apply: bool) -> dict[str, int]:
    counts: dict[str, int] = {}

    def add(found: dict[str, int]) -> None:
        for place, n in found.items():
            counts[place] = counts.get(place, 0) + n

    # the checkpoints first: a run they held is marked in the catalog, whose rows (the run's
    # question among them) are scrubbed and whose write-ahead log is emptied after that
    add(_checkpoints(settings, matcher.holds, apply=apply))
    add(sqlite_rows(settings.catalog_path, _CATALOG, matcher.scrub, apply=apply))
    if settings.store_url.startswith(("postgresql://", "postgres://")):
        add(postgres_rows(settings.store_url, [_JOBS], matcher.scrub, apply=apply))
    add(sqlite_rows(settings.home / WEB_SESSIONS_FILE, _WEB, matcher.scrub, apply=apply))
    for path in _bus_files(settings.home, bus_urls):
        add(sqlite_rows(path, _BUS, matcher.scrub, apply=apply))
    add(_datasets(settings, matcher, apply=apply))
    return counts


def _checkpoints(settings: Settings, holds: Callable[[bytes], bool], *, apply: bool) -> dict[str, int]:
    threads = erase_threads(checkpoint_target(settings), holds, apply=apply)
    if apply and threads:
        runs = open_run_store(settings)
        try:
            for run_id in threads:
                runs.transition(run_id, ("interrupted",), status="error", reason=NOT_RESUMABLE)
                runs.transition(run_id, ("queued", "running"), cancel_requested=True)
        finally:
            runs.close()
    return {CHECKPOINTS_PLACE: len(threads)}


def _datasets(settings: Settings, matcher: _Matcher, *, apply: bool) -> dict[str, int]:
    path = settings.home / DATASETS_FILE
    if not settings.store_url and not path.is_file():
        return {}  # never loaded: opening it would create it
    # an erasure that stopped after its update and before the file was rewritten left the old
    # values in freed blocks, which no row shows: the file's bytes say so
    compact = apply and not settings.store_url and _file_holds(path, matcher.holds)
    datasets = open_datasets(settings)
    try:
        if not isinstance(datasets, TextScrubbing):  # pragma: no cover - both backends implement it
            raise TypeError(f"{type(datasets).__name__} cannot be scrubbed")
        return datasets.scrub_text(matcher.scrub, apply=apply, compact=compact)
    finally:
        datasets.close()


def _file_holds(path: Path, holds: Callable[[bytes], bool], chunk: int = 1 << 22, overlap: int = 4096) -> bool:
    """Whether the bytes of ``path`` hold a needle, read a few MiB at a time (each chunk with
    the end of the one before, so a needle across two chunks is seen)."""
    tail = b""
    with path.open("rb") as f:
        while block := f.read(chunk):
            if holds(tail + block):
                return True
            tail = block[-overlap:]
    return False


def _bus_files(home: Path, bus_urls: Sequence[str]) -> list[Path]:
    """The SQLite bus files: those named, and any SQLite file under the home with the bus's tables."""
    named = [bus_path(u) for u in bus_urls if u.startswith("sqlite://")]
    return list(dict.fromkeys([*named, *_bus_files_under(home)]))


def _bus_files_under(home: Path) -> Iterator[Path]:
    known = {"catalog.sqlite3", CHECKPOINT_FILE, WEB_SESSIONS_FILE}
    if not home.is_dir():
        return
    for path in sorted(home.rglob("*")):
        if path.suffix not in _SQLITE_SUFFIXES or path.name in known or not path.is_file():
            continue
        try:
            with path.open("rb") as f:
                if f.read(len(_SQLITE_MAGIC)) != _SQLITE_MAGIC:
                    continue
        except OSError:
            continue
        if _has_bus_tables(path):
            yield path


def _has_bus_tables(path: Path) -> bool:
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            names = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        finally:
            db.close()
    except sqlite3.Error:
        return False
    return {"messages", "dead_letters"} <= names
