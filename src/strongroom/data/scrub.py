"""Scrubbing text out of the datasets: what an erasure of an identifier does to dataset rows.

A backend that can be scrubbed implements :class:`TextScrubbing` (both
:class:`~strongroom.data.duckdb.DuckDBDatasets` and
:class:`~strongroom.data.postgres.PostgresDatasets` do): every text column of every row, of
every version (superseded rows included), and the text of the version records (the loaded
file's name) is passed through ``scrub``; a value it changes is written back in
place. The change is not a new version: the erased text must not survive in an old one.
Afterwards no old value is left in the engine's files: the DuckDB file is rewritten whole
(DuckDB leaves a changed value's old blocks in the file until they are reused), and each
changed PostgreSQL table is rewritten with ``VACUUM FULL``.

    counts = datasets.scrub_text(needles.scrub, apply=False)   # {"datasets.prices": 2}
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Protocol, runtime_checkable

__all__ = ["VERSIONS_PLACE", "Scrub", "TextScrubbing", "place", "scrubbed_columns", "scrubbed_rows"]

#: text -> the same text with what is sought replaced
Scrub = Callable[[str], str]
#: the place of the version records (the loaded file's name) in a scrub's counts
VERSIONS_PLACE = "datasets.versions"
#: the one text column of the version records that is free text; the others (ACL, key and
#: valid-time columns, column types) are what the rows are read by, and the loader a principal
_VERSION_TEXT = ("source_name",)


def place(dataset: str) -> str:
    """How a dataset's rows are named in a scrub's counts."""
    return f"datasets.{dataset}"


@runtime_checkable
class TextScrubbing(Protocol):
    """Datasets whose text can be scrubbed in place (see the module)."""

    def scrub_text(self, scrub: Scrub, *, apply: bool, compact: bool = False) -> dict[str, int]:
        """Per place (:func:`place` of each dataset, :data:`VERSIONS_PLACE`), how many rows
        hold text that ``scrub`` changes; with ``apply`` those values are replaced by their
        scrubbed text, in one transaction, and the engine's files are rewritten so that no old
        value survives (``compact``: rewritten even if no row changed, e.g. after an erasure
        that stopped between the two). Places with no such row are left out."""
        ...


def scrubbed_columns(table: str, text_columns: Sequence[str]) -> list[str]:
    """Which of a table's text columns are scrubbed: all of a dataset's, only the file name of
    the version records (``_versions``); none of the bookkeeping (``_meta``)."""
    if table == "_versions":
        return [c for c in text_columns if c in _VERSION_TEXT]
    if table.startswith("_"):
        return []
    return list(text_columns)


def scrubbed_rows(
    rows: Iterable[Sequence[object]], columns: Sequence[str], scrub: Scrub
) -> list[tuple[object, dict[str, str]]]:
    """For rows ``(key, value, value, ...)`` of ``columns``, the key and new values of each row
    whose text ``scrub`` changes (None and non-text values are left alone)."""
    out: list[tuple[object, dict[str, str]]] = []
    for key, *values in rows:
        changes = {
            name: new
            for name, value in zip(columns, values, strict=True)
            if isinstance(value, str) and (new := scrub(value)) != value
        }
        if changes:
            out.append((key, changes))
    return out
