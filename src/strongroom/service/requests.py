"""The typed requests and results of the application layer's operations.

Entry points build these from what they parsed (CLI options, HTTP bodies, Python calls);
times stay as the caller gave them (a string, a datetime or None) and are parsed once, by
the operation (:mod:`strongroom.service.clock`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from strongroom.config import DEFAULT_ACL
from strongroom.errors import QueryError
from strongroom.service.clock import Clocks, TimeInput
from strongroom.types import DocumentVersion, Hit, frozen_meta

__all__ = [
    "EXTRACTIVE_MODEL",
    "AclChange",
    "AskRequest",
    "DocumentView",
    "DocumentsRequest",
    "IngestRequest",
    "KeyCreated",
    "PageView",
    "RouteView",
    "SearchRequest",
    "SearchResult",
    "View",
    "parse_groups",
    "parse_pairs",
]


def parse_groups(value: str, option: str) -> frozenset[str]:
    """Comma-separated groups (an ACL, a principal's groups), at least one; a :class:`QueryError`
    naming ``option`` for none."""
    groups = frozenset(g.strip() for g in value.split(",") if g.strip())
    if not groups:
        raise QueryError(f"{option}: give at least one group")
    return groups


def parse_pairs(items: Iterable[str] | None, option: str) -> Mapping[str, str]:
    """``KEY=VALUE`` items as a mapping (metadata filters, metadata to attach), as typed on a
    command line; a :class:`QueryError` naming ``option`` for an item without a key or ``=``.

    >>> dict(parse_pairs(["desk=rates", "region = EU"], "--filter"))
    {'desk': 'rates', 'region': 'EU'}
    """
    pairs: dict[str, str] = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise QueryError(f"{option} takes KEY=VALUE, got {item!r}")
        pairs[key.strip()] = value.strip()
    return frozen_meta(pairs)


def _is_text(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@dataclass(frozen=True, kw_only=True)
class View:
    """The two clocks and the filters every read takes. ``published_from``: only versions
    published then or later (a bare date: the start of that day, UTC); not after ``as_of``."""

    as_of: TimeInput = None
    known_at: TimeInput = None
    doc_types: frozenset[str] = frozenset()
    filters: Mapping[str, str] = field(default_factory=frozen_meta)
    published_from: TimeInput = None

    def __post_init__(self) -> None:
        texts = [v for v in vars(self).values() if isinstance(v, str)]
        texts += [*self.doc_types, *self.filters, *self.filters.values()]
        if any(not _is_text(t) for t in texts):  # bytes of a terminal or a JSON escape that are not Unicode text
            raise QueryError("the request holds characters that are not text (not valid UTF-8); type it again")


@dataclass(frozen=True, kw_only=True)
class SearchRequest(View):
    query: str = ""
    k: int = 10


@dataclass(frozen=True)
class SearchResult:
    hits: tuple[Hit, ...]
    clocks: Clocks


#: the model name of the extractive generator (no weights), always available
EXTRACTIVE_MODEL = "strongroom-rag"


@dataclass(frozen=True, kw_only=True)
class AskRequest(View):
    """A question; ``model`` names a gateway route to write the answer (None or
    ``strongroom-rag``: the extractive generator, which needs no model)."""

    question: str = ""
    k: int = 5
    model: str | None = None

    @property
    def route(self) -> str | None:
        """The gateway route that writes the answer; None for the extractive generator."""
        return None if self.model in (None, EXTRACTIVE_MODEL) else self.model


@dataclass(frozen=True, kw_only=True)
class DocumentsRequest(View):
    limit: int = 100
    offset: int = 0


@dataclass(frozen=True)
class DocumentView:
    """A document as the principal sees it at the query's clocks: its current version and
    the versions of it the principal may read, newest first."""

    document_id: str
    current: DocumentVersion
    versions: tuple[DocumentVersion, ...]

    @property
    def source(self) -> str:
        return self.current.source

    @property
    def title(self) -> str:
        return self.current.title

    def version(self, prefix: str) -> DocumentVersion:
        """The one version whose id starts with ``prefix`` (a :class:`QueryError` for none or several)."""
        found = [v for v in self.versions if v.id.startswith(prefix)]
        if len(found) != 1:
            which = "more than one" if found else "no"
            raise QueryError(f"version {prefix!r}: {which} version of the document matches")
        return found[0]


@dataclass(frozen=True)
class PageView:
    document_id: str
    version: DocumentVersion
    page: int
    text: str


@dataclass(frozen=True)
class IngestRequest:
    """Files or folders to ingest. ``acl``: who may read them (for a new version of an
    existing document it must be the document's ACL: see ``acl set``). ``published``: when
    they became knowable (a bare date is that midnight, UTC; default: the document's own
    metadata, else the file time). ``roots``: the folders ``source`` keys are relative to."""

    paths: tuple[Path, ...]
    acl: frozenset[str] = frozenset({DEFAULT_ACL})
    published: TimeInput = None
    doc_type: str | None = None
    source: str | None = None
    meta: Mapping[str, str] = field(default_factory=frozen_meta)
    roots: tuple[Path, ...] | None = None


@dataclass(frozen=True)
class AclChange:
    document_id: str
    before: frozenset[str]
    after: frozenset[str]
    versions: tuple[str, ...]
    name: str = ""  # the document's name (its current version's), which the admin could read


@dataclass(frozen=True)
class KeyCreated:
    """A new API key: its id, owner, groups and expiry, and the secret, shown this once."""

    id: str
    owner: str
    groups: frozenset[str]
    expires_at: datetime | None
    secret: str


@dataclass(frozen=True)
class RouteView:
    """A way to have an answer written, as ``/v1/models`` lists it."""

    name: str
    description: str
    version: int | None = None
