"""Legal holds, as pure rules: what a hold covers, and which hold keeps a version from deletion.

A :class:`Hold` belongs to a legal matter (``matter_id``), has a creator and a reason, and
covers one target:

- a **document**: every version of one document id;
- a **source**: every version whose ``source`` starts with a prefix (``s3://bank/research/``);
- a **query**: every version that matches all of its terms (at least one term), each
  ``key=value``:

  ========================  ==================================================
  ``doc_type=VALUE``        the version's document type equals VALUE
  ``source=PREFIX``         the version's source starts with PREFIX
  ``title=TEXT``            TEXT occurs in the title (ignoring case)
  ``meta.KEY=VALUE``        the version's metadata KEY equals VALUE
                            (e.g. ``meta.sensitivity=restricted``, ``meta.ticker=AAPL``)
  ========================  ==================================================

A hold is active until it is released (``released_at``); a released hold covers nothing. A
hold covers versions ingested after it was placed too: a matter preserves what matches it.
A document is held when any of its versions is covered (:func:`document_hold`), and a held
document is deleted neither by retention nor by hand.

    hold = Hold("h1", "M-2026-001", "ana", "litigation", now, query=query_terms(["meta.ticker=AAPL"]))
    hold_on([hold], version)          # the hold, if the version is Apple's, else None
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from strongroom.errors import QueryError
from strongroom.llm.types import SENSITIVITY_LEVELS
from strongroom.types import DocumentVersion, frozen_meta

__all__ = ["QUERY_KEYS", "Hold", "HoldKind", "document_hold", "hold_on", "query_terms"]

HoldKind = Literal["document", "source", "query"]
#: the plain keys a query term may use (besides ``meta.KEY``)
QUERY_KEYS = ("doc_type", "source", "title")
_MAX_TERMS = 16
_MAX_VALUE = 500


def query_terms(terms: Iterable[str] | Mapping[str, str]) -> Mapping[str, str]:
    """A hold's query from ``key=value`` strings (or a mapping), checked: at least one term,
    known keys only, no empty value. :class:`~strongroom.errors.QueryError` otherwise."""
    pairs: list[tuple[str, str]] = []
    if isinstance(terms, Mapping):
        pairs = [(str(k), str(v)) for k, v in terms.items()]
    else:
        for term in terms:
            key, sep, value = str(term).partition("=")
            if not sep:
                raise QueryError(f"a query term is key=value (doc_type, source, title or meta.KEY), not {term!r}")
            pairs.append((key, value))
    out: dict[str, str] = {}
    for key, value in pairs:
        key, value = key.strip(), value.strip()
        known = key in QUERY_KEYS or (key.startswith("meta.") and len(key) > len("meta."))
        if not known:
            raise QueryError(f"unknown query key {key!r}: use doc_type, source, title or meta.KEY")
        if not value or len(value) > _MAX_VALUE:
            raise QueryError(f"the value of {key} is 1 to {_MAX_VALUE} characters")
        if key == "meta.sensitivity" and value not in SENSITIVITY_LEVELS:  # a typo would hold nothing
            raise QueryError(f"meta.sensitivity {value!r}: public, internal, confidential or restricted")
        if key in out and out[key] != value:
            raise QueryError(f"{key} is given twice with different values")
        out[key] = value
    if not out or len(out) > _MAX_TERMS:
        raise QueryError(f"a query holds 1 to {_MAX_TERMS} terms")
    return frozen_meta(out)


def _matches(query: Mapping[str, str], version: DocumentVersion) -> bool:
    for key, value in query.items():
        if key == "doc_type":
            ok = version.doc_type == value
        elif key == "source":
            ok = version.source.startswith(value)
        elif key == "title":
            ok = value.casefold() in version.title.casefold()
        else:
            ok = version.metadata.get(key.removeprefix("meta.")) == value
        if not ok:
            return False
    return True


@dataclass(frozen=True)
class Hold:
    """A legal hold: exactly one of ``document_id``, ``source`` (a prefix) or ``query`` is its target.

    ``creator``: the person who placed it; ``released_by``/``released_at``: who lifted it, and when
    (empty/None while it is active)."""

    id: str
    matter_id: str
    creator: str
    reason: str
    created_at: datetime
    document_id: str = ""
    source: str = ""
    query: Mapping[str, str] = field(default_factory=frozen_meta)
    released_at: datetime | None = None
    released_by: str = ""

    def __post_init__(self) -> None:
        if not self.matter_id.strip():
            raise QueryError("a hold needs a matter id")
        if not self.reason.strip():
            raise QueryError("a hold needs a reason")
        if sum(bool(t) for t in (self.document_id, self.source, self.query)) != 1:
            raise QueryError("a hold has exactly one target: a document, a source prefix or a query")

    @property
    def kind(self) -> HoldKind:
        return "document" if self.document_id else "source" if self.source else "query"

    @property
    def active(self) -> bool:
        return self.released_at is None

    def covers(self, version: DocumentVersion) -> bool:
        """Whether this hold, while active, covers ``version``."""
        if not self.active:
            return False
        if self.document_id:
            return version.document_id == self.document_id
        if self.source:
            return version.source.startswith(self.source)
        return _matches(self.query, version)

    def target(self) -> str:
        """The target as one readable string (``document:ID``, ``source:PREFIX``, ``query:k=v,...``)."""
        if self.document_id:
            return f"document:{self.document_id}"
        if self.source:
            return f"source:{self.source}"
        return "query:" + ",".join(f"{k}={v}" for k, v in sorted(self.query.items()))

    def describe(self) -> dict[str, object]:
        """The hold as JSON-ready data (what the CLI and HTTP show)."""
        return {
            "id": self.id,
            "matter_id": self.matter_id,
            "creator": self.creator,
            "reason": self.reason,
            "created_at": self.created_at.isoformat(),
            "kind": self.kind,
            "document_id": self.document_id or None,
            "source": self.source or None,
            "query": dict(self.query) or None,
            "active": self.active,
            "released_at": self.released_at.isoformat() if self.released_at else None,
            "released_by": self.released_by or None,
        }


def hold_on(holds: Iterable[Hold], version: DocumentVersion) -> Hold | None:
    """The first active hold (in the order given) that covers ``version``, or None."""
    return next((h for h in holds if h.covers(version)), None)


def document_hold(holds: Sequence[Hold], versions: Iterable[DocumentVersion]) -> Hold | None:
    """The first active hold covering any of a document's ``versions`` (a document is held as a
    whole: deleting it deletes every version), or None."""
    for version in versions:
        if (hold := hold_on(holds, version)) is not None:
            return hold
    return None
