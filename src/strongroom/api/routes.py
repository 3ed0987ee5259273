"""Content routes under ``/v1``: search, ask, documents (their pages as text and images, their tables), ACLs,
jobs, audit.

Each route parses its request, hands it to the application layer with the caller's
principal (:class:`~strongroom.service.AsyncPlatform`) and renders the result; the layer
decides roles, entitlements and clocks and writes the audit record. Its errors map to HTTP
in one place (``app.py``): a document, version, page or job the caller may not see is a 404,
exactly as one that does not exist.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, HTTPException, Query, Request, UploadFile
from fastapi.responses import Response, StreamingResponse

from strongroom.api.deps import Who, service
from strongroom.api.schemas import (
    AclRequest,
    AnswerOut,
    AskRequest,
    CellOut,
    DocumentList,
    DocumentOut,
    HighlightOut,
    HitOut,
    JobList,
    JobOut,
    PageOut,
    SearchOut,
    SearchRequest,
    TableList,
    TableOut,
    TableSummaryOut,
    VersionOut,
)
from strongroom.api.service import Service, safe_name
from strongroom.config import DEFAULT_ACL
from strongroom.errors import QueryError
from strongroom.ingest.understand.redaction import redact_name
from strongroom.service import AskRequest as Ask
from strongroom.service import DocumentsRequest, DocumentView, View, parse_instant
from strongroom.service import SearchRequest as Search
from strongroom.types import frozen_meta

__all__ = ["router"]

router = APIRouter(prefix="/v1")
AsOf = Annotated[str | None, Query(max_length=64, description="Only what was published by then (default: now).")]
KnownAt = Annotated[str | None, Query(max_length=64, description="Only what was ingested by then (default: now).")]


def _clocks(as_of: AsOf = None, known_at: KnownAt = None) -> View:
    """The two clocks of a read of one document, as query parameters."""
    return View(as_of=as_of, known_at=known_at)


#: a document read's clocks (``?as_of=...&known_at=...``)
Clocks = Annotated[View, Depends(_clocks)]


def _k(svc: Service, k: int) -> int:
    if k > svc.config.max_k:
        raise HTTPException(422, f"k is at most {svc.config.max_k}")
    return k


def ask_of(svc: Service, body: AskRequest) -> Ask:
    """The application layer's request for an ask's body (``/v1/ask`` and a conversation's)."""
    return Ask(
        question=body.question,
        k=_k(svc, body.k),
        model=body.model,
        as_of=body.as_of,
        known_at=body.known_at,
        published_from=body.published_from,
        doc_types=frozenset(body.doc_types),
        filters=frozen_meta(body.filters),
    )


@router.post("/search", response_model=SearchOut, tags=["retrieval"])
async def search_route(body: SearchRequest, request: Request, principal: Who) -> SearchOut:
    """The top ``k`` passages the caller may read, with where each one is."""
    svc = service(request)
    query = Search(
        query=body.query,
        k=_k(svc, body.k),
        as_of=body.as_of,
        known_at=body.known_at,
        published_from=body.published_from,
        doc_types=frozenset(body.doc_types),
        filters=frozen_meta(body.filters),
    )
    result = await svc.platform.search(principal, query)
    return SearchOut(hits=[HitOut.of(h) for h in result.hits])


@router.post("/ask", response_model=AnswerOut, tags=["retrieval"])
async def ask_route(body: AskRequest, request: Request, principal: Who) -> AnswerOut:
    """An answer from the documents the caller may read, each claim with citations; written by the
    extractive generator, or by the model route ``model`` when the caller may use it."""
    svc = service(request)
    answer, seq = await svc.platform.ask_recorded(principal, ask_of(svc, body))
    return AnswerOut.of(answer, seq)


# -- documents ---------------------------------------------------------------------------


def _document(doc: DocumentView, with_versions: bool = True) -> DocumentOut:
    return DocumentOut(
        document_id=doc.document_id,
        source=doc.source,
        title=doc.title,
        current=VersionOut.of(doc.current),
        versions=[VersionOut.of(v) for v in doc.versions] if with_versions else [],
    )


@router.get("/documents", response_model=DocumentList, tags=["documents"])
async def list_documents(
    request: Request,
    principal: Who,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
    as_of: AsOf = None,
    known_at: KnownAt = None,
) -> DocumentList:
    """The documents whose current version (at the clocks) the caller may read."""
    listing = DocumentsRequest(as_of=as_of, known_at=known_at, limit=limit, offset=offset)
    docs = await service(request).platform.documents(principal, listing)
    return DocumentList(documents=[_document(d, with_versions=False) for d in docs])


@router.get("/documents/{document_id}", response_model=DocumentOut, tags=["documents"])
async def get_document(document_id: str, request: Request, principal: Who, view: Clocks) -> DocumentOut:
    """A document and the versions of it the caller may read (404 if it may read none)."""
    doc = await service(request).platform.document(principal, document_id, view)
    return _document(doc)


@router.get("/documents/{document_id}/versions/{version_id}/pages/{page}", response_model=PageOut, tags=["documents"])
async def get_page(
    document_id: str,
    version_id: str,
    page: int,
    request: Request,
    principal: Who,
    view: Clocks,
) -> PageOut:
    """The text of one page of one version: what a citation points into."""
    platform = service(request).platform
    shown = await platform.page(principal, document_id, version_id, page, view)
    has_image = await asyncio.to_thread(platform.page_has_image, shown)
    return PageOut(document_id=document_id, version_id=version_id, page=page, text=shown.text, has_image=has_image)


_PRIVATE = {"Cache-Control": "private, no-store"}  # entitled content: no shared cache may keep it


@router.get(
    "/documents/{document_id}/versions/{version_id}/pages/{page}/image",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}, "description": "The page as a PNG image."}},
    tags=["documents"],
)
async def get_page_image(
    document_id: str,
    version_id: str,
    page: int,
    request: Request,
    principal: Who,
    view: Clocks,
) -> Response:
    """A PDF page drawn as a PNG (about 1200 pixels wide) from the version's kept original;
    404 when the version is not a PDF or its original was not kept."""
    image = await service(request).platform.page_image(principal, document_id, version_id, page, view)
    return Response(image.png, media_type="image/png", headers=_PRIVATE)


@router.get(
    "/documents/{document_id}/versions/{version_id}/pages/{page}/highlight",
    response_model=HighlightOut,
    tags=["documents"],
)
async def get_page_highlight(
    document_id: str,
    version_id: str,
    page: int,
    request: Request,
    response: Response,
    principal: Who,
    start: Annotated[int, Query(ge=0, description="First character of the span in the page's text.")],
    end: Annotated[int, Query(gt=0, description="One past the span's last character.")],
    view: Clocks,
) -> HighlightOut:
    """Where characters ``[start, end)`` of the page's text (a citation's span) lie on the page
    image: one box per line, ``[x0, y0, x1, y1]`` as fractions of the page, origin top-left.
    422 unless ``0 <= start < end <=`` the text's length."""
    boxes = await service(request).platform.page_highlight(principal, document_id, version_id, page, (start, end), view)
    response.headers.update(_PRIVATE)
    return HighlightOut(boxes=boxes)


@router.get("/documents/{document_id}/versions/{version_id}/tables", response_model=TableList, tags=["documents"])
async def list_tables(
    document_id: str,
    version_id: str,
    request: Request,
    response: Response,
    principal: Who,
    view: Clocks,
) -> TableList:
    """The tables found in a version's page text, in reading order: page, kind, size, first row."""
    found = await service(request).platform.tables(principal, document_id, version_id, view)
    response.headers.update(_PRIVATE)
    summaries = [TableSummaryOut.model_validate({"index": i, **t.summary()}) for i, t in enumerate(found.tables)]
    return TableList(document_id=document_id, version_id=version_id, tables=summaries)


@router.get(
    "/documents/{document_id}/versions/{version_id}/tables/{index}", response_model=TableOut, tags=["documents"]
)
async def get_table(
    document_id: str,
    version_id: str,
    index: int,
    request: Request,
    response: Response,
    principal: Who,
    view: Clocks,
) -> TableOut:
    """One table (``index`` from 0, as .../tables lists them): its header and its cells, each
    with its figure and its span in the page's text; 404 past the last table."""
    table = (await service(request).platform.tables(principal, document_id, version_id, view, index=index)).table
    response.headers.update(_PRIVATE)
    cells = [
        [CellOut(text=c.text, number=c.number, page=c.page, start=c.start, end=c.end) for c in r] for r in table.rows
    ]
    return TableOut(
        document_id=document_id,
        version_id=version_id,
        index=index,
        page=table.page,
        kind=table.kind,
        start=table.start,
        end=table.end,
        header=list(table.header),
        rows=cells,
    )


@router.put("/documents/{document_id}/acl", tags=["documents"])
async def set_acl(document_id: str, body: AclRequest, request: Request, principal: Who) -> dict[str, object]:
    """Change who may read every version of a document (admins who may read it); audited with
    the ACL before and after."""
    change = await service(request).platform.set_acl(principal, document_id, body.acl)
    return {
        "document_id": change.document_id,
        "before": sorted(change.before),
        "after": sorted(change.after),
        "versions": list(change.versions),
    }


@router.delete("/documents/{document_id}", tags=["documents"])
async def delete_document(document_id: str, request: Request, principal: Who) -> dict[str, object]:
    """Delete a document: chunks, pages and vectors go; the audit log keeps that it happened."""
    deleted = await service(request).platform.delete(principal, document_id)
    return {"document_id": document_id, "deleted_versions": deleted}


def _acl(value: str) -> frozenset[str]:
    groups = frozenset(g.strip() for g in value.split(",") if g.strip())
    if not groups:
        raise HTTPException(422, "acl: give at least one group")
    return groups


def _meta(value: str | None) -> dict[str, str]:
    if not value:
        return {}
    try:
        meta = json.loads(value)
    except ValueError as exc:
        raise HTTPException(422, 'meta must be a JSON object of strings, e.g. {"ticker": "AAPL"}') from exc
    if not isinstance(meta, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items()):
        raise HTTPException(422, 'meta must be a JSON object of strings, e.g. {"ticker": "AAPL"}')
    return meta


@router.post("/documents", response_model=JobOut, status_code=202, tags=["documents"])
async def upload_document(
    request: Request,
    principal: Who,
    file: Annotated[UploadFile, File(description="The document (PDF, DOCX, XLSX, HTML, TXT, ...)")],
    acl: Annotated[str, Form(description="Comma-separated groups that may read it")] = DEFAULT_ACL,
    published: Annotated[str | None, Form(description="When it became knowable (date: midnight UTC, or ISO)")] = None,
    doc_type: Annotated[str | None, Form()] = None,
    source: Annotated[str, Form(description="Source namespace; with the file name, names the document")] = "upload",
    meta: Annotated[str | None, Form(description="JSON object of metadata strings")] = None,
    wait: Annotated[bool, Form(description="Return when ingestion has finished")] = False,
) -> JobOut:
    """Upload one document and ingest it as the caller (its write entitlements apply); returns
    the ingestion job (finished when ``wait``)."""
    svc = service(request)
    await svc.platform.require(principal, "ingester", "documents.upload")  # before the body is read
    try:
        parse_instant(published, "published", bare_date="start")
    except QueryError as exc:
        raise HTTPException(422, str(exc)) from exc
    # redacted before it is cleaned (cleaning would break "password: x" apart): the namespace goes into the
    # source key, the job record and the audit log
    namespace = "/".join(safe_name(redact_name(p)[0]) for p in source.split("/") if p.strip()) or "upload"
    upload = svc.new_upload(
        file.filename or "upload",
        acl=_acl(acl),
        source=namespace,
        published=published or None,
        doc_type=doc_type or None,
        meta=_meta(meta),
    )
    upload.folder.mkdir(parents=True, mode=0o700)
    size = 0
    try:
        with upload.data_path.open("wb") as out:
            while chunk := await file.read(1024 * 1024):
                size += len(chunk)
                if size > svc.config.max_upload_bytes:
                    raise HTTPException(413, f"the upload is over the {svc.config.max_upload_bytes:,}-byte limit")
                await asyncio.to_thread(out.write, chunk)
    except BaseException:
        shutil.rmtree(upload.folder, ignore_errors=True)
        raise
    done = svc.submit_upload(principal, upload)
    filters = {"acl": sorted(upload.acl), "source": namespace, "bytes": size}
    await svc.platform.record(principal, "documents.upload", target=upload.job_id, filters=filters, detail=upload.name)
    if wait or svc.bus is not None:
        await done  # in process: the ingestion itself; with a bus: the job recorded and published
    if wait and svc.bus is not None:
        await svc.finished(upload.job_id)  # a worker ingests it; the request timeout bounds the wait
    return await _job(svc, principal, upload.job_id)


async def _job(svc: Service, principal: Who, job_id: str) -> JobOut:
    return _job_out(job_id, await svc.platform.job(principal, job_id))


def _job_out(job_id: str, row: dict[str, object]) -> JobOut:
    report = row["report"]
    files = report.get("files", []) if isinstance(report, dict) else []
    asked = row.get("request")
    by = str(asked.get("submitted_by") or "") if isinstance(asked, dict) else ""
    return JobOut.model_validate({**row, "job_id": job_id, "files": files, "submitted_by": by})


@router.get("/jobs", response_model=JobList, tags=["documents"])
async def list_jobs(request: Request, principal: Who, limit: Annotated[int, Query(ge=1, le=500)] = 50) -> JobList:
    """The newest upload jobs the caller may follow (ingesters: their own; admins: everyone's),
    each with its per-file outcome and, for a failed file, the reason."""
    rows = await service(request).platform.jobs(principal, limit)
    return JobList(jobs=[_job_out(str(r["id"]), r) for r in rows])


@router.get("/jobs/{job_id}", response_model=JobOut, tags=["documents"])
async def get_job(job_id: str, request: Request, principal: Who) -> JobOut:
    """An ingestion job and its per-file outcome (404 unless the caller submitted it, or is an admin)."""
    return await _job(service(request), principal, job_id)


@router.get("/audit", tags=["audit"], response_class=StreamingResponse)
async def read_audit(
    request: Request,
    principal: Who,
    after_seq: Annotated[int, Query(ge=0, le=2**62, description="Records after this seq (0: from the first).")] = 0,
    limit: Annotated[int, Query(ge=1, le=100_000)] = 1000,
) -> StreamingResponse:
    """Audit records (admins) with ``seq > after_seq``, oldest first, as JSON lines, streamed.

    Page forward with the last ``seq`` you received as the next ``after_seq``: no record is
    skipped, and records appended meanwhile come in a later page."""
    records = await service(request).platform.audit_records(principal, after_seq, limit)

    async def lines() -> AsyncIterator[bytes]:
        async for record in records:
            yield (json.dumps(record.as_dict(), sort_keys=True, default=str) + "\n").encode()

    return StreamingResponse(lines(), media_type="application/x-ndjson")
