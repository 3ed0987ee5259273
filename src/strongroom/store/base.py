"""What any store backend offers, as small protocols each reader takes only what it needs.

    Index          keyword_search, vector_search, fetch, versions_of   retrieval's reads
    Writable       write, has_version, get_vectors                     ingestion's writes
    Store          Index + Writable                                    retrieval and ingestion
    VersionCatalog version, versions, page_text                        the catalog's reads
    Curation       set_acl, delete_document                            governed changes
    JobLog         record_job, get_job                                 ingestion jobs
    Lifecycle      counts, save_indexes, close                         operating the store
    Exportable     iter_versions (and model_id, dim)                   reading everything back
    Catalog        all of the above: what a backend class implements
    Pinnable       pinned                                              optional: one index check per search
    Erasable       find_text, erase_text, reclaim                      optional: erasure of an identifier

Everything a search may see is decided by a :class:`~strongroom.types.Scope` *inside* the
backend's search (entitlements and as-of are pre-filters, never post-filters), and a version
is written atomically with its pages, chunks and vectors. Every backend passes
:class:`strongroom.testing.store_contract.StoreContract`.

>>> from strongroom.store.sqlite import SqliteStore
>>> store = SqliteStore.open(Path("/tmp/sr-doc"), dim=64)   # doctest: +SKIP
>>> store.keyword_search("net sales", scope, k=5)          # doctest: +SKIP
[('3f1c…', 7.42), ...]
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from strongroom.types import Chunk, DocumentVersion, Page, Scope

__all__ = [
    "TOMBSTONE",
    "Catalog",
    "Curation",
    "Erasable",
    "EraseCount",
    "Exportable",
    "Index",
    "JobLog",
    "KeywordUnit",
    "Lifecycle",
    "NewVersion",
    "Pinnable",
    "Reembed",
    "ScoredId",
    "Store",
    "TextMatcher",
    "VersionCatalog",
    "Writable",
]

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
class Index(Protocol):
    """What retrieval reads: the two rankings a Scope filters, and the chunks they name.

    >>> ids = [cid for cid, _ in index.keyword_search("net sales", scope, k=5)]  # doctest: +SKIP
    >>> [(chunk.page, version.title) for chunk, version in index.fetch(ids)]     # doctest: +SKIP
    """

    def keyword_search(self, text: str, scope: Scope, k: int, unit: KeywordUnit = "chunk") -> list[ScoredId]:
        """Best ``k`` chunk ids by BM25 among the chunks ``scope`` admits, at the given unit."""
        ...

    def vector_search(self, vector: npt.NDArray[np.float32], scope: Scope, k: int) -> list[ScoredId]:
        """Best ``k`` chunk ids by cosine similarity among the chunks ``scope`` admits."""
        ...

    def fetch(self, chunk_ids: Sequence[str]) -> list[tuple[Chunk, DocumentVersion]]:
        """Chunks with their versions, in the order asked; unknown or deleted ids are left out."""
        ...

    def versions_of(self, chunk_ids: Sequence[str]) -> dict[str, DocumentVersion]:
        """The version of each chunk, without the chunks' text (cheap for many candidates)."""
        ...


@runtime_checkable
class Writable(Protocol):
    """What ingestion writes: whole versions, once each, reusing vectors the store already computed."""

    def write(self, new: NewVersion) -> bool:
        """Store a version atomically. False (and no change) if that version id exists."""
        ...

    def has_version(self, version_id: str) -> bool:
        """Whether a live (not deleted) version has this id (ingestion skips what is stored)."""
        ...

    def get_vectors(self, keys: Sequence[str]) -> dict[str, npt.NDArray[np.float32]]:
        """The embedding cache: vectors this store's model already computed, by cache key
        (see :func:`strongroom.embed.cache_key`); keys it does not hold are left out."""
        ...


@runtime_checkable
class Store(Index, Writable, Protocol):
    """An index a version can be written to: what retrieval and ingestion need together."""


@runtime_checkable
class VersionCatalog(Protocol):
    """The catalog's reads. Not filtered by entitlement or time: the application layer
    (:mod:`strongroom.service.visibility`) decides what a principal sees."""

    def version(self, version_id: str) -> DocumentVersion | None:
        """The live version with this id, or None."""
        ...

    def versions(self, document_id: str | None = None) -> list[DocumentVersion]:
        """Live versions (of one document, or all), oldest write first."""
        ...

    def page_text(self, version_id: str, page: int) -> str | None:
        """The stored text of one page of a live version, or None."""
        ...


@runtime_checkable
class Curation(Protocol):
    """Governed changes to what is stored; the application layer checks who may make them."""

    def set_acl(self, document_id: str, acl: frozenset[str]) -> list[str]:
        """Set who may read every live version of a document; returns the version ids changed."""
        ...

    def delete_document(self, document_id: str) -> list[str]:
        """Delete every live version of a document from every index at once (its history
        stays under tombstone ids, see :data:`TOMBSTONE`); returns the version ids deleted."""
        ...

    def delete_documents(self, document_ids: Sequence[str]) -> dict[str, list[str]]:
        """:meth:`delete_document` for many documents (retention), batched where the backend can;
        returns the version ids deleted per document that had live versions."""
        ...


@runtime_checkable
class JobLog(Protocol):
    """Ingestion jobs: what was asked, when, and how it went."""

    def record_job(
        self,
        job_id: str,
        started: datetime,
        status: str,
        request: dict[str, object],
        report: dict[str, object] | None = None,
    ) -> None:
        """Create or update a job: its status (queued, running, done, failed...), the request
        as submitted and, when it ends, its report."""
        ...

    def get_job(self, job_id: str) -> dict[str, object] | None:
        """A job's ``id``, ``started``, ``status``, ``request`` and ``report``, or None."""
        ...


@runtime_checkable
class Lifecycle(Protocol):
    """Operating a store: what it holds, persisting its in-memory indexes, closing it."""

    def counts(self) -> dict[str, int]:
        """How many documents, versions, chunks and pages the store holds."""
        ...

    def save_indexes(self) -> None:
        """Persist in-memory indexes (a no-op where every index lives in the database)."""
        ...

    def close(self) -> None:
        """Release connections and files; the store is not used afterwards."""
        ...


@runtime_checkable
class Exportable(Protocol):
    """A store read back whole: what a migration copies and a consistency check hashes."""

    model_id: str  # the embedding model its vectors came from
    dim: int

    def iter_versions(self) -> Iterator[NewVersion]:
        """Every live version with its pages, chunks, vectors and cache keys, oldest write first."""
        ...


@runtime_checkable
class Catalog(Store, VersionCatalog, Curation, JobLog, Lifecycle, Exportable, Protocol):
    """Every part together: what a backend class implements, and what the application layer,
    the API and operator commands hold."""


@runtime_checkable
class Pinnable(Protocol):
    """Optional: a backend whose index calls each check for other writers may offer one view
    of its indexes for a whole search; :func:`strongroom.retrieve.search` uses it."""

    def pinned(self) -> AbstractContextManager[None]:
        """Within this, index calls share one check of the catalog."""
        ...


class TextMatcher(Protocol):
    """An identifier's forms, as erasure matches them (:class:`strongroom.governance.erasure.Needles`)."""

    def count(self, text: str) -> int:
        """Occurrences in ``text``."""
        ...

    def scrub(self, text: str) -> str:
        """``text`` with every occurrence replaced by the erasure marker."""
        ...

    def count_value(self, value: object) -> int:
        """Occurrences in every string of a JSON value."""
        ...

    def scrub_value(self, value: object) -> object:
        """A JSON value with every string scrubbed."""
        ...


#: new cache keys and vectors for chunks whose text changed (the store's own embedder, given
#: by the application layer: a store does not embed)
Reembed = Callable[[Sequence[Chunk]], tuple[Sequence[str], npt.NDArray[np.float32]]]


@dataclass(frozen=True)
class EraseCount:
    """What :meth:`Erasable.erase_text` changed: occurrences erased per place (``versions``,
    ``documents``, ``pages``, ``chunks``, ``jobs``), the versions whose content changed (their
    kept originals must go too: their metadata now says ``original: erased``) and the held
    documents that hold the text and were left alone."""

    places: Mapping[str, int]
    versions: tuple[str, ...] = ()
    held: tuple[str, ...] = ()


@runtime_checkable
class Erasable(Protocol):
    """Optional: erasing every occurrence of an identifier from everything the store keeps.

    Every row that holds it is rewritten with the text scrubbed, deleted versions' rows
    included; chunks whose text changed get new vectors and cache keys (the old cache rows,
    keyed by a hash of the old text, go), and every derived index (keyword postings and
    statistics, snapshots) is rebuilt from the scrubbed rows. Documents in ``keep`` (held)
    are not touched. :meth:`reclaim` then makes the old bytes unrecoverable from the
    database's files (SQLite: secure delete, VACUUM, WAL truncated; PostgreSQL: VACUUM).
    Every backend passes :class:`strongroom.testing.store_contract.ErasableContract`.
    """

    def find_text(self, needles: TextMatcher) -> dict[str, int]:
        """Occurrences per place, held documents included (what ``verify`` counts)."""
        ...

    def erase_text(self, needles: TextMatcher, reembed: Reembed, keep: Collection[str] = ()) -> EraseCount:
        """Scrub every occurrence from every row, except in documents whose id is in ``keep``."""
        ...

    def erase_document(self, document_id: str) -> list[str]:
        """Delete a document (:meth:`Curation.delete_document`) and blank what its version rows
        still say of it (title, source, metadata); returns the version ids erased."""
        ...

    def reclaim(self) -> dict[str, object]:
        """Make deleted and rewritten text unrecoverable from the database's files; what was done."""
        ...
