"""Evaluation questions for the research agent: the file format (JSON lines), the reference
syntax that lets a gold plan's later steps use earlier results, and the checks of gold values.

One question per line::

    {"id": "price-move-01", "kind": "price_move", "needs": "data",
     "question": "By how much did NVDA's close move over 2023Q2, in percent?",
     "as_of": "2023-06-30T21:00:00+00:00", "known_at": "2024-01-21T06:00:00+00:00",
     "principal": "analyst", "groups": ["public"], "expect": "answer",
     "plan": [{"tool": "query_data", "arguments": {"sql": "SELECT date, close FROM prices ..."}},
              {"tool": "query_data", "arguments": {"sql": "..."}},
              {"tool": "calculate", "arguments": {"expression": "(b - a) / a * 100",
                "variables": {"a": "$1.rows[0].close", "b": "$2.rows[0].close"}}}],
     "gold": [{"ref": "$1.rows[0].close", "match": "decimal", "value": "264.01", "tolerance": "0"},
              {"ref": "$3.value", "match": "decimal", "value": "-3.718046", "tolerance": "0.000001"}],
     "answer": "NVDA closed at 264.01 on 2023-03-31 and 254.19 on 2023-06-30: -3.718046%.",
     "must_not_contain": [], "note": ""}

- ``as_of``/``known_at``: ISO 8601 instants the run's tools read at; ``known_at`` null means
  now (questions on documents use it: documents are ingested when the evaluation runs).
- ``principal``/``groups``: who asks (the run's principal has these entitlement groups and the
  ``reader`` role).
- ``expect``: ``answer``, or ``refusal`` (the principal may not read what the question needs: the
  right outcome is a refusal or "no data", never numbers from the restricted dataset).
- ``plan``: tool calls, by name and arguments exactly as the agent's tools take them. A step's
  ``expect`` is ``ok`` (default) or ``refused`` (the call must fail with a refusal: the
  dataset is unknown to the principal, NotFound or PermissionDenied).
- ``must_not_contain``: text that must appear in no answer (the restricted rows' code names).

**References.** A string argument that is a reference is replaced, before the call, by the
value it points at: ``$N`` is step N's result (1-based, the tool's JSON content), then any of
``.name`` (a key; on a row of a ``rows`` list, the column of that name in the result's
``columns``), ``[i]`` (an item) and ``[*]`` (every item: the rest of the path is applied to
each, giving a list). ``$2.rows[0].close`` is the ``close`` cell of step 2's first row;
``$1.rows[*].trade_id`` is the list of its ``trade_id`` cells. :func:`bind` substitutes them
(at any depth of the arguments, e.g. in ``calculate``'s ``variables``).

**Gold values** (:class:`Gold`) name a reference and a ``match``:

- ``decimal``: the value as an exact decimal is within ``tolerance`` of the gold (data is
  exact: tolerance 0; a ``calculate`` result that divides is rounded to six places: 0.000001);
- ``printed``: the figure as the filing prints it (``"18,120"``) occurs in the referenced
  result's JSON as a whole number (not inside a longer one);
- ``text``: the value as text equals the gold; ``date``: its first ten characters do;
- ``set``: the referenced list, as text, holds exactly the gold's items (any order);
- ``count``: the referenced list has that many items;
- ``present`` / ``absent``: the text occurs / does not occur in the referenced result's JSON.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path

from strongroom.errors import QueryError

__all__ = [
    "EXPECTS",
    "MATCHES",
    "NEEDS",
    "Gold",
    "Question",
    "Step",
    "bind",
    "check_gold",
    "check_plan",
    "read_questions",
    "resolve",
    "write_questions",
]

NEEDS = ("data", "documents", "both")
EXPECTS = ("answer", "refusal")
MATCHES = ("decimal", "printed", "text", "date", "set", "count", "present", "absent")
_REF = re.compile(r"^\$(\d+)((?:\.[A-Za-z_][A-Za-z0-9_]*|\[\d+\]|\[\*\])*)$")
_PART = re.compile(r"\.([A-Za-z_][A-Za-z0-9_]*)|\[(\d+|\*)\]")


@dataclass(frozen=True)
class Step:
    """One tool call of a gold plan; ``expect``: ``ok`` or ``refused``."""

    tool: str
    arguments: Mapping[str, object]
    expect: str = "ok"


@dataclass(frozen=True)
class Gold:
    """What one reference must hold (see the module's list of ``match`` kinds)."""

    ref: str
    match: str
    value: str | tuple[str, ...]
    tolerance: str = "0"


@dataclass(frozen=True)
class Question:
    """One evaluation question with its gold plan, gold values and a short gold answer."""

    id: str
    kind: str
    question: str
    needs: str
    as_of: datetime
    known_at: datetime | None
    principal: str
    groups: tuple[str, ...]
    plan: tuple[Step, ...]
    gold: tuple[Gold, ...]
    answer: str
    expect: str = "answer"
    must_not_contain: tuple[str, ...] = ()
    note: str = ""

    def __post_init__(self) -> None:
        if self.needs not in NEEDS or self.expect not in EXPECTS:
            raise QueryError(f"question {self.id}: needs is one of {NEEDS}, expect one of {EXPECTS}")
        for g in self.gold:
            if g.match not in MATCHES:
                raise QueryError(f"question {self.id}: match {g.match!r} is not one of {', '.join(MATCHES)}")
            _parse(g.ref)
        for k, step in enumerate(self.plan, start=1):
            if step.expect not in ("ok", "refused"):
                raise QueryError(f"question {self.id}: step {k} expects ok or refused, not {step.expect!r}")
            for ref in _refs(step.arguments):
                if _parse(ref)[0] >= k:
                    raise QueryError(f"question {self.id}: step {k} refers to {ref}, which is not an earlier step")

    def record(self) -> dict[str, object]:
        """The question as one JSON object (the line :func:`write_questions` writes)."""
        return {
            "id": self.id,
            "kind": self.kind,
            "question": self.question,
            "needs": self.needs,
            "as_of": self.as_of.isoformat(),
            "known_at": self.known_at.isoformat() if self.known_at else None,
            "principal": self.principal,
            "groups": list(self.groups),
            "expect": self.expect,
            "plan": [
                {"tool": s.tool, "arguments": dict(s.arguments), **({"expect": s.expect} if s.expect != "ok" else {})}
                for s in self.plan
            ],
            "gold": [
                {
                    "ref": g.ref,
                    "match": g.match,
                    "value": list(g.value) if isinstance(g.value, tuple) else g.value,
                    **({"tolerance": g.tolerance} if g.match == "decimal" else {}),
                }
                for g in self.gold
            ],
            "answer": self.answer,
            "must_not_contain": list(self.must_not_contain),
            "note": self.note,
        }

    @classmethod
    def from_record(cls, r: Mapping[str, object]) -> Question:
        """A question from its JSON object; a missing or malformed field is a QueryError."""
        try:
            plan = tuple(
                Step(str(s["tool"]), _mapping(s["arguments"]), str(s.get("expect", "ok"))) for s in _list(r, "plan")
            )
            gold = tuple(
                Gold(
                    str(g["ref"]),
                    str(g["match"]),
                    tuple(str(v) for v in g["value"]) if isinstance(g["value"], list) else str(g["value"]),
                    str(g.get("tolerance", "0")),
                )
                for g in _list(r, "gold")
            )
            known = r.get("known_at")
            return cls(
                id=str(r["id"]),
                kind=str(r["kind"]),
                question=str(r["question"]),
                needs=str(r["needs"]),
                as_of=datetime.fromisoformat(str(r["as_of"])),
                known_at=datetime.fromisoformat(str(known)) if known else None,
                principal=str(r["principal"]),
                groups=tuple(str(g) for g in _list(r, "groups")),
                plan=plan,
                gold=gold,
                answer=str(r["answer"]),
                expect=str(r.get("expect", "answer")),
                must_not_contain=tuple(str(t) for t in _list(r, "must_not_contain", optional=True)),
                note=str(r.get("note", "")),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise QueryError(f"question {r.get('id', '?')}: malformed ({exc}); see strongroom.data.questions") from exc


def _list(r: Mapping[str, object], key: str, *, optional: bool = False) -> list[dict[str, object]]:
    value = r.get(key, [] if optional else None)
    if not isinstance(value, list):
        raise TypeError(f"{key} must be a list")
    return value


def _mapping(value: object) -> dict[str, object]:
    if not isinstance(value, Mapping):
        raise TypeError("arguments must be an object")
    return {str(k): v for k, v in value.items()}


def write_questions(path: Path, questions: Iterable[Question]) -> int:
    """Write ``questions`` as JSON lines; return how many."""
    lines = [json.dumps(q.record(), ensure_ascii=False) for q in questions]
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return len(lines)


def read_questions(path: Path) -> list[Question]:
    """The questions of a JSON-lines file (blank lines skipped)."""
    out = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            try:
                record = json.loads(line)
            except ValueError as exc:
                raise QueryError(f"{path.name} line {number}: not JSON ({exc})") from exc
            out.append(Question.from_record(record))
    return out


# -- references -----------------------------------------------------------------------------


def _parse(ref: str) -> tuple[int, list[tuple[str, str]]]:
    m = _REF.match(ref)
    if not m or int(m.group(1)) < 1:
        raise QueryError(f"{ref!r} is not a reference: $N then .name, [i] or [*] (e.g. $2.rows[0].close)")
    parts = [("key", a) if a else ("item", b) for a, b in _PART.findall(m.group(2))]
    return int(m.group(1)), parts


def _refs(value: object) -> Iterable[str]:
    if isinstance(value, str) and value.startswith("$") and _REF.match(value):
        yield value
    elif isinstance(value, Mapping):
        for v in value.values():
            yield from _refs(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _refs(v)


def resolve(ref: str, outputs: Sequence[object]) -> object:
    """The value ``ref`` points at in ``outputs`` (step N's result is ``outputs[N - 1]``)."""
    step, parts = _parse(ref)
    if step > len(outputs) or outputs[step - 1] is None:
        raise QueryError(f"{ref}: step {step} has no result")
    return _walk(outputs[step - 1], parts, None, ref)


def _walk(value: object, parts: list[tuple[str, str]], columns: Sequence[object] | None, ref: str) -> object:
    if not parts:
        return value
    (kind, name), rest = parts[0], parts[1:]
    if kind == "item" and name == "*":
        if not isinstance(value, list | tuple):
            raise QueryError(f"{ref}: [*] needs a list, found {type(value).__name__}")
        return [_walk(v, rest, columns, ref) for v in value]
    if kind == "item":
        if not isinstance(value, list | tuple) or int(name) >= len(value):
            raise QueryError(f"{ref}: no item {name}")
        return _walk(value[int(name)], rest, columns, ref)
    if isinstance(value, Mapping):
        if name not in value:
            raise QueryError(f"{ref}: no key {name!r}")
        cols = value.get("columns") if name == "rows" else None
        return _walk(value[name], rest, cols if isinstance(cols, list | tuple) else None, ref)
    if isinstance(value, list | tuple) and columns is not None and name in columns:
        return _walk(value[list(columns).index(name)], rest, None, ref)
    raise QueryError(f"{ref}: cannot take {name!r} of {type(value).__name__}")


def bind(arguments: Mapping[str, object], outputs: Sequence[object]) -> dict[str, object]:
    """``arguments`` with every reference replaced by the text of what it points at (numbers
    as they are written: a float by its shortest repr)."""

    def sub(value: object) -> object:
        if isinstance(value, str) and value.startswith("$") and _REF.match(value):
            found = resolve(value, outputs)
            if isinstance(found, str):
                return found
            return json.dumps(found) if isinstance(found, list | dict) else str(found)
        if isinstance(value, Mapping):
            return {k: sub(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [sub(v) for v in value]
        return value

    return {k: sub(v) for k, v in arguments.items()}


# -- checks ---------------------------------------------------------------------------------


def _decimal(value: object) -> Decimal | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return Decimal(repr(value) if isinstance(value, float) else str(value).replace(",", ""))
    except InvalidOperation:
        return None


def _text(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


def check_gold(gold: Gold, outputs: Sequence[object]) -> str | None:
    """None when ``outputs`` hold ``gold``; otherwise what was found instead."""
    try:
        found = resolve(gold.ref, outputs)
    except QueryError as exc:
        return str(exc)
    value = gold.value
    if gold.match == "decimal":
        got, want = _decimal(found), _decimal(value)
        ok = got is not None and want is not None and abs(got - want) <= Decimal(gold.tolerance)
    elif gold.match == "printed":
        pattern = r"(?<![\d.,])" + re.escape(str(value)) + r"(?![\d]|[.,]\d)"
        ok = re.search(pattern, _text(found)) is not None
    elif gold.match == "text":
        ok = str(found) == value
    elif gold.match == "date":
        ok = str(found)[:10] == value
    elif gold.match == "set":
        ok = isinstance(found, list) and sorted(str(v) for v in found) == sorted(value)
    elif gold.match == "count":
        ok = isinstance(found, list | tuple) and len(found) == int(str(value))
    elif gold.match in ("present", "absent"):
        ok = (str(value) in _text(found)) == (gold.match == "present")
    else:
        return f"unknown match {gold.match!r}"
    return None if ok else f"{gold.ref} ({gold.match}): wanted {value!r}, found {_text(found)[:200]}"


def check_plan(question: Question, outputs: Sequence[object], refused: Sequence[bool]) -> list[str]:
    """What went wrong in a run of ``question``'s plan (empty: tool-level accurate).
    ``outputs[k]``: step k+1's result (None if it failed); ``refused[k]``: it was refused."""
    problems = []
    for k, step in enumerate(question.plan):
        was_refused = k < len(refused) and refused[k]
        if step.expect == "refused" and not was_refused:
            problems.append(f"step {k + 1} ({step.tool}) should have been refused")
        elif step.expect == "ok" and (k >= len(outputs) or outputs[k] is None):
            problems.append(f"step {k + 1} ({step.tool}) failed")
    problems += [p for p in (check_gold(g, outputs) for g in question.gold) if p]
    return problems
