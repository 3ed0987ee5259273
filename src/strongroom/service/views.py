"""The application layer's results as plain records: what ``strongroom ... --json`` prints.

Every value is JSON as it stands (strings, numbers, lists, mappings; times in ISO 8601), so
an entry point prints or returns a record without knowing the vocabulary behind it. The
HTTP API keeps its own wire schemas (:mod:`strongroom.api.schemas`).

    >>> result = platform.search(ana, SearchRequest(query="total net sales"))   # doctest: +SKIP
    >>> json.dumps(search_record("total net sales", result))                    # doctest: +SKIP
"""

from __future__ import annotations

from datetime import datetime

from strongroom.audit import VerifyReport
from strongroom.auth.apikeys import ApiKey
from strongroom.service.requests import AclChange, DocumentView, KeyCreated, PageView, SearchResult
from strongroom.types import Answer, Citation, DocumentVersion, Hit

__all__ = [
    "acl_record",
    "answer_record",
    "citation_record",
    "document_record",
    "document_row",
    "hit_record",
    "key_record",
    "labels",
    "new_key_record",
    "page_record",
    "search_record",
    "verify_record",
    "version_record",
]

Record = dict[str, object]


def hit_record(hit: Hit) -> Record:
    """One passage found: where it is (document, version, page, characters), its score and text."""
    c, v = hit.chunk, hit.version
    return {
        "chunk_id": c.id, "score": round(hit.score, 6), "document": v.name, "source": v.source,
        "document_id": v.document_id, "version_id": v.id, "page": c.page, "char_start": c.char_start,
        "char_end": c.char_end, "title": v.title, "doc_type": v.doc_type, "published_at": v.published_at.isoformat(),
        "ingested_at": v.ingested_at.isoformat(), "keyword_rank": hit.keyword_rank, "dense_rank": hit.dense_rank,
        "text": c.text,
    }  # fmt: skip


def search_record(query: str, result: SearchResult) -> Record:
    """The query, its two clocks (as asked and as applied) and its hits."""
    return {"query": query, **result.clocks.describe(), "hits": [hit_record(h) for h in result.hits]}


def labels(answer: Answer) -> dict[str, tuple[str, str]]:
    """Document type and sensitivity of each version an answer retrieved, to show beside its citations."""
    return {
        h.version.id: (h.version.doc_type, h.version.metadata.get("sensitivity", "unclassified")) for h in answer.hits
    }


def answer_record(answer: Answer) -> Record:
    """An answer: its claims, each with citations (labelled with type and sensitivity), what
    was retrieved and what wrote it."""
    kinds = labels(answer)
    return {
        "question": answer.question,
        "found": answer.found,
        "answer": answer.text,
        "generator": answer.generator,
        "claims": [
            {"text": c.text, "citations": [citation_record(x, *kinds.get(x.version_id, ("", ""))) for x in c.citations]}
            for c in answer.claims
        ],
        "retrieved": [h.chunk.id for h in answer.hits],
        "metadata": dict(answer.metadata),
    }


def citation_record(c: Citation, doc_type: str = "", sensitivity: str = "") -> Record:
    return {
        "document": c.name, "source": c.source, "document_id": c.document_id, "version_id": c.version_id,
        "page": c.page, "char_start": c.char_start, "char_end": c.char_end, "quote": c.quote,
        "doc_type": doc_type, "sensitivity": sensitivity,
    }  # fmt: skip


def version_record(v: DocumentVersion) -> Record:
    return {
        "document": v.name, "document_id": v.document_id, "version_id": v.id, "title": v.title, "pages": v.pages,
        "doc_type": v.doc_type, "acl": sorted(v.acl), "published_at": v.published_at.isoformat(),
        "ingested_at": v.ingested_at.isoformat(), "metadata": dict(v.metadata),
    }  # fmt: skip


def document_row(doc: DocumentView) -> Record:
    """A document in a list: its current version, and how many versions the reader may see."""
    return version_record(doc.current) | {"versions": len(doc.versions)}


def document_record(doc: DocumentView) -> Record:
    """A document with every version of it the reader may see, newest first."""
    return {
        "document_id": doc.document_id, "source": doc.source, "title": doc.title,
        "current": version_record(doc.current), "versions": [version_record(v) for v in doc.versions],
    }  # fmt: skip


def page_record(shown: PageView) -> Record:
    return {**version_record(shown.version), "page": shown.page, "text": shown.text}


def acl_record(change: AclChange) -> Record:
    return {"document_id": change.document_id, "before": sorted(change.before), "after": sorted(change.after),
            "versions": list(change.versions)}  # fmt: skip


def key_record(key: ApiKey, now: datetime) -> Record:
    """An API key as listed (never its secret), with its status at ``now``."""
    return {
        "id": key.id, "owner": key.owner, "groups": sorted(key.groups), "created_at": key.created_at.isoformat(),
        "expires_at": key.expires_at.isoformat() if key.expires_at else None, "status": key.status(now),
    }  # fmt: skip


def new_key_record(key: KeyCreated) -> Record:
    """A key just made, with its secret: shown this once."""
    expiry = key.expires_at.isoformat() if key.expires_at else None
    return {"id": key.id, "owner": key.owner, "groups": sorted(key.groups), "expires_at": expiry, "key": key.secret}


def verify_record(report: VerifyReport) -> Record:
    """What checking the audit log found: every problem with its record number and kind."""
    return {
        "records": report.records, "ok": report.ok, "head": {"seq": report.head.seq, "hash": report.head.hash},
        "anchored": report.anchored, "checkpoints": report.checkpoints, "key_ids": list(report.key_ids),
        "erased": report.erased,
        "problems": [{"seq": p.seq, "kind": p.kind, "message": p.message} for p in report.problems],
    }  # fmt: skip
