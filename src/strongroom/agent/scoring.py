"""Scoring a research agent's written answer against an evaluation question's gold (pure).

The gold of a question (:class:`~strongroom.data.questions.Gold`) names values in the tools'
results; here they are looked for in the answer's text, with each match rule read for prose:

- ``decimal``: a number of the answer equals the gold (magnitudes: prose says "fell 3.72%"
  where the gold is -3.718046). Exact data (tolerance 0) must be written exactly ("264.01",
  "264.010"); a derived value (tolerance above 0) may be rounded to two or more places;
- ``printed``: the filing's figure as printed ("18,120") or the same amount written another
  way ("18120", "$18.12 billion" for a figure in millions), to three significant digits;
- ``text``, ``present``: the text occurs (case and spacing ignored); ``absent``: it does not;
- ``date``: the day, as ISO or in words ("December 30, 2022", "30 Dec 2022");
- ``set``: every item occurs as a word; ``count``: the count occurs as a number or a word.

An answer passes when the run ``answered``, every gold value is in it, none of the question's
``must_not_contain`` texts is, and every number it states is supported by the evidence it
cites (``unsupported`` empty). A question that expects a **refusal** passes when no
``must_not_contain`` text appears and the run says it could not answer: it did not end
``answered``, or its answer says so in words ("cannot", "not available to you", "no access")::

    score_answer(question, "AAPL closed at 151.73 [1] and 152.24 [2]: up 0.34% [3].", status="answered")
    # [] when the gold is 151.73, 152.24 and 0.336123 (tolerance 0.000001)
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date
from decimal import Decimal, InvalidOperation

from strongroom.agent.numbers import Figure, find_figures, parse_figure, same_figure
from strongroom.data.questions import Gold, Question

__all__ = ["REFUSAL", "gold_in_answer", "says_it_could_not", "score_answer"]

#: words by which an answer says it could not answer
REFUSAL = re.compile(
    r"\b(?:cannot|can't|can\s+not|could\s+not|couldn't|unable|not\s+able|no\s+access|do(?:es)?\s+not\s+have|"
    r"don't\s+have|doesn't\s+have|not\s+(?:permitted|allowed|authori[sz]ed|available|accessible|entitled|visible)|"
    r"refused|denied|no\s+(?:data|dataset|permission|information)|(?:is|was)\s+not\s+found|unknown\s+dataset|"
    r"not\s+(?:one\s+)?(?:you|i)\s+may\s+read)\b",
    re.IGNORECASE,
)
_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve")
_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December")  # fmt: skip


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().casefold()


def _decimal(text: str) -> Decimal | None:
    try:
        return Decimal(text.replace(",", "").strip())
    except InvalidOperation:
        return None


def _has_decimal(figures: Sequence[Figure], gold: Decimal, tolerance: Decimal) -> bool:
    target = abs(gold)
    places_needed = min(2, max(0, -int(target.as_tuple().exponent)))
    for f in figures:
        value = abs(f.value) * f.scale
        if tolerance == 0:
            if value == target:
                return True
        elif f.places >= places_needed and abs(value - target) <= max(tolerance, Decimal(5).scaleb(-(f.places + 1))):
            return True
    return False


def _significant(f: Figure) -> int:
    return len(str(abs(f.value)).replace(".", "").lstrip("0"))


def _has_printed(answer: str, figures: Sequence[Figure], printed: str) -> bool:
    pattern = r"(?<![\d.,])" + re.escape(printed) + r"(?![\d]|[.,]\d)"
    if re.search(pattern, answer):
        return True
    source = parse_figure(printed)
    if source is None:
        return False
    for f in figures:
        if f.percent or _significant(f) < 3:
            continue
        # a filing's plain figures are in millions when the answer writes a scale word
        if same_figure(f, source, 10**6 if f.scale != 1 else 1):
            return True
    return False


def _date_forms(day: date) -> list[str]:
    month = _MONTHS[day.month - 1]
    return [
        day.isoformat(),
        f"{month} {day.day}, {day.year}",
        f"{month[:3]} {day.day}, {day.year}",
        f"{month[:3]}. {day.day}, {day.year}",
        f"{day.day} {month} {day.year}",
        f"{day.day} {month[:3]} {day.year}",
        f"{month} {day.day} {day.year}",
        f"{day.month}/{day.day}/{day.year}",
        f"{day.month:02d}/{day.day:02d}/{day.year}",
    ]


def _word(answer: str, text: str) -> bool:
    return re.search(r"(?<![\w-])" + re.escape(text.casefold()) + r"(?![\w-])", answer.casefold()) is not None


def gold_in_answer(gold: Gold, answer: str) -> bool:
    """Whether ``answer`` states ``gold``'s value under its match rule (see the module)."""
    figures = find_figures(answer, every=True)
    value = gold.value
    if gold.match == "decimal":
        want, tolerance = _decimal(str(value)), _decimal(gold.tolerance)
        return want is not None and tolerance is not None and _has_decimal(figures, want, tolerance)
    if gold.match == "printed":
        return _has_printed(answer, figures, str(value))
    if gold.match in ("text", "present"):
        return _norm(str(value)) in _norm(answer)
    if gold.match == "absent":
        return _norm(str(value)) not in _norm(answer)
    if gold.match == "date":
        try:
            day = date.fromisoformat(str(value)[:10])
        except ValueError:
            return False
        folded = _norm(answer)
        return any(_norm(form) in folded for form in _date_forms(day))
    if gold.match == "set":
        items = value if isinstance(value, tuple) else (str(value),)
        return all(_word(answer, item) for item in items)
    if gold.match == "count":
        n = int(str(value))
        return _word(answer, str(n)) or (n < len(_WORDS) and _word(answer, _WORDS[n]))
    return False


def says_it_could_not(answer: str) -> bool:
    """Whether ``answer`` says, in words, that it could not answer or read what was asked."""
    return REFUSAL.search(answer) is not None


def score_answer(
    question: Question,
    answer: str,
    *,
    status: str,
    unsupported: Sequence[str] = (),
    reason: str = "",
) -> list[str]:
    """What is wrong with ``answer`` to ``question`` (empty: it passes; see the module).
    ``status``/``reason``: how the run ended; ``unsupported``: the answer's numbers that the
    evidence it cites does not state."""
    problems = []
    leaked = [t for t in question.must_not_contain if _norm(t) in _norm(answer)]
    if leaked:
        problems.append(f"the answer contains restricted text: {', '.join(leaked)}")
    if question.expect == "refusal":
        if status == "answered" and not says_it_could_not(answer):
            problems.append("a refusal was expected: the answer does not say it could not answer")
        return problems
    if status != "answered":
        problems.append(f"the run ended {status}" + (f": {reason}" if reason else ""))
        return problems
    for gold in question.gold:
        if not gold_in_answer(gold, answer):
            value = ", ".join(gold.value) if isinstance(gold.value, tuple) else gold.value
            problems.append(f"{gold.ref} ({gold.match}): {value!r} is not in the answer")
    if unsupported:
        problems.append(f"numbers not supported by the evidence cited: {', '.join(unsupported)}")
    return problems
