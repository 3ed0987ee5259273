"""What a tool hands back, kept small: the numbers a text states (for citation checks), text
cut to a budget, rows as text, and a result cut to fit :data:`MAX_CONTENT_CHARS` with a note
that says what was left out and how to ask for less (pure functions); and :class:`Done`, what
a tool returns to the toolbox.

Clearance travels with what a tool returns: each evidence ref carries its version's label
(:func:`clearance_ref`; dataset evidence names its datasets), a result sent out of the
platform (MCP) carries a ``"clearance"`` marker over all of it (:func:`clearance_marker`),
and :func:`carried_clearance` reads both back from the messages a client sends to a model
(``/v1/chat/completions``), so the conversation goes only to deployments cleared for it.

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

from strongroom.agent.base import Evidence, ToolOutput
from strongroom.agent.clearance import evidence_clearance
from strongroom.agent.numbers import find_figures
from strongroom.llm.clearance import ContextClearance, version_clearance
from strongroom.llm.types import SENSITIVITY_LEVELS, Sensitivity
from strongroom.types import DocumentVersion

__all__ = [
    "MAX_CONTENT_CHARS",
    "Done",
    "carried_clearance",
    "clearance_marker",
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


def clearance_marker(evidence: Iterable[Evidence]) -> dict[str, object] | None:
    """What a tool result sent out of the platform says it needs: ``{"sensitivity", "mnpi",
    "forced_by"}`` (the version ids or ``dataset:NAME@VERSION`` that forced it, never text);
    None when its evidence is all public."""
    need = evidence_clearance({"kind": e.kind, "ref": e.ref} for e in evidence)
    if need == ContextClearance():
        return None
    return {"sensitivity": need.sensitivity, "mnpi": need.mnpi, "forced_by": list(need.forced_by)}


_MAX_IDS = 50  # forcing ids kept from one marker (a hostile list cannot swell the audit record)


def _ids(raw: object, fallback: str) -> tuple[str, ...]:
    if isinstance(raw, list | tuple):
        ids = tuple(str(i)[:200] for i in raw if isinstance(i, str | int))[:_MAX_IDS]
        return ids or (fallback,)
    return (str(raw)[:200],) if isinstance(raw, str) and raw else (fallback,)


def _level(raw: object) -> Sensitivity:
    """A label as sent: a known level, else (garbled, not a string) the highest."""
    return raw if isinstance(raw, str) and raw in SENSITIVITY_LEVELS else "restricted"


def _found(item: Mapping[str, object]) -> ContextClearance:
    """The clearance one JSON object of a tool result states: a ``clearance`` marker, an
    ``evidence`` list, or a labelled ref (an object with a ``version_id`` and a ``sensitivity``)."""
    need = ContextClearance()
    marker = item.get("clearance")
    if isinstance(marker, Mapping):
        level = _level(marker.get("sensitivity", "public"))
        need = need.join(ContextClearance(level, marker.get("mnpi") is True, _ids(marker.get("forced_by"), "tool")))
    evidence = item.get("evidence")
    if isinstance(evidence, list):
        need = need.join(evidence_clearance(e for e in evidence if isinstance(e, Mapping)))
    if "version_id" in item and "sensitivity" in item:
        level = _level(item.get("sensitivity"))
        need = need.join(ContextClearance(level, item.get("mnpi") is True, _ids(item.get("version_id"), "?")))
    if need.sensitivity == "public" and not need.mnpi:
        return ContextClearance()  # public: nothing forced
    return need


def carried_clearance(texts: Iterable[str]) -> ContextClearance:
    """The clearance the strongroom tool results among ``texts`` (messages' contents) need:
    the highest of every marker, evidence list and labelled ref in each text that is JSON. A
    text that is not JSON adds nothing (nothing of ours can be read from it)."""
    need = ContextClearance()
    for text in texts:
        body = text.strip()
        if not body.startswith(("{", "[")):
            continue
        try:
            data: object = json.loads(body)
        except (ValueError, RecursionError):
            continue
        stack = [data]
        while stack:
            item = stack.pop()
            if isinstance(item, list):
                stack.extend(item)
            elif isinstance(item, dict):
                need = need.join(_found(item))
                stack.extend(item.values())
    return need


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
