"""The Store protocol: what retrieval and ingestion need from any backend.

Four methods. Everything a search may see is decided by a :class:`~strongroom.types.Scope`
*inside* the backend's search (entitlements and as-of are pre-filters, never post-filters),
and a version is written atomically with its pages, chunks and vectors.

>>> from strongroom.store.sqlite import SqliteStore
>>> store = SqliteStore.open(Path("/tmp/sr-doc"), dim=64)   # doctest: +SKIP
>>> store.keyword_search("net sales", scope, k=5)          # doctest: +SKIP
[('3f1c…', 7.42), ...]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from strongroom.types import Chunk, DocumentVersion, Page, Scope

__all__ = ["TOMBSTONE", "Catalog", "KeywordUnit", "NewVersion", "ScoredId", "Store"]

ScoredId = tuple[str, float]
#: when deleted bytes are ingested again, the deleted version's row keeps its history under
#: the id ``id + TOMBSTONE + seq``, so the new version can take the content-addressed id
TOMBSTONE = ":deleted:"
#: ``chunk``: BM25 over whole chunks. ``line``: BM25 over each chunk's table rows and
#: headings (with the chunk's context); a chunk ranks by its best line.
KeywordUnit = Literal["chunk", "line"]


@dataclass(frozen=True)
class NewVersion:
    """Everything that is written in one transaction for one document version."""

    version: DocumentVersion
    pages: tuple[Page, ...]
    chunks: tuple[Chunk, ...]
    vectors: npt.NDArray[np.float32]
    embed_keys: tuple[str, ...]


@runtime_checkable
class Store(Protocol):
    """Catalog + keyword index + vector index behind one small interface.

    A backend whose index calls each check for other writers may also offer ``pinned()``, a
    context manager in which they share one check; ``retrieve.search`` uses it when present.
    """

    def write(self, new: NewVersion) -> bool:
        """Store a version atomically. False (and no change) if that version id exists."""
        ...

    def keyword_search(self, text: str, scope: Scope, k: int, unit: KeywordUnit = "chunk") -> list[ScoredId]:
        """Best ``k`` chunk ids by BM25 among the chunks ``scope`` admits, at the given unit."""
        ...

    def vector_search(self, vector: npt.NDArray[np.float32], scope: Scope, k: int) -> list[ScoredId]:
        """Best ``k`` chunk ids by cosine similarity among the chunks ``scope`` admits."""
        ...

    def fetch(self, chunk_ids: Sequence[str]) -> list[tuple[Chunk, DocumentVersion]]:
        """Chunks with their versions, in the order asked; unknown ids are left out."""
        ...

    def versions_of(self, chunk_ids: Sequence[str]) -> dict[str, DocumentVersion]:
        """The version of each chunk, without the chunks' text (cheap for many candidates)."""
        ...


@runtime_checkable
class Catalog(Store, Protocol):
    """A Store with the catalog around it, as ingestion, the CLI and the API use it."""

    def has_version(self, version_id: str) -> bool:
        """Whether a live (not deleted) version has this id."""
        ...

    def version(self, version_id: str) -> DocumentVersion | None:
        """The live version with this id, or None."""
        ...

    def get_vectors(self, keys: Sequence[str]) -> dict[str, npt.NDArray[np.float32]]:
        """The embedding cache: vectors this store's model already computed, by cache key."""
        ...

    def versions(self, document_id: str | None = None) -> list[DocumentVersion]:
        """Live versions (of one document, or all), oldest write first. Not filtered by
        entitlement or time: the application layer decides what a principal sees."""
        ...

    def page_text(self, version_id: str, page: int) -> str | None:
        """The stored text of one page, or None."""
        ...

    def counts(self) -> dict[str, int]:
        """How many documents, versions, chunks and pages the store holds."""
        ...

    def set_acl(self, document_id: str, acl: frozenset[str]) -> list[str]:
        """Set who may read every live version of a document; returns the version ids changed."""
        ...

    def record_job(
        self,
        job_id: str,
        started: datetime,
        status: str,
        request: dict[str, object],
        report: dict[str, object] | None = None,
    ) -> None: ...
    def get_job(self, job_id: str) -> dict[str, object] | None: ...
    def delete_document(self, document_id: str) -> list[str]: ...
    def save_indexes(self) -> None: ...
    def close(self) -> None: ...
