"""What a tool hands back, kept small: the numbers a text states (for citation checks), text
cut to a budget, rows as text, and a result cut to fit :data:`MAX_CONTENT_CHARS` with a note
that says what was left out and how to ask for less (pure functions); and :class:`Done`, what
a tool returns to the toolbox.

>>> numbers_in("Total net sales 81,797 82,959; coupon 4.25%, other (265)")
('81,797', '82,959', '4.25%', '(265)')
>>> clip("abcdef", 4)
('abc…', True)
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

from strongroom.agent.base import ToolOutput
from strongroom.agent.numbers import find_figures
from strongroom.llm.clearance import version_clearance
from strongroom.types import DocumentVersion

__all__ = [
    "MAX_CONTENT_CHARS",
    "Done",
    "clearance_ref",
    "clip",
    "fit",
    "numbers_in",
    "row_numbers",
    "rows_text",
    "size",
]

#: the most characters of JSON a tool result sends to the model
MAX_CONTENT_CHARS = 8_000
_MAX_NUMBERS = 400


@dataclass(frozen=True)
class Done:
    """A tool's result and what its audit record keeps: ``detail`` (counts), ``chunks`` (ids
    of what was read) and ``facts`` (ids, versions, sizes: never content)."""

    output: ToolOutput
    detail: str
    chunks: tuple[tuple[str, str], ...] = ()
    facts: Mapping[str, object] = field(default_factory=dict)


def numbers_in(text: str) -> tuple[str, ...]:
    """The numbers ``text`` states, as written (``81,797``, ``4.25%``, ``(265)``), once each, in
    order: every figure the citation check could match an answer's number to, years included."""
    found = dict.fromkeys(f.text for f in find_figures(text, every=True))
    return tuple(found)[:_MAX_NUMBERS]


def clearance_ref(version: DocumentVersion) -> dict[str, object]:
    """The version's sensitivity label and MNPI flag, for an evidence ref: the agent's next
    model turn goes only to deployments cleared for them (:mod:`strongroom.agent.clearance`)."""
    sensitivity, mnpi = version_clearance(version)
    return {"sensitivity": sensitivity, "mnpi": mnpi}


def clip(text: str, limit: int) -> tuple[str, bool]:
    """``text`` cut to at most ``limit`` characters (ending in an ellipsis), and whether it was cut."""
    if len(text) <= limit:
        return text, False
    return text[: max(0, limit - 1)] + "…", True


def size(content: object) -> int:
    """Characters of ``content`` as JSON (what the model reads)."""
    return len(json.dumps(content, ensure_ascii=False, default=str))


def fit(content: dict[str, object], key: str, what: str, hint: str) -> tuple[dict[str, object], int]:
    """``content`` with the items of its list ``content[key]`` kept from the first while the
    whole fits :data:`MAX_CONTENT_CHARS`, and how many were kept; when some are left out,
    ``cut`` says how many ``what`` were shown and ``hint`` how to ask for less."""
    items = content.get(key)
    if not isinstance(items, list):
        return content, 0
    if size(content) <= MAX_CONTENT_CHARS:
        return content, len(items)
    note = f"only the first N of {len(items)} {what} are shown, to keep this result short; {hint}"
    budget = MAX_CONTENT_CHARS - size({**content, key: [], "cut": note}) - 8
    kept = 0
    for item in items:
        budget -= size(item) + 2
        if budget < 0:
            break
        kept += 1
    return {**content, key: items[:kept], "cut": note.replace(" N ", f" {kept} ")}, kept


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return str(value)


def rows_text(columns: Sequence[str], rows: Iterable[Sequence[object]], limit: int = 4_000) -> tuple[str, bool]:
    """Rows as ``a | b`` lines under their column names, cut to ``limit`` characters."""
    lines = [" | ".join(columns)] + [" | ".join(_cell(v) for v in row) for row in rows]
    return clip("\n".join(lines), limit)


def row_numbers(rows: Iterable[Sequence[object]]) -> tuple[str, ...]:
    """The numbers in rows: each numeric cell as text, and the numbers text cells state."""
    found: dict[str, None] = {}
    for row in rows:
        for value in row:
            if isinstance(value, bool) or value is None:
                continue
            if isinstance(value, int | float | Decimal):
                found.setdefault(_cell(value), None)
            elif isinstance(value, str):
                found.update(dict.fromkeys(numbers_in(value)))
            if len(found) >= _MAX_NUMBERS:
                return tuple(found)[:_MAX_NUMBERS]
    return tuple(found)
