"""Deletion in the embedded store's catalog: a document's chunks' text, vectors and pages go;
its version rows stay, marked deleted, so the history says that it existed (driven by
:class:`~strongroom.store.sqlite.SqliteStore`, which owns the transaction and drops the
search indexes afterwards, so no copy of the deleted text survives in them).

:func:`delete_document` deletes one document; :func:`delete_batch` deletes up to
:data:`BATCH` documents in a few scans of the chunk table (not one per document). Both run
inside the caller's transaction and move the catalog's ``generation`` and ``reindex``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

__all__ = ["BATCH", "REINDEX", "delete_batch", "delete_document"]

#: documents per transaction in :meth:`SqliteStore.delete_documents`
BATCH = 1000
#: other processes that hold the indexes in memory rebuild them, not append to them
REINDEX = "INSERT INTO meta VALUES ('reindex', '1') ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + 1"
_GENERATION = "UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'"


def delete_document(db: sqlite3.Connection, document_id: str) -> list[str]:
    """Delete the live versions of ``document_id`` inside the caller's transaction; returns
    their ids (none: nothing changed)."""
    rows = db.execute("SELECT seq, id FROM versions WHERE document_id = ? AND deleted = 0", (document_id,)).fetchall()
    if not rows:
        return []
    seqs = [int(r[0]) for r in rows]
    ids = [str(r[1]) for r in rows]
    marks = ",".join("?" * len(seqs))
    found = db.execute(f"SELECT DISTINCT embed_key FROM chunks WHERE version_seq IN ({marks})", seqs)
    keys = [str(r[0]) for r in found]
    db.execute(f"DELETE FROM chunks WHERE version_seq IN ({marks})", seqs)
    db.execute(f"DELETE FROM pages WHERE version_id IN ({marks})", ids)
    for i in range(0, len(keys), 500):
        part = keys[i : i + 500]
        db.execute(
            f"DELETE FROM embeddings WHERE key IN ({','.join('?' * len(part))}) "
            "AND key NOT IN (SELECT embed_key FROM chunks)",
            part,
        )
    db.execute(f"UPDATE versions SET deleted = 1 WHERE seq IN ({marks})", seqs)
    db.execute(_GENERATION)
    db.execute(REINDEX)
    return ids


def delete_batch(db: sqlite3.Connection, document_ids: Sequence[str]) -> list[tuple[int, str, str]]:
    """Delete the live versions of ``document_ids`` inside the caller's transaction; returns
    ``(seq, version id, document id)`` of each, in order."""
    for table, column in (("gone_docs", "id TEXT"), ("gone_seqs", "seq INTEGER"), ("gone_keys", "key TEXT")):
        db.execute(f"CREATE TEMP TABLE IF NOT EXISTS {table} ({column} PRIMARY KEY)")
        db.execute(f"DELETE FROM {table}")
    db.executemany("INSERT OR IGNORE INTO gone_docs VALUES (?)", [(d,) for d in document_ids])
    rows = [
        (int(r[0]), str(r[1]), str(r[2]))
        for r in db.execute(
            "SELECT seq, id, document_id FROM versions WHERE deleted = 0 "
            "AND document_id IN (SELECT id FROM gone_docs) ORDER BY seq"
        )
    ]
    if not rows:
        return []
    db.executemany("INSERT INTO gone_seqs VALUES (?)", [(r[0],) for r in rows])
    gone = "(SELECT seq FROM gone_seqs)"
    db.execute(f"INSERT OR IGNORE INTO gone_keys SELECT embed_key FROM chunks WHERE version_seq IN {gone}")
    db.execute(f"DELETE FROM chunks WHERE version_seq IN {gone}")
    db.execute(f"DELETE FROM pages WHERE version_id IN (SELECT id FROM versions WHERE seq IN {gone})")
    db.execute(
        "DELETE FROM embeddings WHERE key IN (SELECT key FROM gone_keys) AND key NOT IN (SELECT embed_key FROM chunks)"
    )
    db.execute(f"UPDATE versions SET deleted = 1 WHERE seq IN {gone}")
    db.execute(_GENERATION)
    db.execute(REINDEX)
    return rows
