"""The server store: PostgreSQL holds the catalog, BM25 postings and pgvector embeddings.

Same semantics as the embedded :class:`~strongroom.store.sqlite.SqliteStore`, with every
index inside the database, so several processes share one store and a version is written
(catalog, pages, chunks, vectors, postings) in one transaction.

* **Scope** is a pre-filter: an ``admitted`` CTE (knowable at T, the current version per
  document, ACL overlap with ``&&``, doc types, metadata ``@>``, published from) restricts every search
  inside its SQL, so a restrictive ACL still fills top-k.
* **BM25** is real Okapi BM25 (k1=1.2, b=0.75), not ``ts_rank``: postings of
  :func:`~strongroom.store.keyword.tokenize` terms with per-row lengths, document
  frequencies and totals kept up to date in the write, and the SQLite index's idf
  ``ln(1 + (N - df + 0.5) / (df + 0.5))``, so both backends score alike.
* **Dense** search is inner product (vectors are L2-normalised) over an HNSW index, with
  pgvector's iterative index scans so a filtered search keeps scanning until top-k is full.
* **Schema** changes are Alembic revisions (:mod:`strongroom.store.migrations`): a new
  database is created at the head revision; an existing one behind it is refused until
  ``strongroom upgrade-store`` (or ``upgrade=True``) migrates it.

>>> store = PostgresStore("postgresql://app@db/strongroom", model_id="hash-64", dim=64)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg
from psycopg.types.json import Jsonb

from strongroom.errors import ConfigError, StoreError
from strongroom.store import postgres_erase
from strongroom.store import postgres_sql as sql
from strongroom.store.base import TOMBSTONE, EraseCount, KeywordUnit, NewVersion, Reembed, ScoredId, TextMatcher
from strongroom.store.postgres_rows import allocate_rows, copy_rows, index_terms, line_terms, utc, vector_text
from strongroom.store.postgres_schema import WRITE_LOCK as _WRITE_LOCK
from strongroom.store.postgres_schema import connect, describe_url, migrate_schema, redact
from strongroom.text import tokenize
from strongroom.types import Chunk, DocumentVersion, Page, Scope, frozen_meta

__all__ = ["PostgresStore"]

K1, B = 1.2, 0.75
_EARLIEST = datetime(1, 1, 2, tzinfo=UTC).timestamp()  # published_from when none is given
_TERM_FIRST_COST = 7  # a posting read term first, in admitted-first lookups (measured; see keyword_search)


class PostgresStore:
    """The Store on PostgreSQL + pgvector; the schema is created on first use.

    One connection, used by one operation at a time (a lock serialises threads). Writers
    and deleters also take a database advisory lock, so BM25 statistics stay exact when
    several processes ingest into one store.
    """

    def __init__(self, url: str, *, model_id: str, dim: int, upgrade: bool = False, ef_search: int = 100) -> None:
        self.model_id = model_id
        self.ef_search = ef_search  # HNSW candidate list of a dense search (at least k; pgvector's default is 40)
        self.dim = dim
        self._target, self._password = describe_url(url)
        self._lock = threading.RLock()
        self._version_cache: dict[int, DocumentVersion] = {}
        self._acl_epoch = ""
        self._url = url
        self._db = self._connect()
        try:
            migrate_schema(self._url, self.dim, upgrade=upgrade, target=self._target)
            self._setup()
        except psycopg.Error as exc:
            self._db.close()
            raise StoreError(
                f"cannot prepare the store schema in {self._target}: {self._clean(exc)}. The user needs CREATE "
                "rights on the database, and the pgvector extension must be installed on the server "
                "(or created in the database by an administrator: CREATE EXTENSION vector)."
            ) from exc
        except BaseException:
            self._db.close()
            raise

    @classmethod
    def open_existing(cls, url: str, *, ef_search: int = 100) -> PostgresStore:
        """The store in the database at ``url`` with the embedder (model id, dimension) it holds."""
        target, password = describe_url(url)
        try:
            with psycopg.connect(url, autocommit=True) as db:
                if db.execute("SELECT to_regclass('meta')").fetchone() in (None, (None,)):
                    raise StoreError(f"no strongroom store in {target} (no meta table); check the URL")
                meta: dict[str, str] = dict(db.execute("SELECT key, value FROM meta").fetchall())
        except psycopg.Error as exc:
            raise StoreError(f"cannot read the store in {target}: {redact(exc, password)}") from exc
        if "model" not in meta or "dim" not in meta:
            raise StoreError(f"the store in {target} says nothing of its embedder; is it a strongroom store?")
        return cls(url, model_id=str(meta["model"]), dim=int(meta["dim"]), ef_search=ef_search)

    @property
    def url(self) -> str:
        """The database this store connects to (as configured: it may hold a password)."""
        return self._url

    def _connect(self) -> psycopg.Connection[Any]:
        return connect(self._url)

    # -- setup -------------------------------------------------------------------------------

    def _clean(self, exc: BaseException) -> str:
        return redact(exc, self._password)

    @property
    def schema_revision(self) -> str | None:
        """The Alembic revision the database is at."""
        row = self._db.execute("SELECT version_num FROM alembic_version").fetchone()
        return str(row[0]) if row else None

    def _setup(self) -> None:
        with self._db.transaction():
            self._db.execute("SELECT pg_advisory_xact_lock(%s)", (_WRITE_LOCK,))
            rows: dict[str, str] = dict(self._db.execute("SELECT key, value FROM meta").fetchall())
            if not rows:
                self._db.cursor().executemany(
                    "INSERT INTO meta VALUES (%s, %s)", [("model", self.model_id), ("dim", str(self.dim))]
                )
                return
        if rows.get("model") != self.model_id or rows.get("dim") != str(self.dim):
            raise ConfigError(
                f"the store in {self._target} holds vectors of model {rows.get('model')!r} ({rows.get('dim')} "
                f"dimensions), not {self.model_id!r} ({self.dim}): use the same embedder, or another database"
            )
        from strongroom.store import postgres_bulk  # it imports this module

        if postgres_bulk.MARKER in rows:  # a bulk load died with its indexes dropped
            postgres_bulk.recover_interrupted_load(self._db)

    @contextmanager
    def _tx(self, action: str) -> Iterator[psycopg.Connection[Any]]:
        """One transaction under the thread lock; database errors become StoreError."""
        with self._lock:
            if self._db.broken:  # the server restarted or the network dropped: start again
                self._db.close()
                self._db = self._connect()
            try:
                with self._db.transaction():
                    yield self._db
            except psycopg.Error as exc:
                raise StoreError(
                    f"PostgreSQL at {self._target} failed to {action}: {self._clean(exc)}. "
                    "Check the server's health and logs, then retry."
                ) from exc

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def save_indexes(self) -> None:
        """Nothing to do: every index lives in the database (kept for the embedded store's callers)."""

    # -- writing -----------------------------------------------------------------------------

    def has_version(self, version_id: str) -> bool:
        """Whether a live (not deleted) version has this id: deleted bytes may be ingested again."""
        return self.version(version_id) is not None

    def version(self, version_id: str) -> DocumentVersion | None:
        """The live version with this id, or None."""
        with self._tx("look up a version") as db:
            row = db.execute(
                f"SELECT {sql.VERSION_COLUMNS} FROM versions WHERE id = %s AND NOT deleted", (version_id,)
            ).fetchone()
        return None if row is None else _version(row)

    def write(self, new: NewVersion) -> bool:
        """Store a version, its pages, chunks, vectors and postings in one transaction."""
        v = new.version
        if new.vectors.shape != (len(new.chunks), self.dim) or len(new.embed_keys) != len(new.chunks):
            raise StoreError(f"{len(new.chunks)} chunks but vectors of shape {new.vectors.shape}")
        chunk_tokens = [tokenize(f"{c.context}\n{c.text}") for c in new.chunks]
        line_tokens = [line_terms(c) for c in new.chunks]
        with self._tx(f"store {v.source}; nothing of this version was kept") as db:
            db.execute("SELECT pg_advisory_xact_lock(%s)", (_WRITE_LOCK,))
            if db.execute("SELECT 1 FROM versions WHERE id = %s AND NOT deleted", (v.id,)).fetchone():
                return False
            # the same bytes were deleted before: keep that history under a tombstone id
            db.execute(f"UPDATE versions SET id = id || '{TOMBSTONE}' || seq WHERE id = %s AND deleted", (v.id,))
            db.execute(
                "INSERT INTO documents VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
                (v.document_id, v.source, utc(v.ingested_at)),
            )
            row = db.execute(
                "INSERT INTO versions (id, document_id, source, title, media_type, doc_type, acl, published_at, "
                "ingested_at, size, pages, metadata) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
                "RETURNING seq",
                (
                    v.id,
                    v.document_id,
                    v.source,
                    v.title,
                    v.media_type,
                    v.doc_type,
                    sorted(v.acl),
                    utc(v.published_at),
                    utc(v.ingested_at),
                    v.size,
                    v.pages,
                    Jsonb(dict(v.metadata)),
                ),
            ).fetchone()
            assert row is not None
            seq = int(row[0])
            copy_rows(db, "pages (version_id, page, text)", [(v.id, p.number, p.text) for p in new.pages])
            chunk_rows = allocate_rows(db, "chunks", len(new.chunks))
            copy_rows(
                db,
                "chunks (row, id, version_seq, ordinal, page, char_start, char_end, text, context, embed_key, "
                "n_terms, embedding)",
                [
                    (
                        r,
                        c.id,
                        seq,
                        c.ordinal,
                        c.page,
                        c.char_start,
                        c.char_end,
                        c.text,
                        c.context,
                        key,
                        len(tokens),
                        vector_text(vec),
                    )
                    for r, c, key, tokens, vec in zip(
                        chunk_rows, new.chunks, new.embed_keys, chunk_tokens, new.vectors, strict=True
                    )
                ],
            )
            owners = [(r, tokens) for r, lines in zip(chunk_rows, line_tokens, strict=True) for tokens in lines]
            line_rows = allocate_rows(db, "lines", len(owners))
            copy_rows(
                db,
                "lines (row, chunk_row, version_seq, n_terms)",
                [(r, owner, seq, len(tokens)) for r, (owner, tokens) in zip(line_rows, owners, strict=True)],
            )
            index_terms(db, "chunk", chunk_rows, chunk_tokens)
            index_terms(db, "line", line_rows, [tokens for _, tokens in owners])
        return True

    def write_many(self, versions: Iterable[NewVersion], progress: Callable[[str], None] | None = None) -> int:
        """Store many versions in batches by COPY (those already stored are skipped); into an
        empty store the big indexes are built once at the end. Returns how many were written.
        See :mod:`strongroom.store.postgres_bulk`."""
        from strongroom.store.postgres_bulk import bulk_load

        return bulk_load(self, versions, progress=progress).written

    def get_vectors(self, keys: Sequence[str]) -> dict[str, npt.NDArray[np.float32]]:
        """The embedding cache: vectors already computed by this store's model."""
        if not keys:
            return {}
        with self._tx("read cached vectors") as db:
            rows = db.execute(
                "SELECT DISTINCT ON (embed_key) embed_key, embedding::real[] FROM chunks WHERE embed_key = ANY(%s)",
                (list(keys),),
            ).fetchall()
        return {str(key): np.asarray(values, dtype=np.float32) for key, values in rows}

    # -- searching ---------------------------------------------------------------------------

    @staticmethod
    def _scope_params(scope: Scope) -> dict[str, object]:
        published, ingested = scope.instants()  # both clamped to now: no look-ahead
        return {
            "tp": datetime.fromtimestamp(published, UTC),
            "ti": datetime.fromtimestamp(ingested, UTC),
            "groups": sorted(scope.groups),
            "types": sorted(scope.doc_types),
            "filters": Jsonb(dict(scope.filters)),
            "tf": datetime.fromtimestamp(max(scope.published_floor(), _EARLIEST), UTC),
        }

    def keyword_search(self, text: str, scope: Scope, k: int, unit: KeywordUnit = "chunk") -> list[ScoredId]:
        counts = Counter(tokenize(text))
        if k <= 0 or not counts:
            return []
        params = {
            **self._scope_params(scope),
            "unit": unit,
            "terms": list(counts),
            "counts": list(counts.values()),
            "k1": K1,
            "b": B,
            "k": k,
        }
        with self._tx("search the keyword index") as db:
            db.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")  # one snapshot for all three
            seqs = [int(r[0]) for r in db.execute(sql.ADMITTED_SEQS, params)]
            if not seqs:
                return []
            costs = db.execute(sql.KEYWORD_COSTS, params).fetchone()
            assert costs is not None
            units, versions, postings = (float(x or 0) for x in costs)
            # A posting read term first costs 8-20 µs (it looks its chunk up to test the
            # version); a (row, term) admitted first 0.6 µs with 10k admitted rows and 2.7 µs
            # with 100k (measured on the synthetic 100k and 1M stores). See postgres_sql.
            lookups = len(seqs) * max(units, 1.0) / max(versions, 1.0) * len(counts)
            admitted_first = lookups < _TERM_FIRST_COST * postings
            query = sql.keyword_search(unit, admitted_first)
            # Never prepared: a generic plan cannot see how few rows the admitted array holds
            # (measured at 1M chunks: 140 ms against 30 ms planned for the array at hand).
            rows = db.execute(query, {**params, "seqs": seqs}, prepare=False).fetchall()
        return [(str(r[0]), float(r[1])) for r in rows]

    def vector_search(self, vector: npt.NDArray[np.float32], scope: Scope, k: int) -> list[ScoredId]:
        q = np.ascontiguousarray(vector, dtype=np.float32).reshape(-1)
        if q.shape != (self.dim,):
            raise ValueError(f"query has {q.size} values, expected {self.dim}")
        if k <= 0:
            return []
        with self._tx("search the vector index") as db:
            # One snapshot for both statements, so a version written in between cannot leak in.
            db.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            seqs = [int(r[0]) for r in db.execute(sql.ADMITTED_SEQS, self._scope_params(scope))]
            if not seqs:
                return []
            # Keep scanning the HNSW graph until k admitted rows are found (pgvector >= 0.8).
            db.execute("SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true)")
            db.execute("SELECT set_config('hnsw.ef_search', %s, true)", (str(min(max(self.ef_search, k), 1000)),))
            rows = db.execute(sql.VECTOR_SEARCH, {"q": vector_text(q), "seqs": seqs, "k": k}).fetchall()
        return [(str(r[0]), float(r[1])) for r in rows]

    def fetch(self, chunk_ids: Sequence[str]) -> list[tuple[Chunk, DocumentVersion]]:
        with self._tx("fetch chunks") as db:
            rows = _live_chunks(db, chunk_ids, "c.id, c.ordinal, c.page, c.char_start, c.char_end, c.text, c.context")
            versions = self._versions_by_seq(db, {int(r[-1]) for r in rows})
        found: dict[str, tuple[Chunk, DocumentVersion]] = {}
        for row in rows:
            version = versions[int(row[-1])]
            found[row[0]] = (Chunk(row[0], version.id, row[1], row[2], row[3], row[4], row[5], row[6]), version)
        return [found[c] for c in chunk_ids if c in found]

    def versions_of(self, chunk_ids: Sequence[str]) -> dict[str, DocumentVersion]:
        with self._tx("look up versions") as db:
            rows = _live_chunks(db, chunk_ids, "c.id")
            versions = self._versions_by_seq(db, {int(r[-1]) for r in rows})
        return {str(r[0]): versions[int(r[-1])] for r in rows}

    def _versions_by_seq(self, db: psycopg.Connection[Any], seqs: set[int]) -> dict[int, DocumentVersion]:
        """Versions by seq, from a cache: a version's content never changes once written
        (deletion only sets a flag, which every query that returns content checks itself);
        its ACL may (``set_acl``, by any process), so the cache is dropped when the ACL
        epoch in ``meta`` moves."""
        row = db.execute("SELECT value FROM meta WHERE key = 'acl_epoch'").fetchone()
        epoch = str(row[0]) if row else "0"
        if epoch != self._acl_epoch:
            self._version_cache.clear()
            self._acl_epoch = epoch
        missing = [s for s in seqs if s not in self._version_cache]
        if missing:
            for row in db.execute(f"SELECT {sql.VERSION_COLUMNS} FROM versions WHERE seq = ANY(%s)", (missing,)):
                self._version_cache[int(row[0])] = _version(row)
        return {s: self._version_cache[s] for s in seqs}

    # -- catalog -----------------------------------------------------------------------------

    def iter_versions(self) -> Iterator[NewVersion]:
        """Every stored version (not deleted) with its pages, chunks and vectors, oldest first:
        what a migration copies and a consistency check hashes."""
        with self._tx("list versions") as db:
            seqs = [int(r[0]) for r in db.execute("SELECT seq FROM versions WHERE NOT deleted ORDER BY seq")]
        for seq in seqs:
            with self._tx("read a version") as db:
                version = self._versions_by_seq(db, {seq})[seq]
                pages = tuple(
                    Page(int(n), str(t))
                    for n, t in db.execute(
                        "SELECT page, text FROM pages WHERE version_id = %s ORDER BY page", (version.id,)
                    )
                )
                rows = db.execute(
                    "SELECT id, ordinal, page, char_start, char_end, text, context, embed_key, embedding::real[] "
                    "FROM chunks WHERE version_seq = %s ORDER BY ordinal",
                    (seq,),
                ).fetchall()
            chunks = tuple(Chunk(r[0], version.id, r[1], r[2], r[3], r[4], r[5], r[6]) for r in rows)
            vectors = (
                np.asarray([r[8] for r in rows], dtype=np.float32) if rows else np.zeros((0, self.dim), np.float32)
            )
            yield NewVersion(version, pages, chunks, vectors, tuple(str(r[7]) for r in rows))

    def versions(self, document_id: str | None = None) -> list[DocumentVersion]:
        query = f"SELECT {sql.VERSION_COLUMNS} FROM versions WHERE NOT deleted"
        args: tuple[str, ...] = ()
        if document_id:
            query, args = query + " AND document_id = %s", (document_id,)
        with self._tx("list versions") as db:
            return [_version(r) for r in db.execute(query + " ORDER BY seq", args)]

    def page_text(self, version_id: str, page: int) -> str | None:
        with self._tx("read a page") as db:
            row = db.execute(
                "SELECT text FROM pages WHERE version_id = %s AND page = %s", (version_id, page)
            ).fetchone()
        return None if row is None else str(row[0])

    def counts(self) -> dict[str, int]:
        with self._tx("count the catalog") as db:
            row = db.execute(
                "SELECT (SELECT count(*) FROM documents), (SELECT count(*) FROM versions WHERE NOT deleted), "
                "(SELECT count(*) FROM chunks), (SELECT count(*) FROM pages)"
            ).fetchone()
        assert row is not None
        return dict(zip(("documents", "versions", "chunks", "pages"), map(int, row), strict=True))

    def record_job(
        self,
        job_id: str,
        started: datetime,
        status: str,
        request: dict[str, object],
        report: dict[str, object] | None = None,
    ) -> None:
        """Create or update an ingestion job's row (status, request, final report)."""
        finished = datetime.now(UTC) if status in ("done", "failed", "interrupted") else None
        with self._tx("record a job") as db:
            db.execute(
                "INSERT INTO jobs VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO UPDATE SET "
                "finished_at = excluded.finished_at, status = excluded.status, report = excluded.report",
                (job_id, utc(started), finished, status, Jsonb(request), Jsonb(report) if report else None),
            )

    def get_job(self, job_id: str) -> dict[str, object] | None:
        """An ingestion job's row (id, times, status, request, report), or None."""
        with self._tx("read a job") as db:
            row = db.execute(
                "SELECT id, started_at, finished_at, status, request, report FROM jobs WHERE id = %s", (job_id,)
            ).fetchone()
        if row is None:
            return None
        return {
            "id": row[0],
            "started_at": utc(row[1]).isoformat(),
            "finished_at": None if row[2] is None else utc(row[2]).isoformat(),
            "status": row[3],
            "request": row[4],
            "report": row[5] or None,
        }

    def set_acl(self, document_id: str, acl: frozenset[str]) -> list[str]:
        """Set who may read every live version of a document; returns the version ids changed.
        Every process's cached versions are dropped (the ACL epoch in ``meta`` moves)."""
        if not acl:
            raise StoreError("an ACL needs at least one group")
        with self._tx(f"change the ACL of {document_id}; nothing was changed") as db:
            db.execute("SELECT pg_advisory_xact_lock(%s)", (_WRITE_LOCK,))
            rows = db.execute(
                "UPDATE versions SET acl = %s WHERE document_id = %s AND NOT deleted RETURNING seq, id",
                (sorted(acl), document_id),
            ).fetchall()
            db.execute(
                "INSERT INTO meta VALUES ('acl_epoch', '1') ON CONFLICT (key) "
                "DO UPDATE SET value = (meta.value::bigint + 1)::text"
            )
            self._version_cache.clear()
        return [str(r[1]) for r in sorted(rows)]

    def delete_document(self, document_id: str) -> list[str]:
        """Delete a document: its chunks' text, vectors, postings and pages go; its versions
        stay, marked deleted, so the history says that it existed. Returns the version ids deleted.
        BM25 statistics are brought back to what they would be had it never been written."""
        with self._tx(f"delete document {document_id}; nothing was changed") as db:
            db.execute("SELECT pg_advisory_xact_lock(%s)", (_WRITE_LOCK,))
            rows = db.execute(
                "SELECT seq, id FROM versions WHERE document_id = %s AND NOT deleted ORDER BY seq", (document_id,)
            ).fetchall()
            if not rows:
                return []
            seqs, ids = [int(r[0]) for r in rows], [str(r[1]) for r in rows]
            for unit, owners in (("chunk", "chunks"), ("line", "lines")):
                gone = f"(SELECT row FROM {owners} WHERE version_seq = ANY(%(seqs)s))"
                db.execute(
                    f"UPDATE bm25_stats SET n_docs = n_docs - x.n, total_len = total_len - x.len FROM "
                    f"(SELECT count(*) AS n, coalesce(sum(n_terms), 0) AS len FROM {owners} "
                    f"WHERE version_seq = ANY(%(seqs)s)) AS x WHERE unit = %(unit)s",
                    {"seqs": seqs, "unit": unit},
                )
                terms = f"(SELECT term FROM {unit}_postings WHERE row IN {gone})"
                db.execute(
                    f"UPDATE bm25_df d SET df = d.df - x.n FROM (SELECT term, count(*) AS n FROM {unit}_postings "
                    f"WHERE row IN {gone} GROUP BY term) AS x WHERE d.unit = %(unit)s AND d.term = x.term",
                    {"seqs": seqs, "unit": unit},
                )
                db.execute(
                    f"DELETE FROM bm25_df WHERE unit = %(unit)s AND df <= 0 AND term IN {terms}",
                    {"seqs": seqs, "unit": unit},
                )
                db.execute(f"DELETE FROM {unit}_postings WHERE row IN {gone}", {"seqs": seqs})
            db.execute("DELETE FROM lines WHERE version_seq = ANY(%s)", (seqs,))
            db.execute("DELETE FROM chunks WHERE version_seq = ANY(%s)", (seqs,))
            db.execute("DELETE FROM pages WHERE version_id = ANY(%s)", (ids,))
            db.execute("UPDATE versions SET deleted = true WHERE seq = ANY(%s)", (seqs,))
        return ids

    def delete_documents(self, document_ids: Sequence[str]) -> dict[str, list[str]]:
        """:meth:`delete_document` for each document, each its own transaction (every delete
        here is by index, so a batch saves little)."""
        out: dict[str, list[str]] = {}
        for document_id in dict.fromkeys(document_ids):
            if deleted := self.delete_document(document_id):
                out[document_id] = deleted
        return out

    # -- erasure (Erasable: strongroom.store.postgres_erase) ----------------------------------

    def find_text(self, needles: TextMatcher) -> dict[str, int]:
        """Occurrences of an identifier per table, held documents and deleted versions included."""
        with self._tx("search for an identifier") as db:
            return postgres_erase.find_text(db, needles)

    def erase_text(self, needles: TextMatcher, reembed: Reembed, keep: Collection[str] = ()) -> EraseCount:
        """Scrub an identifier from every row except those of documents in ``keep``; see
        :mod:`strongroom.store.postgres_erase`. Call :meth:`reclaim` afterwards."""
        with self._tx("erase an identifier; nothing was changed") as db:
            db.execute("SELECT pg_advisory_xact_lock(%s)", (_WRITE_LOCK,))
            count = postgres_erase.erase_text(db, needles, reembed, keep)
            self._version_cache.clear()
        return count

    def erase_document(self, document_id: str) -> list[str]:
        """Delete a document and blank what its version and document rows say of it."""
        ids = self.delete_document(document_id)
        with self._tx(f"erase document {document_id}") as db:
            db.execute("SELECT pg_advisory_xact_lock(%s)", (_WRITE_LOCK,))
            blanked = postgres_erase.erase_document_rows(db, document_id)
            self._version_cache.clear()
        return ids or blanked

    def reclaim(self) -> dict[str, object]:
        """``VACUUM FULL`` the tables an erasure rewrites: their old row versions go with the old files."""
        try:
            with psycopg.connect(self._url, autocommit=True) as db:
                for table in postgres_erase.TABLES:
                    db.execute(f"VACUUM FULL {table}")
        except psycopg.Error as exc:
            raise StoreError(f"PostgreSQL at {self._target} failed to vacuum: {self._clean(exc)}") from exc
        return {"vacuum_full": list(postgres_erase.TABLES)}


def _live_chunks(db: psycopg.Connection[Any], chunk_ids: Sequence[str], columns: str) -> list[Any]:
    """Rows of ``columns`` and then the version seq, for the chunks of versions not deleted."""
    if not chunk_ids:
        return []
    return db.execute(
        f"SELECT {columns}, c.version_seq FROM chunks c JOIN versions v ON v.seq = c.version_seq "
        "WHERE c.id = ANY(%s) AND NOT v.deleted",
        (list(chunk_ids),),
    ).fetchall()


def _version(row: Sequence[Any]) -> DocumentVersion:
    # columns: sql.VERSION_COLUMNS
    return DocumentVersion(
        id=str(row[1]),
        document_id=str(row[2]),
        source=str(row[3]),
        title=str(row[4]),
        media_type=str(row[5]),
        doc_type=str(row[6]),
        acl=frozenset(row[7]),
        published_at=utc(row[8]),
        ingested_at=utc(row[9]),
        size=int(row[10]),
        pages=int(row[11]),
        metadata=frozen_meta(row[12] if isinstance(row[12], dict) else json.loads(row[12])),
    )
