"""Erasure in the embedded store's catalog: every row that holds an identifier rewritten in one
transaction (:class:`~strongroom.store.base.Erasable`, driven by
:class:`~strongroom.store.sqlite.SqliteStore`).

Version and document rows, pages, chunks and the job log are scrubbed (the rules are
:mod:`strongroom.store.erasure`'s, shared with PostgreSQL). A chunk whose text changed gets
the vector of its new text and a new cache key, and the cache row of the old key (a hash of
the old text) goes. The in-memory indexes and their snapshot are rebuilt by the store from the
rewritten rows; :func:`reclaim` then removes the old bytes from the file: with secure delete
on, ``VACUUM`` rebuilds it from the live rows, and the WAL, which holds copies of earlier
pages, is checkpointed and truncated.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Collection

import numpy as np

from strongroom.store.base import TOMBSTONE, EraseCount, Reembed, TextMatcher
from strongroom.store.erasure import ChunkRow, Erasure, VersionFields, blank_version, chunk_of

__all__ = ["blank_document", "erase_text", "find_text", "reclaim"]


def find_text(db: sqlite3.Connection, needles: TextMatcher) -> dict[str, int]:
    """Occurrences of an identifier per table, held documents and deleted versions included."""
    one = db.execute
    versions = sum(_fields(r).count(needles) for r in one("SELECT title, source, metadata FROM versions"))
    return {
        "versions": versions,
        "documents": sum(needles.count(str(r[0])) for r in one("SELECT source FROM documents")),
        "pages": sum(needles.count(str(r[0])) for r in one("SELECT text FROM pages")),
        "chunks": sum(
            needles.count(str(r[0])) + needles.count(str(r[1])) for r in one("SELECT text, context FROM chunks")
        ),
        "jobs": sum(
            needles.count(str(r[0])) + needles.count(str(r[1] or "")) for r in one("SELECT request, report FROM jobs")
        ),
    }


def _fields(row: tuple[object, ...]) -> VersionFields:
    return VersionFields(str(row[0]), str(row[1]), json.loads(str(row[2])))


def erase_text(
    db: sqlite3.Connection, needles: TextMatcher, reembed: Reembed, keep: Collection[str], model_id: str
) -> EraseCount:
    """Scrub an identifier from every row except those of documents in ``keep``; run inside a
    write transaction (the caller bumps the generation and drops its indexes)."""
    erasure = Erasure(needles, keep)
    doc_of = {str(r[0]): str(r[1]) for r in db.execute("SELECT id, document_id FROM versions")}
    for seq, vid, doc, title, source, meta in db.execute(
        "SELECT seq, id, document_id, title, source, metadata FROM versions"
    ).fetchall():
        new = erasure.version(str(vid), doc, VersionFields(str(title), str(source), json.loads(str(meta))))
        if new is not None:
            db.execute(
                "UPDATE versions SET title = ?, source = ?, metadata = ? WHERE seq = ?",
                (new.title, new.source, json.dumps(new.metadata), seq),
            )
    for doc, source in db.execute("SELECT id, source FROM documents").fetchall():
        if (new_source := erasure.document(doc, str(source))) is not None:
            db.execute("UPDATE documents SET source = ? WHERE id = ?", (new_source, doc))
    pages = erasure.pages(db.execute("SELECT version_id, page, text FROM pages").fetchall(), doc_of)
    db.executemany(
        "UPDATE pages SET text = ? WHERE version_id = ? AND page = ?",
        [(new, vid, number) for (vid, number), (_, new) in pages.items()],
    )
    rewritten: list[ChunkRow] = []
    old_keys: set[str] = set()
    for r in db.execute(
        "SELECT c.row, c.id, v.id, c.ordinal, c.page, c.char_start, c.char_end, c.text, c.context, "
        "c.embed_key, v.document_id FROM chunks c JOIN versions v ON v.seq = c.version_seq"
    ).fetchall():
        row = ChunkRow(*r[:10])
        if (rewrite := erasure.chunk(row, str(r[10]), pages)) is None:
            continue
        new_row, text_changed = rewrite
        if text_changed:
            rewritten.append(new_row)
            old_keys.add(row.embed_key)
        elif new_row != row:
            db.execute(
                "UPDATE chunks SET char_start = ?, char_end = ? WHERE row = ?",
                (new_row.char_start, new_row.char_end, row.key),
            )
    if rewritten:
        keys, vectors = reembed([chunk_of(c) for c in rewritten])
        db.executemany(
            "INSERT OR IGNORE INTO embeddings VALUES (?, ?, ?)",
            [(k, model_id, v.astype(np.float32).tobytes()) for k, v in zip(keys, vectors, strict=True)],
        )
        db.executemany(
            "UPDATE chunks SET char_start = ?, char_end = ?, text = ?, context = ?, embed_key = ? WHERE row = ?",
            [(c.char_start, c.char_end, c.text, c.context, k, c.key) for c, k in zip(rewritten, keys, strict=True)],
        )
        for key in old_keys - set(keys):  # the vector of the old text, keyed by its hash
            db.execute("DELETE FROM embeddings WHERE key = ? AND key NOT IN (SELECT embed_key FROM chunks)", (key,))
    for job, request, report in db.execute("SELECT id, request, report FROM jobs").fetchall():
        n = needles.count(str(request)) + needles.count(str(report or ""))
        if n:
            new_request = json.dumps(needles.scrub_value(json.loads(request)))
            new_report = json.dumps(needles.scrub_value(json.loads(report))) if report else None
            db.execute("UPDATE jobs SET request = ?, report = ? WHERE id = ?", (new_request, new_report, job))
            erasure.places["jobs"] += n
    db.executemany(  # their kept originals go too (the application layer deletes them)
        "UPDATE versions SET metadata = json_set(metadata, '$.original', 'erased') WHERE id = ?",
        [(v,) for v in sorted(erasure.changed)],
    )
    return erasure.result()


def blank_document(db: sqlite3.Connection, document_id: str) -> list[str]:
    """Blank what a deleted document's version rows and document row still say of it; the
    ids of its versions (tombstone suffixes cut off)."""
    blank = blank_version(document_id)
    rows = db.execute("SELECT id FROM versions WHERE document_id = ?", (document_id,)).fetchall()
    db.execute(
        "UPDATE versions SET title = ?, source = ?, metadata = ? WHERE document_id = ?",
        (blank.title, blank.source, json.dumps(blank.metadata), document_id),
    )
    db.execute("UPDATE documents SET source = ? WHERE id = ?", (blank.source, document_id))
    return [str(r[0]).split(TOMBSTONE)[0] for r in rows]


def reclaim(db: sqlite3.Connection) -> bool:
    """Secure delete on, ``VACUUM``, then the WAL checkpointed and truncated (a reader elsewhere
    can delay that: it is retried for five seconds); whether the WAL was truncated."""
    db.execute("PRAGMA secure_delete = ON")
    db.execute("VACUUM")
    for _ in range(50):
        if not int(db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]):
            return True
        time.sleep(0.1)
    return False
