"""Build small document versions for tests, through the real chunker and a real embedder."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from strongroom.embed import Embedder, cache_key
from strongroom.ingest.chunking import chunk_pages, make_chunks
from strongroom.store.base import NewVersion
from strongroom.text import dense_text
from strongroom.types import DocumentVersion, Page, document_id_for, frozen_meta, sha256_hex

__all__ = ["make_version"]


def make_version(
    embedder: Embedder,
    source: str,
    pages: Sequence[str],
    *,
    acl: Sequence[str] = ("public",),
    published: datetime = datetime(2024, 1, 1, tzinfo=UTC),
    ingested: datetime | None = None,
    doc_type: str = "document",
    meta: Mapping[str, str] | None = None,
    chunk_tokens: int = 64,
) -> NewVersion:
    """A version of ``source`` whose id is the hash of its text (and ACL, so ACL tests differ)."""
    page_objs = tuple(Page(i, text) for i, text in enumerate(pages, start=1))
    version_id = sha256_hex(("\f".join(pages) + "|" + ",".join(sorted(acl)) + source).encode())
    spans = chunk_pages(page_objs, chunk_tokens)
    chunks = make_chunks(version_id, page_objs, spans, source)
    texts = [dense_text(c) for c in chunks]
    version = DocumentVersion(
        id=version_id,
        document_id=document_id_for(source),
        source=source,
        title=source,
        media_type="text/plain",
        doc_type=doc_type,
        acl=frozenset(acl),
        published_at=published,
        ingested_at=ingested or published,
        size=sum(len(p) for p in pages),
        pages=len(pages),
        metadata=frozen_meta(meta),
    )
    return NewVersion(
        version, page_objs, chunks, embedder.embed(texts), tuple(cache_key(embedder.model_id, t) for t in texts)
    )
