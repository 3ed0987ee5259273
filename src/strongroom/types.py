"""The vocabulary of strongroom: frozen values that flow between the stages.

    source --parse--> ParsedDocument --chunk--> Chunk[] --embed/store--> DocumentVersion
    Principal + Query --retrieve--> Hit[] --generate--> Answer (claims with Citation[])

Every value here is immutable and typed; pydantic lives only at trust boundaries
(HTTP bodies, configuration files), never in these.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType

__all__ = [
    "Answer",
    "Chunk",
    "Citation",
    "Claim",
    "DocumentVersion",
    "Hit",
    "Page",
    "ParsedDocument",
    "Principal",
    "Scope",
    "document_id_for",
    "frozen_meta",
    "sha256_hex",
    "source_name",
    "utcnow",
]


def sha256_hex(data: bytes) -> str:
    """Hex SHA-256 of ``data``: the identity of a document version."""
    return hashlib.sha256(data).hexdigest()


def document_id_for(source: str) -> str:
    """A stable document id for a source key (path or URI): versions of one source share it."""
    return hashlib.sha256(f"document\x00{source}".encode()).hexdigest()[:32]


def source_name(source: str) -> str:
    """The file name of a source key (its last path component), as shown in citations."""
    return source.replace("\\", "/").rsplit("/", 1)[-1]


def utcnow() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def frozen_meta(items: Mapping[str, str] | None = None) -> Mapping[str, str]:
    """A read-only, key-sorted copy of a metadata mapping."""
    return MappingProxyType(dict(sorted((items or {}).items())))


@dataclass(frozen=True)
class Page:
    """One page of extracted text. ``number`` is 1-based; non-paginated formats have one page."""

    number: int
    text: str


@dataclass(frozen=True)
class ParsedDocument:
    """What a parser returns: the text by page plus what the file says about itself."""

    pages: tuple[Page, ...]
    media_type: str
    title: str | None = None
    published_at: datetime | None = None
    metadata: Mapping[str, str] = field(default_factory=frozen_meta)

    @property
    def text_length(self) -> int:
        return sum(len(p.text) for p in self.pages)


@dataclass(frozen=True)
class DocumentVersion:
    """One immutable version of a document, identified by the SHA-256 of its bytes.

    ``published_at`` is when the content became knowable; ``ingested_at`` when strongroom
    stored it. An as-of query at time T sees a version only if both are <= T.
    """

    id: str
    document_id: str
    source: str
    title: str
    media_type: str
    doc_type: str
    acl: frozenset[str]
    published_at: datetime
    ingested_at: datetime
    size: int
    pages: int
    metadata: Mapping[str, str] = field(default_factory=frozen_meta)

    @property
    def name(self) -> str:
        """The source's file name (the last path component), as shown in citations."""
        return source_name(self.source)


@dataclass(frozen=True)
class Chunk:
    """A retrievable piece of one page of one version.

    ``text`` is exactly ``page_text[char_start:char_end]`` of page ``page`` of the version,
    so a citation can be re-opened and checked years later. ``context`` (document title
    and section heading) is indexed and embedded with the text but is not part of it
    (see :func:`strongroom.ingest.chunking.dense_text` for what the embedder reads).
    """

    id: str
    version_id: str
    ordinal: int
    page: int
    char_start: int
    char_end: int
    text: str
    context: str = ""

    @staticmethod
    def make_id(version_id: str, page: int, char_start: int, char_end: int) -> str:
        key = f"{version_id}:{page}:{char_start}:{char_end}".encode()
        return hashlib.sha256(key).hexdigest()[:32]


@dataclass(frozen=True)
class Principal:
    """Who is asking: a name, the entitlement groups they belong to, the roles those groups
    grant (``reader``, ``ingester``, ``admin``) and how they proved who they are.

    ``auth`` says how the principal was established, for the audit record: ``oidc``,
    ``api-key``, ``dev`` over HTTP; ``cli`` (self-declared with ``--user``/``--groups``);
    ``python`` for library calls. ``key_id`` names the API key, if one was used;
    ``created_by``: for a key, the persons behind whoever created it (they saw its secret, so
    four-eyes counts them as this principal too); empty when unknown or not a key.
    """

    name: str
    groups: frozenset[str]
    roles: frozenset[str] = frozenset()
    auth: str = "python"
    key_id: str = ""
    created_by: frozenset[str] = frozenset()

    def may_read(self, acl: Iterable[str]) -> bool:
        """Whether a version with this ACL is within the principal's entitlements."""
        return not self.groups.isdisjoint(acl)


@dataclass(frozen=True)
class Scope:
    """What a search may see. Applied inside the index search, never after top-k.

    ``groups``: the principal's groups; a chunk is visible only if its version's ACL
    intersects them. Two clocks decide which versions exist for the query:
    ``as_of`` bounds when a version became knowable (``published_at``) and ``known_at``
    bounds when the platform learned it (``ingested_at``); ``None`` means now, and neither
    can pass now (a later value means now: no look-ahead). Per document only the version
    current at those times is seen. ``filters``: metadata equality. ``published_from``: a
    lower bound on the seen version's ``published_at`` (a plain filter: it never changes which
    version is current, so it never brings back a superseded one).
    """

    groups: frozenset[str]
    as_of: datetime | None = None
    doc_types: frozenset[str] = frozenset()
    filters: Mapping[str, str] = field(default_factory=frozen_meta)
    known_at: datetime | None = None
    published_from: datetime | None = None

    @classmethod
    def for_principal(
        cls,
        principal: Principal,
        *,
        as_of: datetime | None = None,
        known_at: datetime | None = None,
        doc_types: frozenset[str] = frozenset(),
        filters: Mapping[str, str] | None = None,
        published_from: datetime | None = None,
    ) -> Scope:
        return cls(principal.groups, as_of, doc_types, frozen_meta(filters), known_at, published_from)

    def instants(self, now: float | None = None) -> tuple[float, float]:
        """The two clocks as POSIX seconds, each clamped to ``now``: (publication bound,
        ingestion bound). Every backend filters with these, so no path can look ahead."""
        current = time.time() if now is None else now
        published = current if self.as_of is None else min(_aware(self.as_of).timestamp(), current)
        ingested = current if self.known_at is None else min(_aware(self.known_at).timestamp(), current)
        return published, ingested

    def published_floor(self) -> float:
        """``published_from`` as POSIX seconds; minus infinity when it is not given."""
        return -math.inf if self.published_from is None else _aware(self.published_from).timestamp()


@dataclass(frozen=True)
class Hit:
    """A retrieved chunk with its version, fused score and the ranks that produced it."""

    chunk: Chunk
    version: DocumentVersion
    score: float
    keyword_rank: int | None = None
    dense_rank: int | None = None


@dataclass(frozen=True)
class Citation:
    """Where a quoted span lives: document, version, page and characters in the page text."""

    document_id: str
    version_id: str
    source: str
    title: str
    page: int
    char_start: int
    char_end: int
    quote: str

    @property
    def name(self) -> str:
        return source_name(self.source)

    @property
    def label(self) -> str:
        return f"{self.name} p.{self.page}"


@dataclass(frozen=True)
class Claim:
    """One statement of an answer and the citations that support it."""

    text: str
    citations: tuple[Citation, ...]


@dataclass(frozen=True)
class Answer:
    """An answer: claims each carrying citations, or ``found=False`` with a reason.

    ``metadata`` says what produced it, for the caller and the audit record: at least
    ``generator`` and ``prompt_template_version``; an answer written through the model
    gateway adds ``model`` (the route), ``deployment`` (the one that answered, after any
    failover), ``route_version`` and ``failovers``.
    """

    question: str
    claims: tuple[Claim, ...]
    hits: tuple[Hit, ...]
    generator: str
    found: bool
    note: str = ""
    metadata: Mapping[str, str] = field(default_factory=frozen_meta)

    @property
    def text(self) -> str:
        if not self.found:
            return self.note
        return "\n".join(c.text for c in self.claims)

    @property
    def citations(self) -> tuple[Citation, ...]:
        seen: dict[tuple[str, int, int, int], Citation] = {}
        for claim in self.claims:
            for c in claim.citations:
                seen.setdefault((c.version_id, c.page, c.char_start, c.char_end), c)
        return tuple(seen.values())
