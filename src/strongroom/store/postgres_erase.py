"""Erasure in the PostgreSQL store: every row that holds an identifier rewritten, in one
transaction under the write lock (:class:`~strongroom.store.base.Erasable`).

Version and document rows, pages, chunks and the job log are scrubbed (the rules are
:mod:`strongroom.store.erasure`'s, shared with SQLite). A chunk whose text changed is taken out
of both BM25 units first (its postings, its lines and theirs, with document frequencies and
totals brought back), then rewritten with its new text, vector and cache key, then indexed
again, so the statistics are what they would be had the scrubbed text been written in the
first place. :func:`reclaim` rewrites the touched tables with ``VACUUM FULL``: their dead row
versions, which still hold the old text, go with the old table files. That is the most SQL
can do: the server's write-ahead log and base backups age out with its own retention.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from strongroom.store.base import TOMBSTONE, EraseCount, KeywordUnit, Reembed, TextMatcher
from strongroom.store.erasure import ChunkRow, Erasure, VersionFields, blank_version, chunk_of
from strongroom.store.postgres_rows import allocate_rows, copy_rows, index_terms, line_terms, vector_text
from strongroom.text import tokenize

__all__ = ["TABLES", "erase_document_rows", "erase_text", "find_text"]

#: the tables an erasure rewrites (and ``reclaim`` vacuums)
TABLES = (
    "versions",
    "documents",
    "pages",
    "chunks",
    "lines",
    "chunk_postings",
    "line_postings",
    "bm25_df",
    "bm25_stats",
    "jobs",
)
_CHUNKS = (
    "SELECT c.row, c.id, v.id, c.ordinal, c.page, c.char_start, c.char_end, c.text, c.context, c.embed_key, "
    "v.document_id, c.version_seq FROM chunks c JOIN versions v ON v.seq = c.version_seq"
)


def find_text(db: psycopg.Connection[Any], needles: TextMatcher) -> dict[str, int]:
    """Occurrences per table, held documents and deleted versions included."""
    versions = sum(
        VersionFields(str(t), str(s), dict(m or {})).count(needles)
        for t, s, m in db.execute("SELECT title, source, metadata FROM versions")
    )
    return {
        "versions": versions,
        "documents": sum(needles.count(str(r[0])) for r in db.execute("SELECT source FROM documents")),
        "pages": sum(needles.count(str(r[0])) for r in db.execute("SELECT text FROM pages")),
        "chunks": sum(
            needles.count(str(r[0])) + needles.count(str(r[1])) for r in db.execute("SELECT text, context FROM chunks")
        ),
        "jobs": sum(
            needles.count_value(r[0]) + needles.count_value(r[1])
            for r in db.execute("SELECT request, report FROM jobs")
        ),
    }


def _unindex(db: psycopg.Connection[Any], unit: KeywordUnit, owners: str, rows: list[int]) -> None:
    """Take BM25 documents ``rows`` of ``unit`` out: statistics, frequencies, postings."""
    if not rows:
        return
    params = {"rows": rows, "unit": unit}
    db.execute(
        f"UPDATE bm25_stats SET n_docs = n_docs - x.n, total_len = total_len - x.len FROM "
        f"(SELECT count(*) AS n, coalesce(sum(n_terms), 0) AS len FROM {owners} WHERE row = ANY(%(rows)s)) AS x "
        "WHERE unit = %(unit)s",
        params,
    )
    db.execute(
        f"UPDATE bm25_df d SET df = d.df - x.n FROM (SELECT term, count(*) AS n FROM {unit}_postings "
        "WHERE row = ANY(%(rows)s) GROUP BY term) AS x WHERE d.unit = %(unit)s AND d.term = x.term",
        params,
    )
    db.execute("DELETE FROM bm25_df WHERE unit = %(unit)s AND df <= 0", params)
    db.execute(f"DELETE FROM {unit}_postings WHERE row = ANY(%(rows)s)", params)


def erase_text(
    db: psycopg.Connection[Any], needles: TextMatcher, reembed: Reembed, keep: Collection[str]
) -> EraseCount:
    """See :meth:`strongroom.store.base.Erasable.erase_text`; run inside the write lock's transaction."""
    erasure = Erasure(needles, keep)
    doc_of = {str(r[0]): str(r[1]) for r in db.execute("SELECT id, document_id FROM versions")}
    for seq, vid, doc, title, source, meta in db.execute(
        "SELECT seq, id, document_id, title, source, metadata FROM versions"
    ).fetchall():
        new = erasure.version(str(vid), doc, VersionFields(str(title), str(source), dict(meta or {})))
        if new is not None:
            db.execute(
                "UPDATE versions SET title = %s, source = %s, metadata = %s WHERE seq = %s",
                (new.title, new.source, Jsonb(new.metadata), seq),
            )
    for doc, source in db.execute("SELECT id, source FROM documents").fetchall():
        if (new_source := erasure.document(doc, str(source))) is not None:
            db.execute("UPDATE documents SET source = %s WHERE id = %s", (new_source, doc))
    pages = erasure.pages(db.execute("SELECT version_id, page, text FROM pages").fetchall(), doc_of)
    for (vid, number), (_, new_text) in pages.items():
        db.execute("UPDATE pages SET text = %s WHERE version_id = %s AND page = %s", (new_text, vid, number))
    rewritten: list[tuple[ChunkRow, int]] = []
    for r in db.execute(_CHUNKS).fetchall():
        row = ChunkRow(*r[:10])
        if (rewrite := erasure.chunk(row, str(r[10]), pages)) is None:
            continue
        new_row, text_changed = rewrite
        if text_changed:
            rewritten.append((new_row, int(r[11])))
        elif new_row != row:
            db.execute(
                "UPDATE chunks SET char_start = %s, char_end = %s WHERE row = %s",
                (new_row.char_start, new_row.char_end, row.key),
            )
    if rewritten:
        _rewrite_chunks(db, rewritten, reembed)
    for job, request, report in db.execute("SELECT id, request, report FROM jobs").fetchall():
        n = needles.count_value(request) + needles.count_value(report)
        if n:
            db.execute(
                "UPDATE jobs SET request = %s, report = %s WHERE id = %s",
                (
                    Jsonb(needles.scrub_value(request)),
                    Jsonb(needles.scrub_value(report)) if report is not None else None,
                    job,
                ),
            )
            erasure.places["jobs"] += n
    # their kept originals go too (the application layer deletes them)
    db.execute(
        'UPDATE versions SET metadata = metadata || \'{"original": "erased"}\'::jsonb WHERE id = ANY(%s)',
        (sorted(erasure.changed),),
    )
    _bump_epoch(db)
    return erasure.result()


def _rewrite_chunks(db: psycopg.Connection[Any], rewritten: list[tuple[ChunkRow, int]], reembed: Reembed) -> None:
    """Out of both BM25 units, rewritten with new text, vector and key, and indexed again."""
    rows = [c.key for c, _ in rewritten]
    lines = [int(r[0]) for r in db.execute("SELECT row FROM lines WHERE chunk_row = ANY(%s)", (rows,))]
    _unindex(db, "line", "lines", lines)
    db.execute("DELETE FROM lines WHERE row = ANY(%s)", (lines,))
    _unindex(db, "chunk", "chunks", rows)
    chunks = [chunk_of(c) for c, _ in rewritten]
    keys, vectors = reembed(chunks)
    tokens = [tokenize(f"{c.context}\n{c.text}") for c in chunks]
    for (c, _), key, vector, terms in zip(rewritten, keys, vectors, tokens, strict=True):
        db.execute(
            "UPDATE chunks SET char_start = %s, char_end = %s, text = %s, context = %s, embed_key = %s, "
            "n_terms = %s, embedding = %s WHERE row = %s",
            (c.char_start, c.char_end, c.text, c.context, key, len(terms), vector_text(vector), c.key),
        )
    index_terms(db, "chunk", rows, tokens)
    owners = [
        (c.key, seq, terms) for (c, seq), chunk in zip(rewritten, chunks, strict=True) for terms in line_terms(chunk)
    ]
    line_rows = allocate_rows(db, "lines", len(owners))
    copy_rows(
        db,
        "lines (row, chunk_row, version_seq, n_terms)",
        [(r, owner, seq, len(terms)) for r, (owner, seq, terms) in zip(line_rows, owners, strict=True)],
    )
    index_terms(db, "line", line_rows, [terms for _, _, terms in owners])


def _bump_epoch(db: psycopg.Connection[Any]) -> None:
    """Every process's cached versions are dropped (their titles and metadata changed)."""
    db.execute(
        "INSERT INTO meta VALUES ('acl_epoch', '1') ON CONFLICT (key) "
        "DO UPDATE SET value = (meta.value::bigint + 1)::text"
    )


def erase_document_rows(db: psycopg.Connection[Any], document_id: str) -> list[str]:
    """Blank what a deleted document's version rows and document row still say of it."""
    blank = blank_version(document_id)
    rows = db.execute(
        "UPDATE versions SET title = %s, source = %s, metadata = %s WHERE document_id = %s RETURNING id",
        (blank.title, blank.source, Jsonb(blank.metadata), document_id),
    ).fetchall()
    db.execute("UPDATE documents SET source = %s WHERE id = %s", (blank.source, document_id))
    _bump_epoch(db)
    return [str(r[0]).split(TOMBSTONE)[0] for r in rows]
