"""Bulk loading of the PostgreSQL store: many versions a transaction, indexes built once.

:meth:`PostgresStore.write` keeps every index up to date as it goes: one transaction a
version, HNSW inserts and about 140 BM25 posting rows a chunk into B-trees in term order.
That is what a live store needs, and it runs at 200-290 chunks/s: an hour for a million
chunks. A first load (a migration from a desk pilot, a benchmark, a bank's back catalogue)
does better to write the rows first and build the big indexes once, sorted:

* versions go in batches (``batch_chunks`` chunks a transaction), all tables by ``COPY``;
  each batch keeps the BM25 statistics exact, as a run of single writes would;
* into an empty store, the HNSW index and the posting indexes (primary keys included) are
  dropped first and built at the end, with ``maintenance_work_mem`` raised for the session;
* the load holds the store's write lock per batch, and a session lock for its whole run.
  Should it die with its indexes dropped, the next process that opens the store finds the
  session lock free and the marker in ``meta``, and builds them again
  (:func:`restore_indexes`): searches are never left without them for good.

Searches meanwhile stay correct (indexes only speed them up) and see whole versions only.

>>> report = bulk_load(store, versions, progress=print)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import struct
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import psycopg
from psycopg.types.json import Jsonb

from strongroom.errors import StoreError
from strongroom.store.base import TOMBSTONE, NewVersion
from strongroom.store.postgres_rows import allocate_rows, index_terms, line_terms, utc
from strongroom.store.postgres_schema import WRITE_LOCK as _WRITE_LOCK
from strongroom.text import tokenize

__all__ = [
    "MARKER",
    "BulkReport",
    "BulkTarget",
    "bulk_load",
    "drop_indexes",
    "recover_interrupted_load",
    "restore_indexes",
]

log = logging.getLogger(__name__)

_BULK_LOCK = _WRITE_LOCK + 1  # held (session level) by a running bulk load
MARKER = "bulk_load_indexes_dropped"

# The indexes a first load builds at the end, as (name, DDL that makes it when missing).
# The names are the schema's (strongroom.store.postgres_sql.schema).
_DEFERRED = (
    ("chunks_embedding", "CREATE INDEX IF NOT EXISTS chunks_embedding ON chunks USING hnsw (embedding vector_ip_ops)"),
    ("chunk_postings_pkey", "ALTER TABLE chunk_postings ADD CONSTRAINT chunk_postings_pkey PRIMARY KEY (term, row)"),
    ("chunk_postings_row", "CREATE INDEX IF NOT EXISTS chunk_postings_row ON chunk_postings (row)"),
    ("line_postings_pkey", "ALTER TABLE line_postings ADD CONSTRAINT line_postings_pkey PRIMARY KEY (term, row)"),
    ("line_postings_row", "CREATE INDEX IF NOT EXISTS line_postings_row ON line_postings (row)"),
)


_CHUNK_TYPES = ("int8", "text", "int8", "int4", "int4", "int4", "int4", "text", "text", "text", "int4", "bytea")


class BulkTarget(Protocol):
    """Where a bulk load writes: a PostgreSQL store's URL and embedding dimension."""

    @property
    def url(self) -> str: ...
    @property
    def dim(self) -> int: ...


@dataclass
class BulkReport:
    written: int = 0  # versions stored by this load
    skipped: int = 0  # versions the store already held (or given twice)
    chunks: int = 0
    load_s: float = 0.0  # writing the rows
    index_s: float = 0.0  # building the deferred indexes (0 when they were kept)


def _try_lock(db: psycopg.Connection[Any]) -> bool:
    return db.execute("SELECT pg_try_advisory_lock(%s)", (_BULK_LOCK,)).fetchone() == (True,)


def _present(db: psycopg.Connection[Any], name: str) -> bool:
    return db.execute("SELECT to_regclass(%s)", (name,)).fetchone() not in (None, (None,))


def drop_indexes(db: psycopg.Connection[Any]) -> None:
    """Drop the deferred indexes, leaving the marker that says they are to be built again."""
    with db.transaction():
        db.execute("SELECT pg_advisory_xact_lock(%s)", (_WRITE_LOCK,))
        db.execute("INSERT INTO meta VALUES (%s, 'yes') ON CONFLICT DO NOTHING", (MARKER,))
        db.execute("DROP INDEX IF EXISTS chunks_embedding, chunk_postings_row, line_postings_row")
        for table in ("chunk_postings", "line_postings"):
            db.execute(f"ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {table}_pkey")


def restore_indexes(
    db: psycopg.Connection[Any], *, memory: str = "1GB", progress: Callable[[str], None] | None = None
) -> bool:
    """Build whichever deferred index is missing, and clear the marker. Returns whether any
    was built. ``db`` is an autocommit connection; the caller holds :data:`_BULK_LOCK`."""
    db.execute("SELECT set_config('maintenance_work_mem', %s, false)", (memory,))
    built = False
    try:
        for name, ddl in _DEFERRED:
            if not _present(db, name):
                if progress:
                    progress(f"building index {name}")
                db.execute(ddl)
                built = True
        if built:
            db.execute("ANALYZE")  # fresh statistics: the planner must see how many versions a scope admits
        db.execute("DELETE FROM meta WHERE key = %s", (MARKER,))
    finally:
        if not db.broken:
            db.execute("RESET maintenance_work_mem")
    return built


def recover_interrupted_load(db: psycopg.Connection[Any]) -> bool:
    """Called when a store is opened: if a bulk load died with its indexes dropped, build them
    now (under the load's lock, so two openers do not both build). Returns whether it did."""
    if db.execute("SELECT 1 FROM meta WHERE key = %s", (MARKER,)).fetchone() is None:
        return False
    if not _try_lock(db):
        return False  # the load is still running; it builds them itself
    log.warning(
        "a bulk load into this store was interrupted: building its missing search indexes (minutes on a large store)"
    )
    try:
        return restore_indexes(db, progress=log.info)
    finally:
        db.execute("SELECT pg_advisory_unlock(%s)", (_BULK_LOCK,))


def _batches(versions: Iterable[NewVersion], batch_chunks: int) -> Iterator[list[NewVersion]]:
    batch: list[NewVersion] = []
    size = 0
    for new in versions:
        batch.append(new)
        size += max(1, len(new.chunks))
        if size >= batch_chunks:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def _write_batch(db: psycopg.Connection[Any], batch: list[NewVersion], dim: int) -> tuple[int, int]:
    """Store the versions of ``batch`` the store lacks; returns (versions written, chunks)."""
    db.execute("SELECT pg_advisory_xact_lock(%s)", (_WRITE_LOCK,))
    ids = [n.version.id for n in batch]
    present = {str(r[0]) for r in db.execute("SELECT id FROM versions WHERE id = ANY(%s) AND NOT deleted", (ids,))}
    db.execute(f"UPDATE versions SET id = id || '{TOMBSTONE}' || seq WHERE id = ANY(%s) AND deleted", (ids,))
    fresh: dict[str, NewVersion] = {}
    for new in batch:
        if new.vectors.shape != (len(new.chunks), dim) or len(new.embed_keys) != len(new.chunks):
            raise StoreError(
                f"{new.version.source}: {len(new.chunks)} chunks but vectors of shape {new.vectors.shape}; "
                "nothing of its batch was kept"
            )
        if new.version.id not in present:
            fresh.setdefault(new.version.id, new)
    if not fresh:
        return 0, 0
    news = list(fresh.values())
    db.execute(
        "INSERT INTO documents SELECT * FROM unnest(%s::text[], %s::text[], %s::timestamptz[]) ON CONFLICT DO NOTHING",
        (
            [n.version.document_id for n in news],
            [n.version.source for n in news],
            [utc(n.version.ingested_at) for n in news],
        ),
    )
    db.execute(
        "CREATE TEMP TABLE IF NOT EXISTS bulk_versions (ord integer, id text, document_id text, source text, "
        "title text, media_type text, doc_type text, acl text[], published_at timestamptz, "
        "ingested_at timestamptz, size bigint, pages integer, metadata jsonb) ON COMMIT DELETE ROWS"
    )
    with db.cursor() as cur, cur.copy("COPY bulk_versions FROM STDIN") as copy:
        for i, n in enumerate(news):
            v = n.version
            copy.write_row(
                (i, v.id, v.document_id, v.source, v.title, v.media_type, v.doc_type, sorted(v.acl),
                 utc(v.published_at), utc(v.ingested_at), v.size, v.pages, Jsonb(dict(v.metadata)))
            )  # fmt: skip
    seqs = dict(
        db.execute(
            "INSERT INTO versions (id, document_id, source, title, media_type, doc_type, acl, published_at, "
            "ingested_at, size, pages, metadata) SELECT id, document_id, source, title, media_type, doc_type, acl, "
            "published_at, ingested_at, size, pages, metadata FROM bulk_versions ORDER BY ord RETURNING id, seq"
        ).fetchall()
    )
    n_chunks = sum(len(n.chunks) for n in news)
    chunk_rows = iter(allocate_rows(db, "chunks", n_chunks))
    chunk_docs: list[list[str]] = []
    chunk_ids: list[int] = []
    owners: list[tuple[int, int, list[str]]] = []  # (chunk row, version seq, line terms)
    with db.cursor() as cur:
        with cur.copy("COPY pages (version_id, page, text) FROM STDIN") as copy:
            for n in news:
                for p in n.pages:
                    copy.write_row((n.version.id, p.number, p.text))
        # Binary COPY: a vector goes as pgvector's wire format (vector_recv: int16 dimensions,
        # int16 unused, big-endian float4s), the float32 values exactly and with no text to parse.
        # The column is declared bytea to psycopg so that it passes those bytes through as they are.
        with cur.copy(
            "COPY chunks (row, id, version_seq, ordinal, page, char_start, char_end, text, context, embed_key, "
            "n_terms, embedding) FROM STDIN (FORMAT BINARY)"
        ) as copy:
            copy.set_types(_CHUNK_TYPES)
            head = struct.pack(">hh", dim, 0)
            for n in news:
                seq = seqs[n.version.id]
                wire = n.vectors.astype(">f4")
                for c, key, vec in zip(n.chunks, n.embed_keys, wire, strict=True):
                    row = next(chunk_rows)
                    tokens = tokenize(f"{c.context}\n{c.text}")
                    chunk_ids.append(row)
                    chunk_docs.append(tokens)
                    owners.extend((row, seq, terms) for terms in line_terms(c))
                    copy.write_row((row, c.id, seq, c.ordinal, c.page, c.char_start, c.char_end, c.text, c.context,
                                    key, len(tokens), head + vec.tobytes()))  # fmt: skip
        line_rows = allocate_rows(db, "lines", len(owners))
        with cur.copy("COPY lines (row, chunk_row, version_seq, n_terms) FROM STDIN") as copy:
            for r, (owner, seq, terms) in zip(line_rows, owners, strict=True):
                copy.write_row((r, owner, seq, len(terms)))
        index_terms(db, "chunk", chunk_ids, chunk_docs)
        index_terms(db, "line", line_rows, [terms for _, _, terms in owners])
    return len(news), n_chunks


def bulk_load(
    store: BulkTarget,
    versions: Iterable[NewVersion],
    *,
    batch_chunks: int = 20_000,
    defer_indexes: bool | None = None,
    memory: str = "2GB",
    progress: Callable[[str], None] | None = None,
) -> BulkReport:
    """Write ``versions`` into ``store`` in batches; versions it already holds are skipped.

    ``defer_indexes``: drop the HNSW and posting indexes first and build them once at the
    end (default: when the store holds no chunk yet, where it pays most). ``memory``: the
    ``maintenance_work_mem`` for building them (the HNSW graph of a million 384-d vectors
    wants about 2 GB to be built in memory). ``progress`` gets a line per batch and per index.
    """
    report = BulkReport()
    with psycopg.connect(store.url, autocommit=True) as db:
        if not _try_lock(db):
            raise StoreError("another bulk load is running on this store; wait for it to finish, then retry")
        try:
            # Durable at the end: the last commit (synchronous) flushes the WAL of all before it.
            db.execute("SET synchronous_commit = off")
            if defer_indexes is None:
                defer_indexes = db.execute("SELECT NOT EXISTS (SELECT 1 FROM chunks)").fetchone() == (True,)
            if defer_indexes:
                drop_indexes(db)
            t0 = time.perf_counter()
            for batch in _batches(versions, batch_chunks):
                with db.transaction():
                    written, chunks = _write_batch(db, batch, store.dim)
                report.written += written
                report.skipped += len(batch) - written
                report.chunks += chunks
                if progress:
                    rate = report.chunks / max(1e-9, time.perf_counter() - t0)
                    progress(f"{report.written:,} versions, {report.chunks:,} chunks written ({rate:,.0f} chunks/s)")
            report.load_s = time.perf_counter() - t0
            db.execute("SET synchronous_commit = on")
            if defer_indexes:
                t1 = time.perf_counter()
                restore_indexes(db, memory=memory, progress=progress)
                report.index_s = time.perf_counter() - t1
            else:
                db.execute("ANALYZE")  # fresh statistics: the planner must see how many versions a scope admits
        except Exception:
            # What was committed stays; give it its indexes back now rather than at the next open.
            if defer_indexes and not db.broken:
                restore_indexes(db, memory=memory, progress=progress)
            raise
        finally:
            if not db.closed and not db.broken:
                db.execute("SELECT pg_advisory_unlock(%s)", (_BULK_LOCK,))
    return report
