"""The embedded store: a SQLite catalog with in-memory BM25 and vector indexes beside it.

SQLite is the source of truth: one transaction writes a version with its pages, chunks
and vectors, so a crash leaves either the whole version or none of it. The indexes are
derived from it; they are loaded from a snapshot under ``HOME/index`` (when it matches the
catalog), brought up to date from the rows written since, and rebuilt when in doubt.
Chunk rows only ever grow, so bringing an index up to date is an append.

>>> store = SqliteStore(Path("/tmp/sr-example"), model_id="hash-64", dim=64)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from strongroom.errors import ConfigError, StoreError
from strongroom.store import sqlite_delete, sqlite_erase
from strongroom.store.base import TOMBSTONE, EraseCount, KeywordUnit, NewVersion, Reembed, ScoredId, TextMatcher
from strongroom.store.scope import VersionTable
from strongroom.store.snapshot import IndexSet
from strongroom.types import Chunk, DocumentVersion, Page, Scope, frozen_meta

__all__ = ["SqliteStore", "open_catalog", "private_dir"]

SCHEMA_VERSION = "1"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS documents (
    id TEXT PRIMARY KEY, source TEXT NOT NULL UNIQUE, first_seen REAL NOT NULL);
CREATE TABLE IF NOT EXISTS versions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE, document_id TEXT NOT NULL REFERENCES documents(id),
    source TEXT NOT NULL, title TEXT NOT NULL, media_type TEXT NOT NULL, doc_type TEXT NOT NULL,
    acl TEXT NOT NULL, published_at REAL NOT NULL, ingested_at REAL NOT NULL,
    size INTEGER NOT NULL, pages INTEGER NOT NULL, metadata TEXT NOT NULL,
    deleted INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS versions_document ON versions(document_id);
CREATE TABLE IF NOT EXISTS pages (
    version_id TEXT NOT NULL, page INTEGER NOT NULL, text TEXT NOT NULL,
    PRIMARY KEY (version_id, page)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS chunks (
    row INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,
    version_seq INTEGER NOT NULL REFERENCES versions(seq), ordinal INTEGER NOT NULL,
    page INTEGER NOT NULL, char_start INTEGER NOT NULL, char_end INTEGER NOT NULL,
    text TEXT NOT NULL, context TEXT NOT NULL, embed_key TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS embeddings (
    key TEXT PRIMARY KEY, model TEXT NOT NULL, vector BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY, started_at REAL NOT NULL, finished_at REAL, status TEXT NOT NULL,
    request TEXT NOT NULL, report TEXT);
"""


#: other processes that hold the indexes in memory rebuild them, not append to them
_REINDEX = sqlite_delete.REINDEX


def open_catalog(path: Path, schema: str, *, shared: bool = False) -> sqlite3.Connection:
    """A connection to the catalog file with the settings every user of it needs (WAL,
    autocommit, a long busy timeout), its ``schema`` created. ``shared``: usable from
    several threads (the caller serialises access). Raises ``sqlite3.DatabaseError``."""
    private_dir(path.parent)
    if not path.exists():  # created owner-only: the catalog holds documents, keys and the audit log
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    db = sqlite3.connect(path, timeout=60.0, isolation_level=None, check_same_thread=not shared)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("PRAGMA foreign_keys=ON")
    db.executescript(schema)
    return db


def private_dir(path: Path) -> Path:
    """Create ``path`` (and its parents) owner-only (0700) if missing; an existing folder is
    left as its owner set it. A path that exists but is not a folder is a clear error."""
    if path.exists() and not path.is_dir():
        raise StoreError(f"{path} is a file, not a folder; point --home / STRONGROOM_HOME at a folder")
    if not path.is_dir():
        path.mkdir(parents=True, mode=0o700, exist_ok=True)
        os.chmod(path, 0o700)  # mkdir's mode is filtered by the umask
    return path


def _ts(value: datetime) -> float:
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()


def _dt(value: float) -> datetime:
    return datetime.fromtimestamp(value, UTC)


class SqliteStore:
    """The embedded Store: everything under one home folder, no service, no network."""

    def __init__(self, home: Path, *, model_id: str, dim: int) -> None:
        self.home = home
        self.model_id = model_id
        self.dim = dim
        try:
            self._db = open_catalog(home / "catalog.sqlite3", _SCHEMA)
            self._check_meta()
        except sqlite3.DatabaseError as exc:
            raise StoreError(
                f"cannot open the catalog under {home}: {exc}. Check the path and its permissions "
                "(or point --home / STRONGROOM_HOME elsewhere)."
            ) from exc
        self._indexes: IndexSet | None = None
        self._generation = -1
        self._table: VersionTable | None = None
        self._pinned: tuple[IndexSet, VersionTable] | None = None
        self._version_cache: dict[int, DocumentVersion] = {}
        self._cache_generation = -1
        self._reindex: object = None  # meta 'reindex' when the indexes were built: moved by deletions

    @classmethod
    def open_existing(cls, home: Path) -> SqliteStore:
        """The store under ``home`` with the embedder (model id and dimension) it was built with."""
        catalog = home / "catalog.sqlite3"
        if not catalog.is_file():
            raise StoreError(f"no strongroom store under {home} (no catalog.sqlite3); check the path")
        try:
            with sqlite3.connect(f"file:{catalog}?mode=ro", uri=True) as db:
                meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot read the catalog under {home}: {exc}") from exc
        if "model" not in meta or "dim" not in meta:
            raise StoreError(f"the catalog under {home} says nothing of its embedder; is it a strongroom store?")
        return cls(home, model_id=str(meta["model"]), dim=int(meta["dim"]))

    # -- setup -------------------------------------------------------------------------------

    def _check_meta(self) -> None:
        with self._tx():
            rows = dict(self._db.execute("SELECT key, value FROM meta").fetchall())
            if not rows:
                self._db.executemany(
                    "INSERT INTO meta VALUES (?, ?)",
                    [("schema", SCHEMA_VERSION), ("model", self.model_id), ("dim", str(self.dim)), ("generation", "0")],
                )
                return
        if rows.get("schema") != SCHEMA_VERSION:
            raise StoreError(f"catalog schema {rows.get('schema')} is not {SCHEMA_VERSION}; migrate it first")
        if rows.get("model") != self.model_id:
            raise ConfigError(
                f"the store under {self.home} holds vectors of model {rows.get('model')!r}, not "
                f"{self.model_id!r}: use the same embedder, or a new --home"
            )

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def close(self) -> None:
        self._db.close()

    # -- writing -----------------------------------------------------------------------------

    def has_version(self, version_id: str) -> bool:
        """Whether a live (not deleted) version has this id: deleted bytes may be ingested again."""
        return self.version(version_id) is not None

    def version(self, version_id: str) -> DocumentVersion | None:
        """The live version with this id, or None."""
        row = self._db.execute("SELECT * FROM versions WHERE id = ? AND deleted = 0", (version_id,)).fetchone()
        return None if row is None else _version(row)

    def write(self, new: NewVersion) -> bool:
        """Store a version, its pages, chunks and vectors in one transaction."""
        v = new.version
        if new.vectors.shape != (len(new.chunks), self.dim) or len(new.embed_keys) != len(new.chunks):
            raise StoreError(f"{len(new.chunks)} chunks but vectors of shape {new.vectors.shape}")
        try:
            with self._tx() as db:
                if db.execute("SELECT 1 FROM versions WHERE id = ? AND deleted = 0", (v.id,)).fetchone():
                    return False
                # the same bytes were deleted before: keep that history under a tombstone id
                db.execute(f"UPDATE versions SET id = id || '{TOMBSTONE}' || seq WHERE id = ? AND deleted = 1", (v.id,))
                db.execute(
                    "INSERT OR IGNORE INTO documents VALUES (?, ?, ?)", (v.document_id, v.source, _ts(v.ingested_at))
                )
                cur = db.execute(
                    "INSERT INTO versions (id, document_id, source, title, media_type, doc_type, acl, "
                    "published_at, ingested_at, size, pages, metadata) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                    (
                        v.id,
                        v.document_id,
                        v.source,
                        v.title,
                        v.media_type,
                        v.doc_type,
                        json.dumps(sorted(v.acl)),
                        _ts(v.published_at),
                        _ts(v.ingested_at),
                        v.size,
                        v.pages,
                        json.dumps(dict(v.metadata)),
                    ),
                )
                seq = cur.lastrowid
                db.executemany("INSERT INTO pages VALUES (?, ?, ?)", [(v.id, p.number, p.text) for p in new.pages])
                db.executemany(
                    "INSERT OR IGNORE INTO embeddings VALUES (?, ?, ?)",
                    [
                        (key, self.model_id, vec.astype(np.float32).tobytes())
                        for key, vec in zip(new.embed_keys, new.vectors, strict=True)
                    ],
                )
                db.executemany(
                    "INSERT INTO chunks (id, version_seq, ordinal, page, char_start, char_end, text, context, "
                    "embed_key) VALUES (?,?,?,?,?,?,?,?,?)",
                    [
                        (c.id, seq, c.ordinal, c.page, c.char_start, c.char_end, c.text, c.context, key)
                        for c, key in zip(new.chunks, new.embed_keys, strict=True)
                    ],
                )
                db.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'")
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"could not store {v.source}: {exc}; nothing of this version was kept") from exc
        return True

    def get_vectors(self, keys: Sequence[str]) -> dict[str, npt.NDArray[np.float32]]:
        """The embedding cache: vectors already computed by this store's model."""
        out: dict[str, npt.NDArray[np.float32]] = {}
        for i in range(0, len(keys), 500):
            part = list(keys[i : i + 500])
            marks = ",".join("?" * len(part))
            for key, blob in self._db.execute(
                f"SELECT key, vector FROM embeddings WHERE model = ? AND key IN ({marks})", (self.model_id, *part)
            ):
                out[key] = np.frombuffer(blob, dtype=np.float32)
        return out

    # -- searching ---------------------------------------------------------------------------

    def _generation_now(self) -> int:
        return int(self._db.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()[0])

    @contextmanager
    def pinned(self) -> Iterator[None]:
        """Within this, searches see the indexes as one check of the catalog found them.

        ``search`` makes four index calls, and each would otherwise ask SQLite whether
        another process changed the store. Content stays safe: ``fetch`` still reads the
        deleted flag from SQL.
        """
        if self._pinned is not None:  # nested: the outer view holds
            yield
            return
        self._pinned = self._refresh()
        try:
            yield
        finally:
            self._pinned = None

    def _sync_versions(self) -> None:
        """Forget cached versions when the catalog changed (another process may have set an ACL)."""
        if self._pinned is not None:  # a search already checked, moments ago
            return
        generation = self._generation_now()
        if generation != self._cache_generation:
            self._version_cache.clear()
            self._cache_generation = generation

    def _refresh(self) -> tuple[IndexSet, VersionTable]:
        if self._pinned is not None:
            return self._pinned
        generation = self._generation_now()
        if self._indexes is not None and self._table is not None and generation == self._generation:
            return self._indexes, self._table
        reindex = self._db.execute("SELECT value FROM meta WHERE key = 'reindex'").fetchone()
        if reindex is not None and reindex[0] != self._reindex:  # text was deleted or erased: rebuild
            self._indexes, self._reindex = None, reindex[0]
        if self._indexes is None:
            self._indexes = IndexSet.load_or_create(self.home / "index", self.model_id, self.dim)
        self._table = VersionTable.load(self._db)
        self._version_cache.clear()  # an ACL may have changed (set_acl): versions are read again
        self._cache_generation = generation
        if self._indexes.catch_up(self._db, self._table):
            self._indexes.build()
        self._generation = generation
        return self._indexes, self._table

    def save_indexes(self) -> None:
        """Snapshot the indexes so the next process starts without rebuilding them."""
        indexes, _ = self._refresh()
        indexes.save(self.home / "index")

    def keyword_search(self, text: str, scope: Scope, k: int, unit: KeywordUnit = "chunk") -> list[ScoredId]:
        indexes, table = self._refresh()
        mask = table.chunk_mask(scope, indexes.chunk_version)
        if unit == "line":
            positions, best = indexes.search_lines(text, k, mask)
            return [(indexes.chunk_ids[p], s) for p, s in zip(positions, best, strict=True)]
        rows, scores = indexes.keyword.search(text, k, mask)
        return [(indexes.chunk_ids[r], float(s)) for r, s in zip(rows, scores, strict=True)]

    def vector_search(self, vector: npt.NDArray[np.float32], scope: Scope, k: int) -> list[ScoredId]:
        indexes, table = self._refresh()
        rows, scores = indexes.vectors.search(vector, k, table.chunk_mask(scope, indexes.chunk_version))
        return [(indexes.chunk_ids[r], float(s)) for r, s in zip(rows, scores, strict=True)]

    def fetch(self, chunk_ids: Sequence[str]) -> list[tuple[Chunk, DocumentVersion]]:
        self._sync_versions()
        rows = self._live_chunks(chunk_ids, "c.id, c.ordinal, c.page, c.char_start, c.char_end, c.text, c.context")
        versions = self._versions_by_seq({int(r[7]) for r in rows})
        found: dict[str, tuple[Chunk, DocumentVersion]] = {}
        for row in rows:
            version = versions[int(row[7])]
            found[row[0]] = (Chunk(row[0], version.id, row[1], row[2], row[3], row[4], row[5], row[6]), version)
        return [found[c] for c in chunk_ids if c in found]

    def versions_of(self, chunk_ids: Sequence[str]) -> dict[str, DocumentVersion]:
        # from the indexes in memory, not SQL: search calls this on every candidate of every query
        indexes, table = self._refresh()
        live = {}
        for cid in chunk_ids:
            row = indexes.row_of.get(cid)
            if row is not None:
                position = int(indexes.chunk_version[row])
                if not table.deleted[position]:
                    live[cid] = int(table.seqs[position])
        versions = self._versions_by_seq(set(live.values()))
        return {cid: versions[seq] for cid, seq in live.items()}

    def _live_chunks(self, chunk_ids: Sequence[str], columns: str) -> list[Any]:
        """Rows of ``columns`` and then the version seq, for the chunks of versions not deleted."""
        if not chunk_ids:
            return []
        marks = ",".join("?" * len(chunk_ids))
        return self._db.execute(
            f"SELECT {columns}, c.version_seq FROM chunks c JOIN versions v ON v.seq = c.version_seq "
            f"WHERE c.id IN ({marks}) AND v.deleted = 0",
            list(chunk_ids),
        ).fetchall()

    def _versions_by_seq(self, seqs: set[int]) -> dict[int, DocumentVersion]:
        """Versions by catalog seq, from a cache: a version row never changes once written
        (deletion only sets a flag, which every query that returns content checks itself)."""
        missing = [s for s in seqs if s not in self._version_cache]
        if missing:
            marks = ",".join("?" * len(missing))
            for row in self._db.execute(f"SELECT * FROM versions WHERE seq IN ({marks})", missing):
                self._version_cache[int(row[0])] = _version(row)
        return {s: self._version_cache[s] for s in seqs}

    def iter_versions(self) -> Iterator[NewVersion]:
        """Every stored version (not deleted) with its pages, chunks and vectors, oldest first:
        what a migration copies and a consistency check hashes."""
        for (seq,) in self._db.execute("SELECT seq FROM versions WHERE deleted = 0 ORDER BY seq").fetchall():
            version = self._versions_by_seq({int(seq)})[int(seq)]
            pages = tuple(
                Page(int(n), str(t))
                for n, t in self._db.execute(
                    "SELECT page, text FROM pages WHERE version_id = ? ORDER BY page", (version.id,)
                )
            )
            rows = self._db.execute(
                "SELECT c.id, c.ordinal, c.page, c.char_start, c.char_end, c.text, c.context, c.embed_key, e.vector "
                "FROM chunks c LEFT JOIN embeddings e ON e.key = c.embed_key WHERE c.version_seq = ? "
                "ORDER BY c.ordinal",
                (seq,),
            ).fetchall()
            chunks = tuple(Chunk(r[0], version.id, r[1], r[2], r[3], r[4], r[5], r[6]) for r in rows)
            vectors = np.stack(
                [np.frombuffer(r[8], dtype=np.float32) if r[8] is not None else np.full(self.dim, np.nan, np.float32)
                 for r in rows]
            ) if rows else np.zeros((0, self.dim), dtype=np.float32)  # fmt: skip
            yield NewVersion(version, pages, chunks, vectors, tuple(str(r[7]) for r in rows))

    # -- catalog -----------------------------------------------------------------------------

    def versions(self, document_id: str | None = None) -> list[DocumentVersion]:
        sql = "SELECT * FROM versions WHERE deleted = 0"
        args: tuple[str, ...] = ()
        if document_id:
            sql, args = sql + " AND document_id = ?", (document_id,)
        return [_version(r) for r in self._db.execute(sql + " ORDER BY seq", args)]

    def page_text(self, version_id: str, page: int) -> str | None:
        row = self._db.execute(
            "SELECT text FROM pages WHERE version_id = ? AND page = ?", (version_id, page)
        ).fetchone()
        return None if row is None else str(row[0])

    def counts(self) -> dict[str, int]:
        one = self._db.execute
        return {
            "documents": one("SELECT COUNT(*) FROM documents").fetchone()[0],
            "versions": one("SELECT COUNT(*) FROM versions WHERE deleted = 0").fetchone()[0],
            "chunks": one("SELECT COUNT(*) FROM chunks").fetchone()[0],
            "pages": one("SELECT COUNT(*) FROM pages").fetchone()[0],
        }

    def record_job(
        self,
        job_id: str,
        started: datetime,
        status: str,
        request: dict[str, object],
        report: dict[str, object] | None = None,
    ) -> None:
        """Create or update an ingestion job's row (status, request, final report)."""
        finished = _ts(datetime.now(UTC)) if status in ("done", "failed", "interrupted") else None
        with self._tx() as db:
            db.execute(
                "INSERT INTO jobs VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET "
                "finished_at = excluded.finished_at, status = excluded.status, report = excluded.report",
                (job_id, _ts(started), finished, status, json.dumps(request), json.dumps(report) if report else None),
            )

    def get_job(self, job_id: str) -> dict[str, object] | None:
        """An ingestion job's row (id, times, status, request, report), or None."""
        row = self._db.execute(
            "SELECT id, started_at, finished_at, status, request, report FROM jobs WHERE id = ?", (job_id,)
        ).fetchone()
        if row is None:
            return None
        return {
            "id": row[0],
            "started_at": _dt(float(row[1])).isoformat(),
            "finished_at": None if row[2] is None else _dt(float(row[2])).isoformat(),
            "status": row[3],
            "request": json.loads(row[4]),
            "report": json.loads(row[5]) if row[5] else None,
        }

    def set_acl(self, document_id: str, acl: frozenset[str]) -> list[str]:
        """Set who may read every live version of a document; returns the version ids changed.
        Searches see the new ACL at once (the version table is reloaded on the next search)."""
        if not acl:
            raise StoreError("an ACL needs at least one group")
        try:
            with self._tx() as db:
                ids = [
                    str(r[0])
                    for r in db.execute(
                        "SELECT id FROM versions WHERE document_id = ? AND deleted = 0 ORDER BY seq", (document_id,)
                    )
                ]
                db.execute(
                    "UPDATE versions SET acl = ? WHERE document_id = ? AND deleted = 0",
                    (json.dumps(sorted(acl)), document_id),
                )
                db.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'")
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"could not change the ACL of {document_id}: {exc}; nothing was changed") from exc
        self._version_cache.clear()
        return ids

    def delete_document(self, document_id: str) -> list[str]:
        """Delete a document: its chunks' text, vectors and pages go; its versions stay, marked
        deleted, so the history says that it existed. Returns the version ids deleted.

        The search indexes are dropped (memory and snapshot) and rebuilt on the next search,
        so no copy of the deleted text survives in them.
        """
        try:
            with self._tx() as db:
                ids = sqlite_delete.delete_document(db, document_id)
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"could not delete document {document_id}: {exc}; nothing was changed") from exc
        if ids:
            self._drop_indexes()
        return ids

    def delete_documents(self, document_ids: Sequence[str]) -> dict[str, list[str]]:
        """:meth:`delete_document` for many documents: up to 1,000 per transaction, each a few
        scans of the chunk table (not one per document), and the indexes dropped once at the end.
        A failure leaves the batches before it deleted (they are returned nowhere: the caller
        sees the :class:`StoreError`) and the failed batch unchanged."""
        out: dict[str, list[str]] = {}
        wanted = list(dict.fromkeys(document_ids))
        try:
            for i in range(0, len(wanted), sqlite_delete.BATCH):
                with self._tx() as db:
                    rows = sqlite_delete.delete_batch(db, wanted[i : i + sqlite_delete.BATCH])
                for _, version_id, document_id in rows:
                    out.setdefault(document_id, []).append(version_id)
        except sqlite3.DatabaseError as exc:
            message = f"could not delete {len(wanted)} documents: {exc}; the failed batch was not changed"
            raise StoreError(message) from exc
        finally:
            if out:
                self._drop_indexes()
        return out

    def _drop_indexes(self) -> None:
        """Forget the search indexes (memory and snapshot): the next search rebuilds them from
        the catalog, so no copy of deleted or rewritten text survives in them."""
        self._indexes, self._table, self._generation = None, None, -1
        self._version_cache.clear()
        shutil.rmtree(self.home / "index", ignore_errors=True)

    # -- erasure (Erasable: strongroom.store.sqlite_erase) ------------------------------------

    def find_text(self, needles: TextMatcher) -> dict[str, int]:
        """Occurrences of an identifier per table, held documents and deleted versions included."""
        return sqlite_erase.find_text(self._db, needles)

    def erase_text(self, needles: TextMatcher, reembed: Reembed, keep: Collection[str] = ()) -> EraseCount:
        """Scrub an identifier from every row (documents in ``keep`` are left alone): version
        rows, pages, chunks (new spans, new vectors and cache keys), jobs; the indexes are dropped
        and rebuilt. Call :meth:`reclaim` afterwards so the old bytes leave the file."""
        self._db.execute("PRAGMA secure_delete = ON")  # freed pages are zeroed, not left behind
        try:
            with self._tx() as db:
                count = sqlite_erase.erase_text(db, needles, reembed, keep, self.model_id)
                db.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'")
                db.execute(_REINDEX)
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"could not erase from the catalog under {self.home}: {exc}; nothing was changed") from exc
        self._drop_indexes()
        return count

    def erase_document(self, document_id: str) -> list[str]:
        """Delete a document and blank its version rows (title, source, metadata) and its
        document row; the rows stay, so the history says that something was erased."""
        ids = self.delete_document(document_id)
        try:
            with self._tx() as db:
                blanked = sqlite_erase.blank_document(db, document_id)
                db.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'")
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"could not erase document {document_id}: {exc}") from exc
        self._drop_indexes()
        return ids or blanked

    def reclaim(self) -> dict[str, object]:
        """Overwrite what deletions and rewrites left in the file (see :func:`sqlite_erase.reclaim`)."""
        try:
            truncated = sqlite_erase.reclaim(self._db)
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"could not compact the catalog under {self.home}: {exc}; run the erasure again") from exc
        wal = self.home / "catalog.sqlite3-wal"
        return {"vacuum": True, "wal_truncated": truncated, "wal_bytes": wal.stat().st_size if wal.exists() else 0}


def _version(row: Sequence[Any]) -> DocumentVersion:
    # versions columns: seq, id, document_id, source, title, media_type, doc_type, acl, published_at,
    # ingested_at, size, pages, metadata, deleted
    return DocumentVersion(
        id=str(row[1]),
        document_id=str(row[2]),
        source=str(row[3]),
        title=str(row[4]),
        media_type=str(row[5]),
        doc_type=str(row[6]),
        acl=frozenset(json.loads(str(row[7]))),
        published_at=_dt(float(row[8])),
        ingested_at=_dt(float(row[9])),
        size=int(row[10]),
        pages=int(row[11]),
        metadata=frozen_meta(json.loads(str(row[12]))),
    )
