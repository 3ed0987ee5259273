"""The tables of a stored version, as data: reading content, in two steps like a page image.

The check (role, clocks, entitlements) is the page read itself
(:meth:`~strongroom.service.operations.Operations.page` of the first page, under its own
action), so a version the principal may not read is :class:`~strongroom.errors.NotFound`
exactly as one that does not exist; the rest of the version's stored page text is read with
it, where the store may be used. The tables are then found in that text
(:func:`~strongroom.ingest.understand.tables.extract_tables`, pure, no store: a driver may run
it on another thread), so every cell's span indexes the page text that citations and the page
reader show; the original file is not parsed again. The one audit record names the version
and how many tables were read, never their text.

    checked = read_version(ops, ana, doc_id, version_id, View())
    found = find_tables(checked).result().tables
    table = find_tables(checked, index=2).result().table
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from strongroom.errors import NotFound
from strongroom.ingest.understand.tables import Table, extract_tables
from strongroom.service.operations import Operations, Outcome
from strongroom.service.requests import View
from strongroom.types import DocumentVersion, Page, ParsedDocument, Principal

__all__ = ["TABLES_ACTION", "StoredVersion", "VersionTables", "find_tables", "read_version"]

TABLES_ACTION = "documents.tables"


@dataclass(frozen=True)
class StoredVersion:
    """A version the principal may read, rebuilt from its stored page text."""

    document_id: str
    version: DocumentVersion
    parsed: ParsedDocument


@dataclass(frozen=True)
class VersionTables:
    """The tables of one version, in reading order; ``index`` and ``table``: the one asked for."""

    document_id: str
    version: DocumentVersion
    tables: tuple[Table, ...]
    index: int | None = None

    @property
    def table(self) -> Table:
        if self.index is None:
            raise ValueError("no table was asked for: read tables[i]")
        return self.tables[self.index]


def read_version(
    ops: Operations, principal: Principal, document_id: str, version_id: str, view: View
) -> Outcome[StoredVersion]:
    """The check and the stored page text of every page of the version (on the store's thread)."""
    checked = ops.page(principal, document_id, version_id, 1, view, action=TABLES_ACTION)
    events = tuple(replace(e, target=f"{document_id}/{version_id}") for e in checked.events)
    if checked.error is not None or checked.value is None:
        return Outcome(None, checked.error, events)
    shown = checked.value
    texts = [shown.text] + [ops.store.page_text(version_id, n) or "" for n in range(2, shown.version.pages + 1)]
    pages = tuple(Page(n, text) for n, text in enumerate(texts, start=1))
    parsed = ParsedDocument(pages, shown.version.media_type, title=shown.version.title)
    return Outcome(StoredVersion(document_id, shown.version, parsed), None, events)


def find_tables(checked: Outcome[StoredVersion], index: int | None = None) -> Outcome[VersionTables]:
    """The checked version's tables (or the check's refusal, as it was); ``index``: table
    number ``index`` (from 0), one past the end being :class:`NotFound`."""
    if checked.error is not None or checked.value is None:
        return Outcome(None, checked.error, checked.events)
    stored = checked.value
    tables = tuple(extract_tables(stored.parsed))
    if index is not None and not 0 <= index < len(tables):
        missing = NotFound(f"no table {index}: this version has {len(tables)} tables, numbered from 0")
        events = tuple(replace(e, outcome="not_found", detail=str(missing)) for e in checked.events)
        return Outcome(None, missing, events)
    detail = f"{len(tables)} tables" if index is None else f"table {index} of {len(tables)}"
    events = tuple(replace(e, detail=detail) for e in checked.events)
    return Outcome(VersionTables(stored.document_id, stored.version, tables, index), None, events)
