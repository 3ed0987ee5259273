"""How a version becomes rows of the PostgreSQL store: row ids, COPY, BM25 postings.

Shared by :class:`~strongroom.store.postgres.PostgresStore` (one version per transaction)
and :mod:`strongroom.store.postgres_bulk` (many), so both write the same rows.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg

from strongroom.store.base import KeywordUnit
from strongroom.text import classify_lines, tokenize
from strongroom.types import Chunk

__all__ = ["allocate_rows", "copy_rows", "index_terms", "line_terms", "utc", "vector_text"]

_MAX_TF = 65535  # the embedded index keeps term frequencies in uint16


def utc(value: datetime) -> datetime:
    """Aware UTC; a naive time is taken as UTC (as the embedded store does)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def vector_text(values: npt.NDArray[np.float32]) -> str:
    # nine significant digits round-trip a float32 exactly
    return "[" + ",".join(f"{x:.9g}" for x in values.tolist()) + "]"


def copy_rows(db: psycopg.Connection[Any], target: str, rows: Sequence[tuple[object, ...]]) -> None:
    """Bulk-insert ``rows`` into ``target`` (``table (columns)``) with COPY."""
    with db.cursor() as cur, cur.copy(f"COPY {target} FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def line_terms(chunk: Chunk) -> list[list[str]]:
    """Terms of each structural line (table row, heading) of a chunk, with its context."""
    text = chunk.text
    return [tokenize(f"{chunk.context}\n{text[ln.start : ln.end]}") for ln in classify_lines(text) if ln.kind != "text"]


def allocate_rows(db: psycopg.Connection[Any], table: str, n: int) -> list[int]:
    """``n`` new row ids of ``table``, increasing, from its identity sequence."""
    if n == 0:
        return []
    rows = db.execute(
        "SELECT nextval(pg_get_serial_sequence(%s, 'row')) FROM generate_series(1, %s)", (table, n)
    ).fetchall()
    return sorted(int(r[0]) for r in rows)


def index_terms(db: psycopg.Connection[Any], unit: KeywordUnit, rows: list[int], docs: list[list[str]]) -> None:
    """Postings, document frequencies and totals of the new BM25 ``unit`` documents."""
    if not rows:
        return
    # COPY text built directly: terms never hold a tab, newline or backslash (they are runs
    # of letters and digits, see keyword.tokenize), so nothing needs escaping.
    df: Counter[str] = Counter()
    lines: list[str] = []
    for row, tokens in zip(rows, docs, strict=True):
        counts = Counter(tokens)
        df.update(counts.keys())
        lines.extend(f"{term}\t{row}\t{min(n, _MAX_TF)}\n" for term, n in counts.items())
    with db.cursor() as cur, cur.copy(f"COPY {unit}_postings (term, row, tf) FROM STDIN") as copy:
        copy.write("".join(lines))
    db.execute(
        "UPDATE bm25_stats SET n_docs = n_docs + %s, total_len = total_len + %s WHERE unit = %s",
        (len(rows), sum(map(len, docs)), unit),
    )
    db.execute(
        "INSERT INTO bm25_df (unit, term, df) SELECT %s, t, n FROM unnest(%s::text[], %s::bigint[]) AS x(t, n) "
        "ON CONFLICT (unit, term) DO UPDATE SET df = bm25_df.df + excluded.df",
        (unit, list(df), list(df.values())),
    )
