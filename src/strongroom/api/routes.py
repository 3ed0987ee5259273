"""Content routes under ``/v1``: search, ask, documents, jobs, audit.

Entitlements are enforced on every path that returns content. Search and ask filter inside
the index (the scope carries the caller's groups); document and job routes answer 404,
exactly as for an id that does not exist, when the caller may not read the document.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time
import uuid
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, HTTPException, Query, Request, UploadFile

from strongroom.api.deps import audit, need, service
from strongroom.api.schemas import (
    AnswerOut,
    AskRequest,
    DocumentList,
    DocumentOut,
    HitOut,
    JobOut,
    PageOut,
    SearchOut,
    SearchRequest,
    VersionOut,
)
from strongroom.api.service import Service, UploadRequest, current_by_document, safe_name
from strongroom.audit import answer_hash
from strongroom.auth import Caller
from strongroom.config import DEFAULT_ACL
from strongroom.errors import QueryError
from strongroom.rag import ExtractiveGenerator, answer
from strongroom.retrieve import search
from strongroom.types import Answer, DocumentVersion, Hit, Scope

__all__ = ["router"]

router = APIRouter(prefix="/v1")
_NOT_FOUND = "no such document"
Reader = Annotated[Caller, Depends(need("reader", "read"))]


def _scope(caller: Caller, as_of: datetime | None, doc_types: list[str], filters: dict[str, str]) -> Scope:
    return Scope.for_principal(caller.principal, as_of=as_of, doc_types=frozenset(doc_types), filters=filters)


def _k(svc: Service, k: int) -> int:
    if k > svc.config.max_k:
        raise HTTPException(422, f"k is at most {svc.config.max_k}")
    return k


def _entitled(caller: Caller, hits: list[Hit]) -> list[Hit]:
    # the store already filtered by entitlement; this is a second lock on the same door
    return [h for h in hits if caller.may_read(h.version.acl)]


def _filters(body: SearchRequest | AskRequest) -> dict[str, object]:
    return {
        "k": body.k,
        "as_of": body.as_of.isoformat() if body.as_of else None,
        "doc_types": body.doc_types,
        "filters": body.filters,
    }


@router.post("/search", response_model=SearchOut, tags=["retrieval"])
async def search_route(body: SearchRequest, request: Request, caller: Reader) -> SearchOut:
    """The top ``k`` passages the caller may read, with where each one is."""
    svc = service(request)
    k = _k(svc, body.k)
    scope = _scope(caller, body.as_of, body.doc_types, body.filters)
    started = time.perf_counter()
    try:
        embedder = await svc.query_embedder(body.query)
        hits = await svc.on_store(search, svc.runtime.store, embedder, body.query, scope, k)
    except QueryError as exc:
        await audit(
            request, caller, "search", outcome="error", query=body.query, filters=_filters(body), detail=str(exc)
        )
        raise HTTPException(422, str(exc)) from exc
    svc.metrics.retrieval.observe(time.perf_counter() - started)
    hits = _entitled(caller, hits)
    await audit(
        request,
        caller,
        "search",
        query=body.query,
        filters=_filters(body),
        chunks=tuple((h.chunk.id, h.version.id) for h in hits),
    )
    return SearchOut(hits=[HitOut.of(h) for h in hits])


async def run_answer(request: Request, caller: Caller, question: str, scope: Scope, k: int) -> Answer:
    """Answer from what the caller may read; the one function ask and chat completions share."""
    svc = service(request)
    started = time.perf_counter()
    try:
        embedder = await svc.query_embedder(question)
        result: Answer = await svc.on_store(
            lambda: answer(question, scope, svc.runtime.store, embedder, generator=ExtractiveGenerator(), k=k)
        )
    except QueryError as exc:
        raise HTTPException(422, str(exc)) from exc
    svc.metrics.retrieval.observe(time.perf_counter() - started)
    if any(not caller.may_read(h.version.acl) for h in result.hits):
        raise HTTPException(500, "internal error")  # never hand out what the store should have filtered
    return result


@router.post("/ask", response_model=AnswerOut, tags=["retrieval"])
async def ask_route(body: AskRequest, request: Request, caller: Reader) -> AnswerOut:
    """An answer quoted from the documents the caller may read, each claim with citations."""
    svc = service(request)
    scope = _scope(caller, body.as_of, body.doc_types, body.filters)
    try:
        result = await run_answer(request, caller, body.question, scope, _k(svc, body.k))
    except HTTPException as exc:
        await audit(
            request, caller, "ask", outcome="error", query=body.question, filters=_filters(body), detail=str(exc.detail)
        )
        raise
    await audit(
        request,
        caller,
        "ask",
        query=body.question,
        filters=_filters(body),
        chunks=tuple((h.chunk.id, h.version.id) for h in result.hits),
        generator=result.generator,
        answer_sha256=answer_hash(result.text),
        detail="found" if result.found else "not found",
    )
    return AnswerOut.of(result)


# -- documents ---------------------------------------------------------------------------


async def _visible(svc: Service, caller: Caller) -> tuple[dict[str, DocumentVersion], list[DocumentVersion]]:
    versions = await svc.on_store(svc.runtime.store.versions)
    current = {d: v for d, v in current_by_document(versions).items() if caller.may_read(v.acl)}
    return current, versions


def _document(current: DocumentVersion, versions: list[DocumentVersion], caller: Caller) -> DocumentOut:
    mine = [VersionOut.of(v) for v in versions if v.document_id == current.document_id and caller.may_read(v.acl)]
    return DocumentOut(
        document_id=current.document_id,
        source=current.source,
        title=current.title,
        current=VersionOut.of(current),
        versions=mine,
    )


@router.get("/documents", response_model=DocumentList, tags=["documents"])
async def list_documents(
    request: Request,
    caller: Reader,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> DocumentList:
    """The documents whose current version the caller may read."""
    current, _ = await _visible(service(request), caller)
    page = sorted(current.values(), key=lambda v: (v.source, v.document_id))[offset : offset + limit]
    await audit(
        request, caller, "documents.list", filters={"limit": limit, "offset": offset}, detail=f"{len(page)} documents"
    )
    return DocumentList(
        documents=[
            DocumentOut(document_id=v.document_id, source=v.source, title=v.title, current=VersionOut.of(v))
            for v in page
        ]
    )


@router.get("/documents/{document_id}", response_model=DocumentOut, tags=["documents"])
async def get_document(document_id: str, request: Request, caller: Reader) -> DocumentOut:
    """A document and the versions of it the caller may read (404 if it may read none)."""
    current, versions = await _visible(service(request), caller)
    doc = current.get(document_id)
    await audit(request, caller, "documents.get", target=document_id, outcome="ok" if doc else "not_found")
    if doc is None:
        raise HTTPException(404, _NOT_FOUND)
    return _document(doc, versions, caller)


@router.get("/documents/{document_id}/versions/{version_id}/pages/{page}", response_model=PageOut, tags=["documents"])
async def get_page(document_id: str, version_id: str, page: int, request: Request, caller: Reader) -> PageOut:
    """The text of one page of one version: what a citation points into."""
    svc = service(request)
    current, versions = await _visible(svc, caller)
    version = next((v for v in versions if v.id == version_id and v.document_id == document_id), None)
    text = None
    if document_id in current and version is not None and caller.may_read(version.acl):
        text = await svc.on_store(svc.runtime.store.page_text, version_id, page)
    await audit(
        request,
        caller,
        "documents.page",
        target=f"{document_id}/{version_id}/{page}",
        outcome="ok" if text is not None else "not_found",
    )
    if text is None:
        raise HTTPException(404, _NOT_FOUND)
    return PageOut(document_id=document_id, version_id=version_id, page=page, text=text)


@router.delete("/documents/{document_id}", tags=["documents"])
async def delete_document(
    document_id: str, request: Request, caller: Annotated[Caller, Depends(need("admin", "documents.delete"))]
) -> dict[str, object]:
    """Delete a document: chunks, pages and vectors go; the audit log keeps that it happened."""
    svc = service(request)
    current, _ = await _visible(svc, caller)
    if document_id not in current:
        await audit(request, caller, "documents.delete", target=document_id, outcome="not_found")
        raise HTTPException(404, _NOT_FOUND)
    deleted = await svc.on_store(svc.runtime.store.delete_document, document_id)
    await audit(request, caller, "documents.delete", target=document_id, detail=f"versions {','.join(deleted)}")
    return {"document_id": document_id, "deleted_versions": deleted}


def _parse_form_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise HTTPException(422, f"published: {value!r} is not an ISO date or datetime") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _parse_meta(value: str | None) -> dict[str, str]:
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
    caller: Annotated[Caller, Depends(need("ingester", "documents.upload"))],
    file: Annotated[UploadFile, File(description="The document (PDF, DOCX, XLSX, HTML, TXT, ...)")],
    acl: Annotated[str, Form(description="Comma-separated groups that may read it")] = DEFAULT_ACL,
    published: Annotated[str | None, Form(description="When it became knowable (ISO)")] = None,
    doc_type: Annotated[str | None, Form()] = None,
    source: Annotated[str, Form(description="Source namespace; with the file name, names the document")] = "upload",
    meta: Annotated[str | None, Form(description="JSON object of metadata strings")] = None,
    wait: Annotated[bool, Form(description="Return when ingestion has finished")] = False,
) -> JobOut:
    """Upload one document and ingest it; returns the ingestion job (finished when ``wait``)."""
    svc = service(request)
    groups = frozenset(g.strip() for g in acl.split(",") if g.strip())
    if not groups:
        raise HTTPException(422, "acl: give at least one group")
    namespace = "/".join(safe_name(p) for p in source.split("/") if p.strip()) or "upload"
    upload = UploadRequest(
        name=safe_name(file.filename or "upload"),
        data_path=svc.upload_dir / uuid.uuid4().hex / safe_name(file.filename or "upload"),
        acl=groups,
        source=namespace,
        published=_parse_form_time(published),
        doc_type=doc_type or None,
        meta=_parse_meta(meta),
    )
    upload.data_path.parent.mkdir(parents=True)
    size = 0
    try:
        with upload.data_path.open("wb") as out:
            while chunk := await file.read(1024 * 1024):
                size += len(chunk)
                if size > svc.config.max_upload_bytes:
                    raise HTTPException(413, f"the upload is over the {svc.config.max_upload_bytes:,}-byte limit")
                await asyncio.to_thread(out.write, chunk)
    except BaseException:
        shutil.rmtree(upload.data_path.parent, ignore_errors=True)
        raise
    job_id, done = svc.submit_upload(caller, upload)
    await audit(
        request,
        caller,
        "documents.upload",
        target=job_id,
        filters={"acl": sorted(groups), "source": namespace},
        detail=upload.name,
    )
    if wait or svc.bus is not None:
        await done  # in process: the ingestion itself; with a bus: the job recorded and published
    if wait and svc.bus is not None:
        await svc.finished(job_id)  # a worker ingests it; the request timeout bounds the wait
    return await _job(svc, caller, job_id) or JobOut(job_id=job_id, status="running", started_at=datetime.now(UTC))


async def _job(svc: Service, caller: Caller, job_id: str) -> JobOut | None:
    row = await svc.on_store(svc.runtime.store.get_job, job_id)
    if row is None:
        return None
    request = row["request"]
    if not isinstance(request, dict):  # not a job this service submitted
        return None
    if request.get("submitted_by") != caller.name and not caller.may_read(request.get("acl", [])):
        return None
    report = row["report"]
    files = report.get("files", []) if isinstance(report, dict) else []
    return JobOut.model_validate({**row, "job_id": job_id, "files": files})


@router.get("/jobs/{job_id}", response_model=JobOut, tags=["documents"])
async def get_job(
    job_id: str, request: Request, caller: Annotated[Caller, Depends(need("ingester", "jobs.get"))]
) -> JobOut:
    """An ingestion job and its per-file outcome (404 unless the caller submitted it or may read it)."""
    job = await _job(service(request), caller, job_id)
    await audit(request, caller, "jobs.get", target=job_id, outcome="ok" if job else "not_found")
    if job is None:
        raise HTTPException(404, "no such job")
    return job


@router.get("/audit", tags=["audit"])
async def read_audit(
    request: Request,
    caller: Annotated[Caller, Depends(need("admin", "audit.read"))],
    since: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> dict[str, object]:
    """Audit records (admins only), oldest first, at or after ``since``."""
    svc = service(request)
    records = await asyncio.to_thread(svc.audit.records, since)
    await audit(request, caller, "audit.read", filters={"since": since.isoformat() if since else None, "limit": limit})
    return {"records": records[-limit:]}
