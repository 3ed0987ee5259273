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

A whole document (:class:`DocumentText`, :func:`erase_document_rows`): the same places, but
JSON columns are scrubbed whole, so that an object citing one of its version or chunk ids (a
citation, a step's evidence) has its quote, title and source set to the marker; any run of
:data:`PASSAGE` characters of its text (a quote) and its names become the marker; the
checkpoints of a run whose saved steps name its ids or quote it are deleted.

    counts = find_rows(settings, ["jane quixote"])    # {"conversations.turns": 2, ...}
    erase_rows(settings, ["jane quixote"])            # the same counts, now erased
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Protocol

from strongroom.agent.checkpoint import CHECKPOINT_FILE, checkpoint_target, erase_threads
from strongroom.bus.local import bus_path
from strongroom.config import Settings
from strongroom.data import open_datasets
from strongroom.data.scrub import TextScrubbing
from strongroom.errors import QueryError
from strongroom.governance.erasure import MARKER, Needles
from strongroom.service.agent_run_store import open_run_store
from strongroom.store.row_text import Rows, postgres_rows, sqlite_rows

__all__ = [
    "CHECKPOINTS_PLACE",
    "NOT_RESUMABLE",
    "DocumentText",
    "erase_document_rows",
    "erase_rows",
    "find_document_rows",
    "find_rows",
]

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


class _Match(Protocol):
    def scrub(self, text: str) -> str: ...

    def holds(self, data: bytes) -> bool: ...


def _rows(
    settings: Settings,
    matcher: _Match,
    bus_urls: Sequence[str],
    *,
    apply: bool,
    catalog: Sequence[Rows] = _CATALOG,
    jobs: Rows = _JOBS,
) -> dict[str, int]:
    counts: dict[str, int] = {}

    def add(found: dict[str, int]) -> None:
        for place, n in found.items():
            counts[place] = counts.get(place, 0) + n

    # the checkpoints first: a run they held is marked in the catalog, whose rows (the run's
    # question among them) are scrubbed and whose write-ahead log is emptied after that
    add(_checkpoints(settings, matcher.holds, apply=apply))
    add(sqlite_rows(settings.catalog_path, catalog, matcher.scrub, apply=apply))
    if settings.store_url.startswith(("postgresql://", "postgres://")):
        add(postgres_rows(settings.store_url, [jobs], matcher.scrub, apply=apply))
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


def _datasets(settings: Settings, matcher: _Match, *, apply: bool) -> dict[str, int]:
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


# -- a whole document ------------------------------------------------------------------------

#: a run of at least this many characters (whitespace runs counted as one, any case) that is
#: also in the erased document's text is a quote of it
PASSAGE = 24
#: the fields of a JSON object that cites the document (names one of its version or chunk
#: ids) that hold its text or name it: each becomes the marker
CITED_FIELDS = frozenset({"quote", "title", "source", "text", "context", "snippet", "excerpt", "name"})
_MIN_PHRASE = 4
_ID_KEYS = ("version_id", "chunk_id", "id")


def _normal(text: str) -> tuple[str, list[int]]:
    """``text`` lower-cased with each whitespace run as one space, and where each of its
    characters came from in ``text``."""
    out: list[str] = []
    where: list[int] = []
    space = False
    for i, char in enumerate(text):
        if char.isspace():
            if not space:
                out.append(" ")
                where.append(i)
            space = True
            continue
        space = False
        low = char.lower()
        out.append(low if len(low) == 1 else char)
        where.append(i)
    return "".join(out), where


class DocumentText:
    """What a document erasure looks for outside the store: the document's version and chunk
    ids (kept: they name it, they hold none of its text), its pages' text (a run of
    :data:`PASSAGE` characters of it anywhere is a quote) and its names (title, source, the
    source's file name; at least 4 characters, matched in any case).

    ``scrub`` replaces each quote and name with the marker and, in JSON (a column, or a
    string holding JSON, at any depth), sets the :data:`CITED_FIELDS` of every object that
    names one of its ids to the marker; ``holds`` says whether serialised bytes name one of
    its ids or hold a quote or name (a LangGraph checkpoint, deleted whole). Built with no
    text (``verify``: the text is gone), it finds only cited fields not yet erased."""

    def __init__(
        self,
        version_ids: Collection[str],
        chunk_ids: Collection[str] = (),
        texts: Iterable[str] = (),
        names: Iterable[str] = (),
    ) -> None:
        self.version_ids = frozenset(version_ids)
        self.chunk_ids = frozenset(chunk_ids)
        self.ids = self.version_ids | self.chunk_ids
        self._grams: set[int] = set()
        for text in texts:
            normal, _ = _normal(text)
            self._grams.update(hash(normal[i : i + PASSAGE]) for i in range(len(normal) - PASSAGE + 1))
        phrases = {" ".join(n.split()) for n in names}
        phrases = {p for p in phrases if len(p.replace(" ", "")) >= _MIN_PHRASE and p != MARKER}
        pattern = "|".join(
            r"\s+".join(re.escape(w) for w in p.split()) for p in sorted(phrases, key=lambda p: (-len(p), p))
        )
        self._names = re.compile(pattern, re.IGNORECASE) if pattern else None

    def _quotes(self, text: str) -> list[tuple[int, int]]:
        """The spans of ``text`` (start, end) that quote the document, merged."""
        if not self._grams or len(text) < PASSAGE:
            return []
        normal, where = _normal(text)
        spans: list[tuple[int, int]] = []
        for i in range(len(normal) - PASSAGE + 1):
            if hash(normal[i : i + PASSAGE]) in self._grams:
                start, end = where[i], where[i + PASSAGE - 1] + 1
                if spans and start <= spans[-1][1]:
                    spans[-1] = (spans[-1][0], max(end, spans[-1][1]))
                else:
                    spans.append((start, end))
        return spans

    def scrub_text(self, text: str) -> str:
        """``text`` with every quote of the document and every name of it replaced by the marker."""
        spans = self._quotes(text)
        if spans:
            pieces, at = [], 0
            for start, end in spans:
                pieces += [text[at:start], MARKER]
                at = end
            text = "".join([*pieces, text[at:]])
        if self._names is not None:
            text = self._names.sub(MARKER, text)
        return text

    def _value(self, value: object) -> object:
        if isinstance(value, str):
            return self.scrub(value)
        if isinstance(value, list):
            return [self._value(v) for v in value]
        if isinstance(value, dict):
            cites = any(isinstance(value.get(k), str) and value.get(k) in self.ids for k in _ID_KEYS)
            out: dict[str, object] = {}
            for k, v in value.items():
                if cites and k in CITED_FIELDS and isinstance(v, str) and v and v != MARKER:
                    out[k] = MARKER
                else:
                    out[self.scrub_text(k)] = self._value(v)
            return out
        return value

    def scrub(self, text: str) -> str:
        """See the class; ``text`` itself when nothing in it is the document's."""
        if text.lstrip()[:1] in ("{", "["):  # JSON: scrubbed value by value, so it stays JSON
            try:
                parsed = json.loads(text)
            except ValueError:
                parsed = None
            if isinstance(parsed, dict | list):
                new = self._value(parsed)
                return text if new == parsed else json.dumps(new, sort_keys=True)
        return self.scrub_text(text)

    def holds_text(self, data: bytes) -> bool:
        """Whether ``data`` (as UTF-8) quotes or names the document."""
        text = data.decode("utf-8", "replace")
        return bool(self._quotes(text)) or (self._names is not None and self._names.search(text) is not None)

    def holds(self, data: bytes) -> bool:
        """Whether ``data`` names one of the document's ids, or quotes or names it."""
        return any(i.encode() in data for i in self.ids) or self.holds_text(data)


def _as_text(spec: Rows) -> Rows:
    """``spec`` with its JSON columns read as text: :meth:`DocumentText.scrub` parses them
    whole, so it sees which object cites the document."""
    return Rows(spec.place, spec.table, text=spec.columns, delete=spec.delete, also=spec.also)


_DOCUMENT_CATALOG = tuple(_as_text(s) for s in _CATALOG)
_DOCUMENT_JOBS = _as_text(_JOBS)


def find_document_rows(settings: Settings, document: DocumentText, *, bus_urls: Sequence[str] = ()) -> dict[str, int]:
    """Per place (see the module), how many rows quote, name or cite ``document``; changes nothing."""
    return _rows(settings, document, bus_urls, apply=False, catalog=_DOCUMENT_CATALOG, jobs=_DOCUMENT_JOBS)


def erase_document_rows(settings: Settings, document: DocumentText, *, bus_urls: Sequence[str] = ()) -> dict[str, int]:
    """Scrub ``document`` from the places :func:`find_document_rows` searches (the checkpoints
    of a run that cites it are deleted, and the run is no longer resumable); per place, the
    rows changed."""
    return _rows(settings, document, bus_urls, apply=True, catalog=_DOCUMENT_CATALOG, jobs=_DOCUMENT_JOBS)
