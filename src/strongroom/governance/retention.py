"""Retention policies, as pure rules: which documents have outlived every policy that keeps them.

A :class:`RetentionPolicy` matches versions by document type, source prefix and/or sensitivity
(``metadata["sensitivity"]``, set by ingestion's understanding: ``public``, ``internal``,
``confidential``, ``restricted``); every criterion it names must match, and it names at least
one. It keeps a document for ``years`` calendar years plus ``days`` days counted from the
``published_at`` of the document's **newest** live version (the time it became knowable; the
ingestion pipeline sets it from the file, or falls back to when it was ingested).

A document expires when ``now`` is at or past the latest expiry of the policies that match its
newest version: the longest policy wins, so a document under research (7 years) and under
"everything from this source" (1 year) stays 7 years. An older live version matched by a policy
that keeps it longer (counted from its own publication) keeps the whole document, since deleting
a document deletes every version: a contract kept 10 years and re-filed as research kept 1 year
stays 10 years. A document whose newest version no policy matches never expires, and neither
does one published in the future beyond the keep period.

    research = RetentionPolicy("research-7y", doc_type="research_report", years=7)
    expired([research], store.versions(), now)        # [(document_id, research), ...]
    plan([research], holds, store.versions(), now)    # what to delete, what a hold keeps
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from strongroom.errors import QueryError
from strongroom.governance.holds import Hold, document_hold
from strongroom.llm.types import SENSITIVITY_LEVELS
from strongroom.types import DocumentVersion

__all__ = ["RetentionPlan", "RetentionPolicy", "expired", "governing_policy", "parse_keep", "plan"]

_MAX_YEARS = 200
_MAX_DAYS = 200 * 366
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_KEEP = re.compile(r"^\s*(?:(\d+)\s*y)?\s*(?:(\d+)\s*d)?\s*$", re.IGNORECASE)


def parse_keep(text: str) -> tuple[int, int]:
    """``"7y"``, ``"90d"`` or ``"1y30d"`` as (years, days); :class:`QueryError` otherwise."""
    m = _KEEP.match(text or "")
    if m is None or not (m.group(1) or m.group(2)):
        raise QueryError(f"a keep period is like 7y, 90d or 1y30d, not {text!r}")
    return int(m.group(1) or 0), int(m.group(2) or 0)


def _add_years(start: datetime, years: int) -> datetime:
    try:
        return start.replace(year=start.year + years)
    except ValueError:  # 29 February in a year that has none: the 28th
        return start.replace(year=start.year + years, day=28)


@dataclass(frozen=True)
class RetentionPolicy:
    """Keep what matches for ``years`` + ``days`` after publication (see the module docstring)."""

    id: str
    years: int = 0
    days: int = 0
    doc_type: str = ""
    source: str = ""
    sensitivity: str = ""

    def __post_init__(self) -> None:
        if not _NAME.match(self.id):
            raise QueryError(f"a policy name is 1 to 64 letters, digits, '.', '_' or '-', not {self.id!r}")
        if not (self.doc_type or self.source or self.sensitivity):
            raise QueryError("a policy matches by at least one of doc_type, source or sensitivity")
        if self.sensitivity and self.sensitivity not in SENSITIVITY_LEVELS:  # a typo would match nothing
            raise QueryError(f"sensitivity {self.sensitivity!r}: public, internal, confidential or restricted")
        if not (0 <= self.years <= _MAX_YEARS and 0 <= self.days <= _MAX_DAYS) or self.years + self.days == 0:
            raise QueryError(f"keep at least 1 day, at most {_MAX_YEARS} years and {_MAX_DAYS} days")

    def matches(self, version: DocumentVersion) -> bool:
        """Whether every criterion this policy names matches ``version``."""
        return (
            (not self.doc_type or version.doc_type == self.doc_type)
            and (not self.source or version.source.startswith(self.source))
            and (not self.sensitivity or version.metadata.get("sensitivity", "") == self.sensitivity)
        )

    def expires(self, start: datetime) -> datetime:
        """When something that became knowable at ``start`` has been kept long enough
        (``datetime.max``-like far future when the sum passes year 9999)."""
        try:
            return _add_years(start, self.years) + timedelta(days=self.days)
        except (OverflowError, ValueError):
            return datetime.max.replace(tzinfo=start.tzinfo)

    @property
    def keep(self) -> str:
        return "".join(f"{n}{u}" for n, u in ((self.years, "y"), (self.days, "d")) if n) or "0d"

    def describe(self) -> dict[str, Any]:
        """JSON-ready (what is stored, shown and proposed); :meth:`from_dict` reads it back."""
        return {
            "id": self.id,
            "keep": self.keep,
            "years": self.years,
            "days": self.days,
            "doc_type": self.doc_type or None,
            "source": self.source or None,
            "sensitivity": self.sensitivity or None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RetentionPolicy:
        """A policy from :meth:`describe`'s shape (``keep`` or ``years``/``days``); QueryError if malformed."""
        try:
            years, days = (
                parse_keep(str(data["keep"]))
                if data.get("keep")
                else (int(data.get("years") or 0), int(data.get("days") or 0))
            )
            return cls(
                id=str(data["id"]),
                years=years,
                days=days,
                doc_type=str(data.get("doc_type") or "").strip(),  # a padded value would match nothing
                source=str(data.get("source") or "").strip(),
                sensitivity=str(data.get("sensitivity") or "").strip(),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise QueryError(f"a retention policy is malformed ({exc}); give id, keep and a criterion") from exc


def _newest(versions: Iterable[DocumentVersion]) -> dict[str, DocumentVersion]:
    """Per document, its newest version (latest published, then latest ingested; later in order on a tie)."""
    out: dict[str, DocumentVersion] = {}
    for v in versions:
        seen = out.get(v.document_id)
        if seen is None or (v.published_at, v.ingested_at) >= (seen.published_at, seen.ingested_at):
            out[v.document_id] = v
    return out


def governing_policy(
    policies: Sequence[RetentionPolicy], version: DocumentVersion
) -> tuple[RetentionPolicy, datetime] | None:
    """The matching policy that keeps ``version`` longest, and when it expires; None if none matches."""
    best: tuple[RetentionPolicy, datetime] | None = None
    for p in sorted(policies, key=lambda p: p.id):
        if p.matches(version):
            until = p.expires(version.published_at)
            if best is None or until > best[1]:
                best = (p, until)
    return best


def expired(
    policies: Sequence[RetentionPolicy], versions: Iterable[DocumentVersion], now: datetime
) -> list[tuple[str, RetentionPolicy]]:
    """The documents (by id, sorted) whose newest version in ``versions`` (live versions) is past
    the keep period of the longest matching policy, and no older version is kept longer by a
    policy matching it, each with the policy that kept it longest."""
    versions = list(versions)
    by_doc: dict[str, list[DocumentVersion]] = {}
    for v in versions:
        by_doc.setdefault(v.document_id, []).append(v)
    out = []
    for document_id, version in sorted(_newest(versions).items()):
        governing = governing_policy(policies, version)
        if governing is None:
            continue
        for older in by_doc[document_id]:  # deleting the document deletes every version
            kept = governing_policy(policies, older) if older is not version else None
            if kept is not None and kept[1] > governing[1]:
                governing = kept
        if now >= governing[1]:
            out.append((document_id, governing[0]))
    return out


@dataclass(frozen=True)
class RetentionPlan:
    """What one retention run does: ``delete`` the expired documents no hold covers; ``held``
    the expired ones a hold keeps (with the hold); ``kept``: how many documents stay unexpired."""

    delete: tuple[tuple[str, RetentionPolicy], ...] = ()
    held: tuple[tuple[str, RetentionPolicy, Hold], ...] = ()
    kept: int = 0
    documents: int = field(default=0)


def plan(
    policies: Sequence[RetentionPolicy], holds: Sequence[Hold], versions: Sequence[DocumentVersion], now: datetime
) -> RetentionPlan:
    """The retention run over ``versions`` (every live version of the store) at ``now``: an
    expired document is deleted unless an active hold covers any of its versions."""
    by_doc: dict[str, list[DocumentVersion]] = {}
    for v in versions:
        by_doc.setdefault(v.document_id, []).append(v)
    delete, held = [], []
    due = expired(policies, versions, now)
    for document_id, policy in due:
        hold = document_hold(holds, by_doc[document_id]) if holds else None
        if hold is None:
            delete.append((document_id, policy))
        else:
            held.append((document_id, policy, hold))
    return RetentionPlan(tuple(delete), tuple(held), len(by_doc) - len(due), len(by_doc))
