"""Document understanding over what the store holds, through the application layer (so a
principal sees only the documents they may read): the stored term sheets and their fields,
and a stored document rebuilt from its page text so that offsets into it cite it exactly; the
tables of a file, or else of the stored document a name finds (:meth:`Platform.tables`).

    with Platform.open(Settings()) as platform:
        rows = term_sheets(platform, principal, underlying="Apple")
        parsed = stored_document(platform, principal, "terms.csv")
        doc = platform.find_document(principal, "terms.csv")
        tables = platform.tables(principal, doc.document_id, doc.current.id).tables  # one audited read
    table = table_at(tables_in("terms.csv", Settings(), lambda: (platform, principal)), 0, "terms.csv")
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from strongroom.config import Settings
from strongroom.errors import NotFound, QueryError
from strongroom.ingest.understand.files import parse_file
from strongroom.ingest.understand.tables import Table, extract_tables
from strongroom.ingest.understand.termsheet import select_term_sheets
from strongroom.service.platform import Platform
from strongroom.service.requests import DocumentsRequest
from strongroom.types import Page, ParsedDocument, Principal

__all__ = ["StoredTermSheet", "stored_document", "table_at", "tables_in", "term_sheet", "term_sheets"]


def term_sheets(
    platform: Platform, principal: Principal, *, underlying: str | None = None, maturing_before: str | None = None
) -> list[dict[str, str]]:
    """The current versions of the stored term sheets ``principal`` may read, on ``underlying``
    and maturing before ``maturing_before`` (YYYY-MM-DD), each with its stored fields."""
    docs = platform.documents(principal, DocumentsRequest(limit=1000))
    return select_term_sheets((d.current for d in docs), underlying=underlying, maturing_before=maturing_before)


@dataclass(frozen=True)
class StoredTermSheet:
    """A stored term sheet's current version and the fields ingestion extracted from it."""

    document: str
    version_id: str
    fields: dict[str, str]

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def term_sheet(platform: Platform, principal: Principal, name: str) -> StoredTermSheet:
    """The stored term sheet ``principal`` may read named ``name`` (a file name, or a version
    id or its prefix); the newest where several match."""
    rows = [r for r in term_sheets(platform, principal) if name in (r["document"], r["version_id"][: len(name)])]
    if not rows:
        raise NotFound(f"no term sheet named {name!r}; see 'strongroom termsheets list'")
    fields = dict(rows[-1])
    return StoredTermSheet(fields.pop("document"), fields.pop("version_id"), fields)


def stored_document(platform: Platform, principal: Principal, name: str) -> ParsedDocument:
    """The current version of a stored document ``principal`` may read (named by file name,
    document id or version id prefix), rebuilt from its stored page text, so offsets into it
    match its citations."""
    doc = platform.find_document(principal, name)
    version = doc.current
    pages = tuple(
        Page(n, platform.page(principal, doc.document_id, version.id, n).text) for n in range(1, version.pages + 1)
    )
    return ParsedDocument(pages, version.media_type, title=version.title)


def tables_in(target: str, settings: Settings, reader: Callable[[], tuple[Platform, Principal]]) -> list[Table]:
    """The tables of the file ``target``, parsed as ingestion parses it; else of the stored
    document it names, as the principal ``reader()`` returns may read it (the platform is
    opened only then: a file needs no store). Neither is a :class:`NotFound`."""
    if Path(target).is_file():
        return extract_tables(parse_file(Path(target), settings))
    platform, principal = reader()
    try:
        doc = platform.find_document(principal, target)
    except NotFound as exc:
        raise NotFound(f"{target}: no such file, and {exc}") from exc
    return list(platform.tables(principal, doc.document_id, doc.current.id).tables)


def table_at(tables: list[Table], index: int, target: str) -> Table:
    """Table number ``index`` (from 0) of ``target``'s ``tables``; one past the end is a :class:`QueryError`."""
    if not 0 <= index < len(tables):
        raise QueryError(f"{target} has {len(tables)} tables; pick --index below that")
    return tables[index]
