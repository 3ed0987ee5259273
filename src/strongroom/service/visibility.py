"""Which documents and versions a scope sees on the catalog paths (lists, versions, pages).

The same rules as the index search (:mod:`strongroom.store.scope`), over a list of versions:

1. A version is knowable when ``published_at <= as_of`` and ``ingested_at <= known_at``
   (both clamped to now).
2. Per document, the current version is the knowable one with the latest ``published_at``
   (then ``ingested_at``, then the later write).
3. A document is visible only if the principal may read its current version (and it passes
   the type, metadata and ``published_from`` filters); it then sees the knowable versions
   it may read, newest first. It never falls back to an older version it may read when the
   current one is closed to it.

Pure: a property test holds it to the index search's answers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from strongroom.types import DocumentVersion, Scope

__all__ = ["Visible", "governing", "newest", "visible_documents"]


@dataclass(frozen=True)
class Visible:
    """One document as a scope sees it: its current version and the history it may read."""

    current: DocumentVersion
    history: tuple[DocumentVersion, ...]


def newest(item: tuple[int, DocumentVersion]) -> tuple[float, float, int]:
    """The sort key of a (write order, version) pair: the current version sorts last."""
    i, v = item
    return (v.published_at.timestamp(), v.ingested_at.timestamp(), i)


def visible_documents(
    versions: Sequence[DocumentVersion], scope: Scope, now: float | None = None
) -> dict[str, Visible]:
    """Per document id, what ``scope`` sees. ``versions``: live versions in write order."""
    published, ingested = scope.instants(now)
    by_doc: dict[str, list[tuple[int, DocumentVersion]]] = {}
    for i, v in enumerate(versions):
        if v.published_at.timestamp() <= published and v.ingested_at.timestamp() <= ingested:
            by_doc.setdefault(v.document_id, []).append((i, v))
    out: dict[str, Visible] = {}
    for document_id, knowable in by_doc.items():
        knowable.sort(key=newest, reverse=True)
        current = knowable[0][1]
        if scope.groups.isdisjoint(current.acl):
            continue
        if scope.doc_types and current.doc_type not in scope.doc_types:
            continue
        if any(current.metadata.get(key) != value for key, value in scope.filters.items()):
            continue
        if current.published_at.timestamp() < scope.published_floor():
            continue
        history = tuple(v for _, v in knowable if not scope.groups.isdisjoint(v.acl))
        out[document_id] = Visible(current, history)
    return out


def governing(versions: Sequence[DocumentVersion], groups: frozenset[str], now: float) -> DocumentVersion | None:
    """The version whose ACL governs a write to a document: its current version at ``now`` (or,
    when every version is still to come, the first of them), provided ``groups`` may read it and
    every version published to supersede it. None when there is no version or ``groups`` may not
    read them all: whoever writes to a document must be entitled to what it is and will be."""
    ordered = sorted(enumerate(versions), key=newest, reverse=True)
    for _, v in ordered:
        if groups.isdisjoint(v.acl):
            return None
        if v.published_at.timestamp() <= now:  # the current one: older versions are superseded
            return v
    return ordered[-1][1] if ordered else None
