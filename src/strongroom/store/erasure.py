"""What both store backends share when they erase an identifier: which rows change and how
(:class:`Erasure`: the rewrite of a version row, a document's source, a page, and a chunk whose
page was scrubbed) and what is counted (pure; the backends do the I/O).

A chunk is a span of its page, so when a page is scrubbed the chunks on it move: each chunk's
new span is where its old start and end fall in the scrubbed page, and its text is that slice
of the scrubbed page (so span and text agree and, being part of a page with no occurrence,
the slice holds none either). A chunk whose text is not its page's slice (another writer's
rows) is scrubbed on its own.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, replace

from strongroom.store.base import TOMBSTONE, EraseCount, TextMatcher
from strongroom.types import Chunk

__all__ = ["ChunkRow", "Erasure", "VersionFields", "blank_version", "chunk_of", "rewrite_chunk", "scrub_version"]


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


class Erasure:
    """One erasure's decisions, row by row, as the backend reads them: what each row becomes
    (None: it stays), the occurrences found per table, the versions changed, and the held
    documents (in ``keep``) whose rows were left alone."""

    def __init__(self, needles: TextMatcher, keep: Collection[str]) -> None:
        self.needles, self.keep = needles, keep
        self.places = dict.fromkeys(("versions", "documents", "pages", "chunks", "jobs"), 0)
        self.held: set[str] = set()
        self.changed: set[str] = set()

    def _kept(self, document_id: str | None) -> bool:
        if document_id is None or document_id not in self.keep:
            return False
        self.held.add(document_id)
        return True

    def version(self, version_id: str, document_id: str, fields: VersionFields) -> VersionFields | None:
        n = fields.count(self.needles)
        if not n or self._kept(document_id):
            return None
        self.places["versions"] += n
        self.changed.add(version_id.split(TOMBSTONE)[0])
        return scrub_version(fields, self.needles)

    def document(self, document_id: str, source: str) -> str | None:
        n = self.needles.count(source)
        if not n or document_id in self.keep:
            return None
        self.places["documents"] += n
        return f"{self.needles.scrub(source)} ({document_id})"  # the source is unique: the id keeps them apart

    def pages(
        self, rows: Iterable[tuple[str, int, str]], document_of: Mapping[str, str]
    ) -> dict[tuple[str, int], tuple[str, str]]:
        """The pages that change: (version id, page number) -> (old text, scrubbed text)."""
        pages: dict[tuple[str, int], tuple[str, str]] = {}
        for version_id, number, text in rows:
            n = self.needles.count(str(text))
            if not n or self._kept(document_of.get(version_id)):
                continue
            pages[(version_id, int(number))] = (str(text), self.needles.scrub(str(text)))
            self.places["pages"] += n
            self.changed.add(version_id)
        return pages

    def chunk(
        self, row: ChunkRow, document_id: str, pages: Mapping[tuple[str, int], tuple[str, str]]
    ) -> tuple[ChunkRow, bool] | None:
        """The chunk after erasure and whether its text or context changed (see :func:`rewrite_chunk`)."""
        page = pages.get((row.version_id, row.page))
        n = self.needles.count(row.text) + self.needles.count(row.context)
        if (page is None and not n) or self._kept(document_id):
            return None
        new_row, text_changed = rewrite_chunk(row, self.needles, page)
        self.places["chunks"] += n
        if text_changed:
            self.changed.add(row.version_id)
        return new_row, text_changed

    def result(self) -> EraseCount:
        return EraseCount(self.places, tuple(sorted(self.changed)), tuple(sorted(self.held)))
