"""What both store backends share when they erase an identifier: the rewrite of a version row
and of a chunk whose page was scrubbed (pure; the backends do the I/O).

A chunk is a span of its page, so when a page is scrubbed the chunks on it move: each chunk's
new span is where its old start and end fall in the scrubbed page, and its text is that slice
of the scrubbed page (so span and text agree and, being part of a page with no occurrence,
the slice holds none either). A chunk whose text is not its page's slice (another writer's
rows) is scrubbed on its own.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from strongroom.store.base import TextMatcher
from strongroom.types import Chunk

__all__ = ["ChunkRow", "VersionFields", "blank_version", "chunk_of", "rewrite_chunk", "scrub_version"]


@dataclass(frozen=True)
class VersionFields:
    """The text a version row carries besides its pages: title, source, metadata (JSON)."""

    title: str
    source: str
    metadata: dict[str, object]

    def count(self, needles: TextMatcher) -> int:
        return needles.count(self.title) + needles.count(self.source) + needles.count_value(self.metadata)


def scrub_version(fields: VersionFields, needles: TextMatcher) -> VersionFields:
    scrubbed = needles.scrub_value(fields.metadata)
    assert isinstance(scrubbed, dict)
    return VersionFields(needles.scrub(fields.title), needles.scrub(fields.source), scrubbed)


def blank_version(document_id: str) -> VersionFields:
    """What a version row of an erased document keeps: that it existed, not what it said."""
    return VersionFields("[erased]", f"[erased]/{document_id}", {"erased": "true"})


@dataclass(frozen=True)
class ChunkRow:
    key: int  # the backend's row id
    id: str
    version_id: str
    ordinal: int
    page: int
    char_start: int
    char_end: int
    text: str
    context: str
    embed_key: str


def rewrite_chunk(row: ChunkRow, needles: TextMatcher, page: tuple[str, str] | None) -> tuple[ChunkRow, bool]:
    """The chunk after erasure, and whether its text or context changed (it needs a new vector).
    ``page``: (old text, scrubbed text) of its page when that page changed."""
    text, start, end = row.text, row.char_start, row.char_end
    if page is not None and page[0][start:end] == text:
        old, new = page
        start = min(len(needles.scrub(old[:start])), len(new))
        end = max(start, min(len(needles.scrub(old[:end])), len(new)))
        text = new[start:end]
    else:
        text = needles.scrub(text)
    context = needles.scrub(row.context)
    out = replace(row, char_start=start, char_end=end, text=text, context=context)
    return out, (text != row.text or context != row.context)


def chunk_of(row: ChunkRow) -> Chunk:
    return Chunk(row.id, row.version_id, row.ordinal, row.page, row.char_start, row.char_end, row.text, row.context)
