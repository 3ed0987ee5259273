"""``verify`` on PostgreSQL: every text, JSON and bytea column of every table in every schema
of the store's database (system schemas aside) searched for an erased identifier.

Text and JSON columns are matched on the server (``col::text ~* pattern``: the identifier's
forms with any whitespace between their parts, any letter case); bytea columns (LangGraph's
serialised checkpoints) are read and matched as raw bytes. Dead row versions are invisible to
SQL: the erasure vacuums the tables it touched, which is the most SQL can do (the server's
write-ahead log and base backups age out with its retention).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import psycopg
from psycopg import sql

from strongroom.errors import StoreError
from strongroom.governance.erasure import Needles

__all__ = ["search_database"]

_TEXT_TYPES = ("text", "character varying", "character", "json", "jsonb", "name", "xml", "citext")
_COLUMNS = """
SELECT c.table_schema, c.table_name, c.column_name, c.data_type, c.udt_name
FROM information_schema.columns c
JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name
WHERE t.table_type = 'BASE TABLE'
  AND c.table_schema NOT IN ('pg_catalog', 'information_schema') AND c.table_schema NOT LIKE 'pg_toast%%'
ORDER BY 1, 2, 3
"""


def _server_pattern(needles: Needles) -> str:
    """The needles as a PostgreSQL regular expression (ARE): each form's parts escaped, any
    whitespace between them."""
    parts = []
    for form in needles.forms:
        parts.append(r"\s*".join(re.sub(r"([^\w\s])", r"\\\1", p) for p in form.split()))
    return "|".join(parts)


def search_database(url: str, needles: Needles) -> Iterator[tuple[str, int]]:
    """(``schema.table.column``, rows holding the identifier) for every searchable column."""
    pattern = _server_pattern(needles)
    try:
        with psycopg.connect(url, autocommit=True) as db:
            columns = db.execute(_COLUMNS).fetchall()
            for schema, table, column, data_type, udt in columns:
                name = f"{schema}.{table}.{column}"
                ident = sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(table))
                col = sql.Identifier(column)
                if data_type in _TEXT_TYPES or (data_type == "ARRAY" and udt in ("_text", "_varchar")):
                    query = sql.SQL("SELECT count(*) FROM {} WHERE {}::text ~* %s").format(ident, col)
                    row = db.execute(query, (pattern,)).fetchone()
                    yield name, int(row[0]) if row else 0
                elif data_type == "bytea":
                    n = 0
                    query = sql.SQL("SELECT {} FROM {} WHERE {} IS NOT NULL").format(col, ident, col)
                    for (value,) in db.execute(query):
                        data = bytes(value)
                        if needles.count_bytes(data) or needles.count(data.decode("utf-8", "replace")):
                            n += 1
                    yield name, n
    except psycopg.Error as exc:
        raise StoreError(f"cannot search the PostgreSQL database for the erased identifier: {exc}") from exc
