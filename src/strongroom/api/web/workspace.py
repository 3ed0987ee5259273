"""The analyst's pages: conversation history, a shared conversation, documents, uploads.

Each page reads through the application layer as the signed-in user (the same calls, and so
the same entitlements, clocks and audit records, as the JSON API behind it); the pages'
script then changes state through the JSON API with the session's CSRF token. A document or
shared link the user may not read is the "not found" page, exactly as one that does not exist.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response

from strongroom.api.web.render import NO_STORE, page, require_role, service, signed_in, unknown
from strongroom.api.web.sessions import Session
from strongroom.errors import NotFound
from strongroom.ingest.understand.tables import Cell, Table
from strongroom.service import DocumentsRequest, View
from strongroom.types import DocumentVersion

__all__ = ["router"]

router = APIRouter(include_in_schema=False)
Text = Annotated[str, Query(max_length=200)]


def _context(session: Session, **more: Any) -> dict[str, Any]:
    return {"session": session, "caller": session.caller, "csrf": session.csrf, **more}


@dataclass(frozen=True)
class VersionRow:
    """One version as the pages show it."""

    id: str
    title: str
    doc_type: str
    media_type: str
    sensitivity: str
    published_at: datetime
    ingested_at: datetime
    pages: int
    size: int
    acl: list[str]
    term_sheet: dict[str, str]
    metadata: dict[str, str]

    @classmethod
    def of(cls, v: DocumentVersion) -> VersionRow:
        meta = dict(v.metadata)
        fields = {k.removeprefix("ts."): meta.pop(k) for k in sorted(meta) if k.startswith("ts.")}
        return cls(
            v.id,
            v.title,
            v.doc_type,
            v.media_type,
            meta.pop("sensitivity", "unclassified"),
            v.published_at,
            v.ingested_at,
            v.pages,
            v.size,
            sorted(v.acl),
            fields,
            dict(sorted(meta.items())),
        )


MAX_TABLES = 100  # drawn on a document's page; the API lists them all


@dataclass(frozen=True)
class TableView:
    """One table as a document's page shows it: its column headings (numbered where the
    source has none, as in a PDF statement), which columns hold figures, and its rows."""

    index: int
    page: int
    kind: str
    headings: list[str]
    figures: list[bool]
    rows: list[list[Cell]]

    @classmethod
    def of(cls, index: int, table: Table) -> TableView:
        n = table.columns
        if table.header:
            headings = [table.header[i] if i < len(table.header) else f"Column {i + 1}" for i in range(n)]
        else:
            headings = ["Item", *(f"Figure {i}" for i in range(1, n))]
        columns = [[c for c in table.column(i) if c.text] for i in range(n)]
        figures = [bool(col) and 2 * sum(c.number is not None for c in col) >= len(col) for col in columns]
        return cls(index, table.page, table.kind, headings, figures, [list(r) for r in table.rows])

    @property
    def first(self) -> str:
        """What its first row is about: its first cell's text."""
        return self.rows[0][0].text if self.rows and self.rows[0] else ""


# -- conversations -------------------------------------------------------------------------


@router.get("/ui/history", name="ui_history")
async def history_page(request: Request) -> Response:
    """The user's conversations, newest first: open one (to ask on in it) or delete it."""
    session = await signed_in(request)
    if not isinstance(session, Session):
        return session
    found = await service(request).platform.conversations(session.caller.principal)
    return page(request, "history.html", **_context(session, conversations=found))


@router.get("/shared/{token}")
async def shared_link(token: str) -> Response:
    """The short form of a shared link: the workspace page that opens it."""
    return RedirectResponse(f"/ui/shared/{token}", 303, headers=NO_STORE)


@router.get("/ui/shared/{token}", name="ui_shared")
async def shared_page(request: Request, token: str) -> Response:
    """A shared conversation, read-only; the "not found" page, as for a link that does not
    exist, unless the user may read every document version it cites at the link's instant."""
    session = await signed_in(request)
    if not isinstance(session, Session):
        return session
    if len(token) > 100:
        return unknown(request, session)
    try:
        link, thread = await service(request).platform.open_shared(session.caller.principal, token)
    except NotFound:
        return unknown(request, session)
    return page(request, "shared.html", **_context(session, link=link, thread=thread))


# -- documents -----------------------------------------------------------------------------


@router.get("/ui/documents", name="ui_documents")
async def documents_page(request: Request, q: Text = "", doc_type: Text = "") -> Response:
    """The documents the user may read now: search by title or source, filter by type."""
    session = await signed_in(request)
    if not isinstance(session, Session):
        return session
    docs = await service(request).platform.documents(session.caller.principal, DocumentsRequest(limit=1000))
    types = sorted({d.current.doc_type for d in docs if d.current.doc_type})
    words = q.lower().split()
    shown = [
        (d.document_id, d.source, VersionRow.of(d.current))
        for d in docs
        if all(w in f"{d.title} {d.source} {d.current.name}".lower() for w in words)
        and (not doc_type or d.current.doc_type == doc_type)
    ]
    shown.sort(key=lambda row: row[2].published_at, reverse=True)
    context = _context(session, documents=shown, types=types, q=q, doc_type=doc_type, total=len(docs))
    return page(request, "documents.html", **context)


@router.get("/ui/documents/{document_id}", name="ui_document")
async def document_page(request: Request, document_id: str) -> Response:
    """A document: its current version's fields (type, sensitivity, term-sheet fields), the
    versions the user may read on a timeline, its pages and its tables (each linking to its
    page in the reader); "not found" when it may read none."""
    session = await signed_in(request)
    if not isinstance(session, Session):
        return session
    if len(document_id) > 200:
        return unknown(request, session)
    platform, principal = service(request).platform, session.caller.principal
    try:
        doc = await platform.document(principal, document_id, View())
    except NotFound:
        return unknown(request, session)
    try:
        tables = (await platform.tables(principal, document_id, doc.current.id, View())).tables
    except NotFound:  # a version without pages (or gone since): nothing to show
        tables = ()
    versions = [VersionRow.of(v) for v in sorted(doc.versions, key=lambda v: v.published_at, reverse=True)]
    shown = [TableView.of(i, t) for i, t in enumerate(tables[:MAX_TABLES])]
    # the reader offers the first pages, and every page a table links to
    pages = [n for n in range(1, doc.current.pages + 1) if n <= 60 or any(t.page == n for t in shown)]
    context = _context(
        session, doc=doc, current=VersionRow.of(doc.current), versions=versions, pages=pages, tables=shown
    )
    return page(request, "document.html", **context)


@router.get("/ui/upload", name="ui_upload")
async def upload_page(request: Request) -> Response:
    """Upload a document (ingesters) and follow its job; the user's recent jobs, failures with reasons."""
    session = await signed_in(request)
    if not isinstance(session, Session):
        return session
    if no := await require_role(request, session, "ingester", "ui.upload"):
        return no
    jobs = await service(request).platform.jobs(session.caller.principal, 20)
    return page(request, "upload.html", **_context(session, jobs=[job_row(j) for j in jobs]))


@dataclass(frozen=True)
class JobRow:
    id: str
    status: str
    started_at: str
    submitted_by: str
    files: list[dict[str, object]]


def job_row(row: dict[str, object]) -> JobRow:
    """A job record (``GET /v1/jobs``'s fields) as the pages show it."""
    report, asked = row.get("report"), row.get("request")
    files = report.get("files", []) if isinstance(report, dict) else []
    if not files and isinstance(asked, dict):
        files = [{"name": n, "status": row.get("status", "")} for n in asked.get("files", [])]
    by = str(asked.get("submitted_by", "")) if isinstance(asked, dict) else ""
    started = str(row.get("started_at", ""))[:19].replace("T", " ")
    return JobRow(str(row["id"]), str(row.get("status", "")), started, by, [dict(f) for f in files])
