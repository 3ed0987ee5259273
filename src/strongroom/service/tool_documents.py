"""The agent's document tools: passages and term sheets (a filing's table rows are in
:mod:`~strongroom.service.tool_tables`), each read through the application layer's entitled
operations at the run's clocks (:class:`ToolContext`), so a run sees exactly what its
principal may read at those times.

Each tool returns a :class:`Done`: the content the model reads (bounded), the evidence an
answer may cite, and what its audit record says (counts and ids, never document text).
"""

from __future__ import annotations

from strongroom.agent.base import Evidence, ToolOutput
from strongroom.ingest.understand.termsheet import select_term_sheets
from strongroom.service.records import chunk_refs
from strongroom.service.requests import DocumentsRequest, SearchRequest
from strongroom.service.tool_args import SearchArgs, TermSheetArgs
from strongroom.service.tool_backends import ToolContext
from strongroom.service.tool_output import Done, clearance_ref, clip, fit, numbers_in
from strongroom.types import DocumentVersion, Hit

__all__ = ["Done", "search_documents", "term_sheet"]

_PASSAGE_CHARS = 1_500  # of one passage, at most (fewer when many are asked for)
_EVIDENCE_CHARS = 8_000
_MAX_SHEETS = 20
_MAX_DOCUMENTS = 10_000  # read for term sheets, at most


# -- search_documents ---------------------------------------------------------------------


def _page_ref(hit: Hit) -> dict[str, object]:
    c, v = hit.chunk, hit.version
    return {
        **clearance_ref(v),
        "document_id": v.document_id,
        "version_id": v.id,
        "source": v.source,
        "page": c.page,
        "start": c.char_start,
        "end": c.char_end,
    }


def search_documents(ctx: ToolContext, args: SearchArgs) -> Done:
    """The top ``k`` passages the principal may read at the run's clocks."""
    request = SearchRequest(
        query=args.query, k=args.k, doc_types=frozenset(args.doc_types), as_of=ctx.as_of, known_at=ctx.known_at
    )
    hits = ctx.backend.search(ctx.principal, request).hits
    budget = max(300, min(_PASSAGE_CHARS, 6_000 // max(1, len(hits))))
    passages: list[object] = []
    for n, hit in enumerate(hits, start=1):
        text, cut = clip(hit.chunk.text, budget)
        title = hit.version.title
        published = hit.version.published_at.date().isoformat()
        passages.append({"n": n, **_page_ref(hit), "title": title, "published": published, "text": text, "cut": cut})
    hint = "ask for fewer (k) or search more narrowly"
    content, kept = fit({"passages": passages, **ctx.clocks()}, "passages", "passages", hint)
    shown = hits[:kept]
    evidence = tuple(
        Evidence("page", _page_ref(h), clip(h.chunk.text, _EVIDENCE_CHARS)[0], numbers_in(h.chunk.text)) for h in shown
    )
    return Done(ToolOutput(content, evidence), f"{len(hits)} passages", chunk_refs(hits))


# -- term_sheet -----------------------------------------------------------------------------


def _visible_versions(ctx: ToolContext) -> list[DocumentVersion]:
    """The current version of every document the principal may read at the run's clocks."""
    out: list[DocumentVersion] = []
    offset = 0
    while offset < _MAX_DOCUMENTS:
        request = DocumentsRequest(as_of=ctx.as_of, known_at=ctx.known_at, limit=1000, offset=offset)
        docs = ctx.backend.documents(ctx.principal, request)
        out.extend(d.current for d in docs)
        if len(docs) < 1000:
            break
        offset += 1000
    return out


def _named(version: DocumentVersion, name: str) -> bool:
    wanted = name.lower()
    if wanted in version.name.lower() or wanted in version.title.lower():
        return True
    return len(name) >= 8 and (version.id.startswith(name) or version.document_id.startswith(name))


def term_sheet(ctx: ToolContext, args: TermSheetArgs) -> Done:
    """The stored term sheets the principal may read at the run's clocks, with their fields."""
    versions = [v for v in _visible_versions(ctx) if not args.name or _named(v, args.name)]
    by_id = {v.id: v for v in versions}
    rows = select_term_sheets(versions, maturing_before=args.maturing_before or None)
    if args.underlying:  # a part of an underlying's name is enough ("Apple" finds "Apple Inc.")
        wanted = args.underlying.lower()
        rows = [r for r in rows if any(wanted in u for u in r.get("underlying", "").lower().split("; "))]
    sheets: list[object] = []
    evidence: list[Evidence] = []
    for row in rows[:_MAX_SHEETS]:
        fields = {k: v for k, v in row.items() if k not in ("document", "version_id")}
        version = by_id[row["version_id"]]
        ref = {"document_id": version.document_id, "version_id": version.id, "document": row["document"]}
        sheets.append({**ref, "title": version.title, "fields": fields})
        evidence.extend(
            Evidence("term_sheet", {**ref, **clearance_ref(version), "field": k}, f"{k}: {v}", numbers_in(v))
            for k, v in fields.items()
        )
    content: dict[str, object] = {"term_sheets": sheets, "matched": len(rows), **ctx.clocks()}
    if len(rows) > _MAX_SHEETS:
        content["cut"] = (
            f"only the first {_MAX_SHEETS} of {len(rows)} term sheets are shown; filter by name or underlying"
        )
    content, kept = fit(content, "term_sheets", "term sheets", "filter by name, underlying or maturing_before")
    ids = {str(row["version_id"]) for row in rows[:kept]}
    shown = tuple(e for e in evidence if e.ref["version_id"] in ids)
    facts: dict[str, object] = {"versions": sorted(ids)}
    return Done(ToolOutput(content, shown), f"{len(rows)} term sheets", facts=facts)
