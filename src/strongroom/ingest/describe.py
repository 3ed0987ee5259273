"""What a document is, read from its own first page: a title line for its chunks' context.

Chunks are retrieved one by one, but questions name the company, form and period, which a
filing prints once on its cover. The title built here goes into every chunk's context
(indexed and embedded, never part of the cited text), so a table row on page 30 is still
known to belong to "Apple Inc. Form 10-Q, quarterly period ended June 25, 2022".
"""

from __future__ import annotations

import re
from pathlib import PurePath

from strongroom.types import ParsedDocument

__all__ = ["describe"]

_FORM = re.compile(r"\bFORM\s+(10-Q|10-K|8-K|20-F|6-K|S-1|424B\d?)\b", re.IGNORECASE)
_PERIOD = re.compile(r"for the (?:fiscal )?(?:quarterly )?period ended\s+([A-Z][a-z]+ \d{1,2}, \d{4})", re.IGNORECASE)
_REGISTRANT = re.compile(r"\n([^\n]{2,80})\n\(Exact name of registrant", re.IGNORECASE)


def describe(parsed: ParsedDocument, name: str) -> str:
    """A one-line title: file stem, the document's title, and a filing's cover facts."""
    first = parsed.pages[0].text[:6000] if parsed.pages else ""
    parts = [PurePath(name).stem]
    if parsed.title:
        parts.append(parsed.title)
    registrant = _REGISTRANT.search("\n" + first)
    if registrant:
        parts.append(registrant.group(1).strip())
    form = _FORM.search(first)
    if form:
        parts.append(f"Form {form.group(1).upper()}")
    period = _PERIOD.search(first)
    if period:
        parts.append(f"quarterly period ended {period.group(1)}")
    seen: list[str] = []
    for part in parts:
        if part and part.lower() not in (p.lower() for p in seen):
            seen.append(part)
    return " — ".join(seen)[:300]
